/**
 * A first start killed at every step of writing the CA files (the KUBE_JOIN_TEST_KILL_AT_WRITE_STEP
 * hook in src/ca/key-files.ts SIGKILLs the process there) leaves either no CA or one the next
 * start completes: no start ever needs a person, and no file holding a private key is left over.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { DATA_DIR_FILES, loadOrCreateAuthority } from "../src/ca/authority.ts";
import { ensureBuilt, REPO_ROOT } from "./support/service.ts";

const AUTHORITY_JS = pathToFileURL(join(REPO_ROOT, "dist/ca/authority.js")).href;
const FIRST_START = `const { loadOrCreateAuthority } = await import(${JSON.stringify(AUTHORITY_JS)});
await loadOrCreateAuthority({ clusterName: "crash.example.com", dataDir: process.argv[1] });`;

before(() => ensureBuilt());

function firstStart(dataDir: string, killAtStep: number): { killed: boolean; stderr: string } {
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", FIRST_START, dataDir], {
    env: { ...process.env, KUBE_JOIN_TEST_KILL_AT_WRITE_STEP: String(killAtStep) },
    encoding: "utf8",
  });
  if (result.signal !== "SIGKILL") assert.equal(result.status, 0, result.stderr);
  return { killed: result.signal === "SIGKILL", stderr: result.stderr };
}

/** The staged TLS key a crash left in a complete staging directory, if any. */
function stagedTlsKey(dataDir: string): string | undefined {
  for (const entry of readdirSync(dataDir)) {
    if (!entry.startsWith(".kube-join-new.")) continue;
    try {
      readFileSync(join(dataDir, entry, "COMPLETE"));
      return readFileSync(join(dataDir, entry, DATA_DIR_FILES.tlsKeyFile), "utf8");
    } catch {
      return undefined;
    }
  }
  return undefined;
}

test("a first start killed at any step of writing the CA: the next start succeeds by itself", async () => {
  let step = 1;
  const outcomes: string[] = [];
  for (; step < 50; step += 1) {
    const dataDir = join(mkdtempSync(join(tmpdir(), "kube-join-crash-")), "data");
    const { killed } = firstStart(dataDir, step);
    if (!killed) break; // past the last step: the write completed
    const before = readdirSync(dataDir).sort();
    const staged = stagedTlsKey(dataDir);
    const ca = await loadOrCreateAuthority({ clusterName: "crash.example.com", dataDir });
    assert.equal(ca.trusted().tlsCaCerts.length, 1);
    const after = readdirSync(dataDir).sort();
    assert.deepEqual(
      after,
      [DATA_DIR_FILES.sshKeyFile, DATA_DIR_FILES.tlsCertFile, DATA_DIR_FILES.tlsKeyFile].sort(),
      `step ${step}: left behind ${JSON.stringify(after)} (crash left ${JSON.stringify(before)})`,
    );
    for (const name of after) {
      assert.equal(statSync(join(dataDir, name)).mode & 0o777, 0o600, `${name} at step ${step}`);
    }
    if (staged !== undefined) {
      // A complete set was rolled forward: the key the crashed start made is the one kept.
      assert.equal(readFileSync(join(dataDir, DATA_DIR_FILES.tlsKeyFile), "utf8"), staged);
    }
    outcomes.push(`${step}: ${staged === undefined ? "discarded" : "rolled forward"}`);
  }
  assert.ok(step > 6, `only ${step - 1} steps were crashed: ${outcomes.join(", ")}`);
  assert.ok(outcomes.some((o) => o.endsWith("discarded")));
  assert.ok(outcomes.some((o) => o.endsWith("rolled forward")));
});

test("stale temporary files of an older release (they may hold keys) are removed at start", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "kube-join-stale-"));
  const stale = join(dataDir, ".tls-ca.key.0123456789ab.tmp");
  writeFileSync(stale, "-----BEGIN PRIVATE KEY-----\n", { mode: 0o600 });
  await loadOrCreateAuthority({ clusterName: "stale.example.com", dataDir });
  assert.ok(!readdirSync(dataDir).includes(".tls-ca.key.0123456789ab.tmp"));
});
