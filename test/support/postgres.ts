import { execFile, execFileSync } from "node:child_process";
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";

/**
 * A throwaway real PostgreSQL cluster for tests, from Debian's server binaries
 * (`/usr/lib/postgresql/<major>/bin`): its own data directory in a temp dir, a unix socket there
 * and 127.0.0.1 on a free port, never the system service. Local (socket) logins are trusted for
 * the test's admin work; TCP logins need a password (scram-sha-256), so a wrong password is a
 * real refusal.
 *
 * initdb and postgres refuse to run as root: as root, they run as the `postgres` account (made
 * by Debian's `postgresql-common`) through `runuser`, with the temp dir chowned to it.
 *
 * Missing binaries skip the test with a message naming Debian's `postgresql` package; under
 * `CI=true` (`.ci/run` installs it) they fail instead.
 */

const PG_ROOT = "/usr/lib/postgresql";

function findBinDir(): string | undefined {
  if (!existsSync(PG_ROOT)) return undefined;
  const majors = readdirSync(PG_ROOT)
    .filter((d) => /^\d+$/.test(d) && existsSync(join(PG_ROOT, d, "bin", "initdb")))
    .sort((a, b) => Number(b) - Number(a));
  return majors[0] === undefined ? undefined : join(PG_ROOT, majors[0], "bin");
}

function postgresTool(): { readonly binDir: string; readonly skip: string | false } {
  const binDir = findBinDir();
  if (binDir !== undefined) return { binDir, skip: false };
  const message = `PostgreSQL server binaries (${PG_ROOT}/*/bin/initdb) not found: install the Debian package postgresql`;
  if (process.env["CI"] === "true") {
    throw new Error(`${message} (CI=true: .ci/run must install it; refusing to skip)`);
  }
  return { binDir: "", skip: message };
}

/** Use as `test("...", { skip: POSTGRES.skip }, ...)`. */
export const POSTGRES = postgresTool();

/** The role kube-join logs in as over TCP, and its password. */
export const PG_USER = "kube_join";
export const PG_PASSWORD = "test-only-password-7f3a";

export interface PostgresCluster {
  readonly port: number;
  /** The directory holding the unix socket. */
  readonly socketDir: string;
  /** The server's main process (its backends are its children), for CPU accounting. */
  postmasterPid(): number;
  /**
   * A new empty database owned by `PG_USER`, with `settings` as its defaults (`ALTER DATABASE ...
   * SET`); resolves to its URL (password included).
   */
  createDatabase(name?: string, settings?: Readonly<Record<string, string>>): Promise<string>;
  /** A URL without the password, for tests that give it another way. */
  urlWithoutPassword(database: string): string;
  /** Stops the server (fast shutdown: connections are cut) and starts it again on the same port. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the server for good and removes its files. */
  destroy(): Promise<void>;
}

function run(file: string, args: readonly string[], asUser: string | undefined): Promise<string> {
  const [cmd, argv] =
    asUser === undefined ? [file, args] : ["runuser", ["-u", asUser, "--", file, ...args]];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { timeout: 60_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} ${args[0] ?? ""} failed: ${stderr || error.message}`));
      else resolve(stdout);
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

let databaseSeq = 0;

/** Starts a cluster; call `destroy()` in an `after` hook. */
export async function startPostgres(
  options: { readonly fsync?: boolean } = {},
): Promise<PostgresCluster> {
  const binDir = POSTGRES.binDir;
  if (POSTGRES.skip !== false) throw new Error(POSTGRES.skip);
  const asUser = process.getuid?.() === 0 ? "postgres" : undefined;
  const dir = mkdtempSync(join(tmpdir(), "kube-join-pg-"));
  const dataDir = join(dir, "data");
  const pwFile = join(dir, "pw");
  writeFileSync(pwFile, "superuser-not-used-over-tcp\n");
  if (asUser !== undefined) {
    const uid = Number(execFileSync("id", ["-u", asUser], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", asUser], { encoding: "utf8" }).trim());
    chownSync(dir, uid, gid);
    chownSync(pwFile, uid, gid);
  }
  const superuser = asUser ?? userInfo().username;
  await run(
    join(binDir, "initdb"),
    [
      "-D",
      dataDir,
      "-U",
      superuser,
      "--pwfile",
      pwFile,
      "--auth-local=trust",
      "--auth-host=scram-sha-256",
      "--no-sync",
      "-E",
      "UTF8",
      "--locale=C",
    ],
    asUser,
  );
  const port = await freePort();
  const serverOptions = [
    `-k ${dir}`,
    "-h 127.0.0.1",
    `-p ${port}`,
    "-c max_connections=100",
    "-c shared_buffers=16MB",
    `-c fsync=${options.fsync === true ? "on" : "off"}`,
    `-c synchronous_commit=${options.fsync === true ? "on" : "off"}`,
    "-c full_page_writes=off",
  ].join(" ");
  const pgCtl = (args: readonly string[]): Promise<string> =>
    run(join(binDir, "pg_ctl"), [...args, "-D", dataDir], asUser);
  const start = async (): Promise<void> => {
    await pgCtl(["start", "-w", "-t", "30", "-l", join(dir, "server.log"), "-o", serverOptions]);
  };
  let running = false;
  const stopNow = (): void => {
    if (!running) return;
    try {
      const argv = ["stop", "-m", "immediate", "-D", dataDir];
      if (asUser === undefined) execFileSync(join(binDir, "pg_ctl"), argv, { stdio: "ignore" });
      else {
        execFileSync("runuser", ["-u", asUser, "--", join(binDir, "pg_ctl"), ...argv], {
          stdio: "ignore",
        });
      }
    } catch {
      // already down
    }
    running = false;
  };
  // A test process that dies without its `after` hook must not leave a server behind.
  process.once("exit", stopNow);
  await start();
  running = true;

  const admin = async <T>(body: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ host: dir, port, user: superuser, database: "postgres" });
    await client.connect();
    try {
      return await body(client);
    } finally {
      await client.end();
    }
  };
  await admin(async (c) => {
    await c.query(`CREATE ROLE ${PG_USER} LOGIN PASSWORD '${PG_PASSWORD}'`);
  });

  return {
    port,
    socketDir: dir,
    postmasterPid(): number {
      return Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n", 1)[0]);
    },
    async createDatabase(
      name?: string,
      settings: Readonly<Record<string, string>> = {},
    ): Promise<string> {
      const database = name ?? `kj_${process.pid}_${++databaseSeq}`;
      await admin(async (c) => {
        await c.query(`CREATE DATABASE ${database} OWNER ${PG_USER}`);
        for (const [setting, value] of Object.entries(settings)) {
          await c.query(`ALTER DATABASE ${database} SET ${setting} = ${value}`);
        }
      });
      return `postgres://${PG_USER}:${PG_PASSWORD}@127.0.0.1:${port}/${database}`;
    },
    urlWithoutPassword(database: string): string {
      return `postgres://${PG_USER}@127.0.0.1:${port}/${database}`;
    },
    async stop(): Promise<void> {
      await pgCtl(["stop", "-w", "-m", "fast"]);
      running = false;
    },
    async start(): Promise<void> {
      await start();
      running = true;
    },
    async destroy(): Promise<void> {
      stopNow();
      process.removeListener("exit", stopNow);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
