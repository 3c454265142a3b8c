import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { systemTool } from "./system-tools.ts";

/**
 * A real OpenSSH server for one test, on 127.0.0.1 and a free port, trusting the given user CA
 * keys (`TrustedUserCAKeys`) and nothing else: no authorized_keys, no passwords.
 *
 * Who can log in: sshd authenticates the account it is asked for, and a non-root sshd can only
 * serve its own account. So the login user is the account running the tests (`root` in the
 * container: `PermitRootLogin prohibit-password` lets root in with a certificate). Without
 * `authorizedPrincipals`, sshd accepts a certificate whose principals include that user name;
 * with it, an `AuthorizedPrincipalsFile` lists the principals accepted instead.
 *
 * Needs `/run/sshd` (the privilege-separation directory; created when running as root) and
 * `UsePAM no` (so no PAM stack is involved). Tools come from `systemTool`: skip with
 * `SSHD.skip` / `SSH.skip` in the test options.
 */
export const SSHD = systemTool("sshd", "openssh-server");
export const SSH = systemTool("ssh", "openssh-client");
export const SSH_KEYGEN = systemTool("ssh-keygen", "openssh-client");

export interface SshdOptions {
  /** authorized_keys lines of the user CAs to trust (e.g. `ca.trusted().sshCaKeys.join("\n")`). */
  readonly trustedUserCaKeys: string;
  /** Principals accepted for the login user (AuthorizedPrincipalsFile); default: the user name. */
  readonly authorizedPrincipals?: readonly string[];
}

export interface RunningSshd {
  readonly port: number;
  /** The account to log in as. */
  readonly user: string;
  /** sshd's log so far (LogLevel VERBOSE): why a certificate was refused. */
  logs(): string;
  stop(): Promise<void>;
}

function run(
  file: string,
  args: readonly string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function startSshd(options: SshdOptions): Promise<RunningSshd> {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-sshd-"));
  const user = userInfo().username;
  try {
    if (process.getuid?.() === 0 && !existsSync("/run/sshd"))
      mkdirSync("/run/sshd", { mode: 0o755 });
    const hostKey = join(dir, "ssh_host_ed25519_key");
    const keygen = await run(SSH_KEYGEN.path, ["-q", "-t", "ed25519", "-N", "", "-f", hostKey]);
    if (keygen.code !== 0) throw new Error(`ssh-keygen failed: ${keygen.stderr}`);
    writeFileSync(join(dir, "user_ca.pub"), options.trustedUserCaKeys.trim() + "\n");
    if (options.authorizedPrincipals) {
      writeFileSync(join(dir, "principals"), options.authorizedPrincipals.join("\n") + "\n");
    }
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const config = [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, "sshd.pid")}`,
        `TrustedUserCAKeys ${join(dir, "user_ca.pub")}`,
        `AuthorizedPrincipalsFile ${options.authorizedPrincipals ? join(dir, "principals") : "none"}`,
        "AuthorizedKeysFile none",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        "UsePAM no",
        "StrictModes no",
        "LogLevel VERBOSE",
        "",
      ].join("\n");
      const configFile = join(dir, "sshd_config");
      writeFileSync(configFile, config);
      const child = spawn(SSHD.path, ["-D", "-e", "-f", configFile], {
        stdio: ["ignore", "ignore", "pipe"],
      });
      let log = "";
      child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (log += chunk));
      const ready = await waitForListening(child, () => log);
      if (ready) {
        return {
          port,
          user,
          logs: () => log,
          stop: async () => {
            if (child.exitCode === null && child.signalCode === null) {
              const exited = new Promise((resolve) => child.once("exit", resolve));
              child.kill("SIGTERM");
              await exited;
            }
            rmSync(dir, { recursive: true, force: true });
          },
        };
      }
      if (child.exitCode === null) child.kill("SIGTERM");
      // Another process may have taken the port between probing and binding: try a new one.
      if (attempt >= 3 || !/Address already in use/.test(log)) {
        throw new Error(`sshd did not start:\n${log}`);
      }
    }
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

function waitForListening(child: ChildProcess, log: () => string): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => finish(false), 10_000);
    const check = () => {
      if (/Server listening on 127\.0\.0\.1 port/.test(log())) finish(true);
    };
    const onExit = () => finish(false);
    function finish(result: boolean): void {
      clearTimeout(timer);
      child.stderr?.off("data", check);
      child.off("exit", onExit);
      resolve(result);
    }
    child.stderr?.on("data", check);
    child.once("exit", onExit);
    check();
  });
}

export interface SshLoginOptions {
  readonly port: number;
  readonly user: string;
  /** The private key (OpenSSH or PEM, mode 0600). */
  readonly keyFile: string;
  /** The certificate file (`<type>-cert-v01@openssh.com ...` line). */
  readonly certFile: string;
}

/**
 * Logs in with the real `ssh` client using only this key and certificate, runs `echo ok`, and
 * reports whether that worked. Never prompts (BatchMode), ignores host keys and user config.
 */
export async function sshLogin(options: SshLoginOptions): Promise<{ ok: boolean; stderr: string }> {
  const result = await run(SSH.path, [
    "-F",
    "/dev/null",
    "-i",
    options.keyFile,
    "-o",
    `CertificateFile=${options.certFile}`,
    "-o",
    "IdentitiesOnly=yes",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "PreferredAuthentications=publickey",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=ERROR",
    "-p",
    String(options.port),
    "-l",
    options.user,
    "127.0.0.1",
    "echo ok",
  ]);
  return { ok: result.code === 0 && result.stdout.trim() === "ok", stderr: result.stderr };
}
