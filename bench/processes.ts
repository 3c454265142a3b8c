import { execFile, spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** Runs a command to its end, bounded in time; a non-zero exit rejects with what it printed. */
export async function run(
  command: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ readonly stdout: string }> {
  const { stdout } = await execFileAsync(command, args, {
    timeout: timeoutMs,
    maxBuffer: 64 * 1024 * 1024,
    encoding: "utf8",
  });
  return { stdout };
}

/** A free TCP port on 127.0.0.1 (bound, read, released). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port);
        else reject(new Error("no port"));
      });
    });
  });
}

export interface Spawned {
  readonly child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

/**
 * Spawns a process and resolves once its combined output matches `ready`, or once `probe`
 * resolves true (polled every 100 ms); bounded in time either way.
 */
export async function spawnUntil(
  command: string,
  args: readonly string[],
  ready: RegExp | (() => Promise<boolean>),
  timeoutMs = 20_000,
): Promise<Spawned> {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const spawned: Spawned = {
    child,
    output: () => out,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
        setTimeout(() => child.kill("SIGKILL"), 5000).unref();
      }),
  };
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${command} ${args.join(" ")} not ready in ${timeoutMs} ms:\n${out}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.length > 1_000_000) out = out.slice(-100_000);
      if (ready instanceof RegExp && ready.test(out)) done();
    };
    if (typeof ready === "function") {
      const poll = async (): Promise<void> => {
        if (child.exitCode !== null) return;
        if (await ready().catch(() => false)) return done();
        setTimeout(() => void poll(), 100);
      };
      void poll();
    }
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited with ${code} before ready:\n${out}`));
    });
  });
  return spawned;
}

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/**
 * The fields of a /proc `stat` file (`/proc/PID/stat`, `/proc/self/task/TID/stat`) after the
 * parenthesised command name, which may itself hold spaces: field N of proc(5) is at N - 3.
 */
export function procStatFields(path: string): string[] {
  const stat = readFileSync(path, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

/** User + system CPU seconds a process has used so far, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  // utime and stime are fields 14 and 15.
  const fields = procStatFields(`/proc/${pid}/stat`);
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** Resident set size of a process in MiB, from /proc/PID/status. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? "0");
  return kb / 1024;
}
