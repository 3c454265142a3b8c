import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";

const EXTRA_DIRS = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

/**
 * Finds a system tool a test runs for real (sshd, promtool, ...). On a developer's machine a
 * missing tool skips the test with a message naming the Debian package; under CI (`CI=true`),
 * where `.ci/run` installs it, a missing tool is a failure, so a skip never hides one.
 *
 * Usage: `const sshd = systemTool("sshd", "openssh-server");`
 * then `test("...", { skip: sshd.skip }, () => { ... sshd.path ... })`.
 */
export function systemTool(
  name: string,
  debianPackage: string,
): { readonly path: string; readonly skip: string | false } {
  const dirs = [...(process.env["PATH"] ?? "").split(delimiter), ...EXTRA_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return { path: candidate, skip: false };
    } catch {
      // not here; keep looking
    }
  }
  const message = `${name} not found: install the Debian package ${debianPackage}`;
  if (process.env["CI"] === "true") {
    throw new Error(`${message} (CI=true: .ci/run must install it; refusing to skip)`);
  }
  return { path: name, skip: message };
}
