/**
 * Runs the real `kube-join serve` process for end-to-end tests: the built CLI (`bin/kube-join.js`
 * -> `dist/`), a temporary directory holding its config and files, both listeners on 127.0.0.1
 * with ephemeral ports, and the output collected.
 *
 * ```ts
 * before(() => ensureBuilt());
 * const svc = await startService();                       // demo resources, audit on stdout
 * await fetch(`${svc.baseUrl}/v1/ca`);
 * const { code } = await svc.stop();                      // SIGTERM; resolves on exit
 * const again = await startService({ dir: svc.dir });     // same dir: same CA
 * const custom = await startService({
 *   configYaml: "cluster_name: c.example.com\nlisten_addr: 127.0.0.1:0\ndiag_addr: 127.0.0.1:0\nresources: [r.yaml]\n",
 *   extraFiles: { "r.yaml": "..." },
 * });
 * ```
 *
 * Build: `ensureBuilt()` compiles `src/` into `dist/` with the build tsconfig once per test
 * process, and not at all when `dist/cli.js` is newer than every source file.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const CLI = join(REPO_ROOT, "bin/kube-join.js");
export const DEMO_RESOURCES = join(REPO_ROOT, "fixtures/demo/resources");
export const DEMO_CLUSTER = "example.teleport.sh";

/** The default config: demo resources, ephemeral ports, data in the service's directory. */
export const DEFAULT_CONFIG_YAML = `cluster_name: ${DEMO_CLUSTER}
listen_addr: 127.0.0.1:0
diag_addr: 127.0.0.1:0
resources: [${JSON.stringify(DEMO_RESOURCES)}]
data_dir: ./data
shutdown_timeout: 5s
`;

let built: Promise<void> | undefined;

/** Builds `dist/` unless it is newer than every file under `src/`. */
export function ensureBuilt(): Promise<void> {
  built ??= (async () => {
    const cli = join(REPO_ROOT, "dist/cli.js");
    const builtAt = mtimeOrZero(cli);
    if (builtAt > 0 && newestMtime(join(REPO_ROOT, "src")) <= builtAt) return;
    const tsc = join(REPO_ROOT, "node_modules/typescript/bin/tsc");
    const result = spawnSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
    });
    // tsc still emits on type errors (typecheck catches those separately); only a missing
    // output is fatal here.
    if (mtimeOrZero(cli) <= builtAt) {
      throw new Error(`npm run build failed:\n${result.stdout}${result.stderr}`);
    }
  })();
  return built;
}

export interface StartServiceOptions {
  /** The config file's text (written to `<dir>/config.yaml`); default DEFAULT_CONFIG_YAML. */
  readonly configYaml?: string;
  /** Further files, by path relative to `dir` (directories are created). */
  readonly extraFiles?: Readonly<Record<string, string>>;
  /** Extra environment variables for the process. */
  readonly env?: Readonly<Record<string, string>>;
  /** Reuse a directory (a restart keeping the CA); default a new temporary one. */
  readonly dir?: string;
  /** Give up waiting for the ready line after this long. Default 20 s. */
  readonly readyTimeoutMs?: number;
}

export interface ServiceProcess {
  /** `http(s)://127.0.0.1:PORT` of the join listener. */
  readonly baseUrl: string;
  /** `http://127.0.0.1:PORT` of the diagnostics listener. */
  readonly diagUrl: string;
  /** The service's directory (config, data, extra files). */
  readonly dir: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Everything written to stdout so far (the audit lines, unless audit.file is set). */
  stdout(): string;
  /** Everything written to stderr so far (the JSON log lines). */
  stderr(): string;
  /** The stderr log lines parsed as JSON (lines that are not JSON are skipped). */
  logs(): Array<Record<string, unknown>>;
  /** Resolves with the first log line (already written or later) that `match` accepts. */
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Sends `signal` (default SIGTERM) and resolves when the process has exited. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when the process exits on its own. */
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const running = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** Starts `kube-join serve --config <dir>/config.yaml` and waits for its ready line. */
export async function startService(options: StartServiceOptions = {}): Promise<ServiceProcess> {
  await ensureBuilt();
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), "kube-join-svc-"));
  writeFileSync(join(dir, "config.yaml"), options.configYaml ?? DEFAULT_CONFIG_YAML);
  for (const [name, text] of Object.entries(options.extraFiles ?? {})) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  const process_ = startProcess(["serve", "--config", join(dir, "config.yaml")], dir, options.env);
  const { child } = process_;
  const ready = await Promise.race([
    process_.waitForLog((l) => l["msg"] === "kube-join ready", options.readyTimeoutMs ?? 20_000),
    process_.exited().then(({ code, signal }) => {
      throw new Error(
        `kube-join serve exited (${code ?? signal}) before it was ready:\n${process_.stderr()}`,
      );
    }),
  ]);
  return {
    ...process_,
    baseUrl: String(ready["join_url"]),
    diagUrl: String(ready["diag_url"]),
    dir,
    pid: child.pid ?? -1,
  };
}

/** Runs `kube-join ARGS...` to completion (for commands and start-up failures). */
export async function runCli(
  args: readonly string[],
  options: { cwd?: string; env?: Readonly<Record<string, string>>; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  await ensureBuilt();
  const p = startProcess(args, options.cwd ?? REPO_ROOT, options.env);
  const timer = setTimeout(() => p.child.kill("SIGKILL"), options.timeoutMs ?? 20_000);
  const { code } = await p.exited();
  clearTimeout(timer);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

function startProcess(
  args: readonly string[],
  cwd: string,
  env: Readonly<Record<string, string>> | undefined,
): Omit<ServiceProcess, "baseUrl" | "diagUrl" | "dir" | "pid"> {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  running.add(child);
  let out = "";
  let err = "";
  const waiters: Array<() => void> = [];
  child.stdout?.on("data", (chunk: Buffer) => (out += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => {
    err += chunk.toString();
    for (const w of [...waiters]) w();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => {
      running.delete(child);
      // Let the pipes drain before reporting.
      setImmediate(() => resolve({ code, signal }));
    });
  });
  const logs = (): Array<Record<string, unknown>> =>
    err
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    logs,
    exited: () => exit,
    waitForLog(match, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const found = logs().find(match);
          if (found === undefined) return false;
          cleanup();
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for a log line; stderr so far:\n${err}`));
        }, timeoutMs);
        const cleanup = (): void => {
          clearTimeout(timer);
          const i = waiters.indexOf(waiter);
          if (i >= 0) waiters.splice(i, 1);
        };
        const waiter = (): void => void check();
        waiters.push(waiter);
        check();
      });
    },
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exit;
    },
  };
}

function mtimeOrZero(path: string): number {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : mtimeOrZero(path));
  }
  return newest;
}
