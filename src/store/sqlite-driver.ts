/**
 * Which SQLite binding runs: Node's built-in `node:sqlite` where the running Node has it (22.13
 * and later; the container's Node 26), else the optional `better-sqlite3` package, built from
 * source at `npm ci` on Node 20. Both are synchronous and offer the same small surface used here
 * (`exec`, `prepare`, `run`/`get`/`all` with positional parameters, `close`), so the adapter does
 * not care which one it got.
 *
 * The order matters for `.ci/run`: its second run on Node 26 reuses the node_modules built on
 * Node 20, where better-sqlite3's native module is compiled for another ABI and cannot load.
 */
import { createRequire } from "node:module";
import { StoreOpenError } from "./store.ts";

export type SqlValue = string | number | bigint | null;
export type SqlRow = Readonly<Record<string, SqlValue>>;

export interface SqliteStatement {
  run(...params: SqlValue[]): unknown;
  get(...params: SqlValue[]): SqlRow | undefined;
  all(...params: SqlValue[]): SqlRow[];
}

export interface SqliteDatabase {
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  close(): void;
}

export type SqliteDriverName = "node:sqlite" | "better-sqlite3";

export interface SqliteDriver {
  readonly name: SqliteDriverName;
  open(path: string): SqliteDatabase;
}

type DatabaseConstructor = new (path: string) => SqliteDatabase;

/** The built-in binding, or the reason it is not there. */
async function loadNodeSqlite(): Promise<SqliteDriver | Error> {
  try {
    // A computed specifier: Node 20's type definitions (and Node 20 itself) know no node:sqlite.
    const specifier = "node:sqlite";
    const mod = (await import(specifier)) as { DatabaseSync: DatabaseConstructor };
    return { name: "node:sqlite", open: (path) => new mod.DatabaseSync(path) };
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** better-sqlite3, or the reason it does not load (not installed, built for another Node). */
function loadBetterSqlite3(): SqliteDriver | Error {
  try {
    const require = createRequire(import.meta.url);
    const Database = require("better-sqlite3") as DatabaseConstructor;
    // Loading the package does not load its native module; opening a database does.
    new Database(":memory:").close();
    return { name: "better-sqlite3", open: (path) => new Database(path) };
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

const cache = new Map<string, Promise<SqliteDriver>>();

/**
 * The SQLite driver to use: `prefer` forces one (tests exercise each where it can load);
 * otherwise node:sqlite, then better-sqlite3.
 *
 * @throws StoreOpenError naming what to install when neither loads.
 */
export function loadSqliteDriver(prefer?: SqliteDriverName): Promise<SqliteDriver> {
  const key = prefer ?? "auto";
  let driver = cache.get(key);
  if (driver === undefined) {
    driver = pickDriver(prefer);
    cache.set(key, driver);
    // A failed load is not remembered: the next call tries again.
    driver.catch(() => cache.delete(key));
  }
  return driver;
}

async function pickDriver(prefer: SqliteDriverName | undefined): Promise<SqliteDriver> {
  const builtIn = prefer === "better-sqlite3" ? undefined : await loadNodeSqlite();
  if (builtIn !== undefined && !(builtIn instanceof Error)) return builtIn;
  const addon = prefer === "node:sqlite" ? undefined : loadBetterSqlite3();
  if (addon !== undefined && !(addon instanceof Error)) return addon;
  if (prefer !== undefined) {
    // Asked for one binding (the tests do): say that it is this one that does not load.
    const failed = (prefer === "node:sqlite" ? builtIn : addon) as Error;
    throw new StoreOpenError(
      `${prefer} does not load on Node ${process.versions.node}: ${firstLine(failed.message)}`,
    );
  }
  const reasons = [
    builtIn === undefined ? undefined : `node:sqlite: ${firstLine(builtIn.message)}`,
    addon === undefined ? undefined : `better-sqlite3: ${firstLine(addon.message)}`,
  ].filter((r) => r !== undefined);
  throw new StoreOpenError(
    `no SQLite driver loads on Node ${process.versions.node} (${reasons.join("; ")}). ` +
      "Run Node 22.13 or later (built-in node:sqlite), or reinstall with a C++ toolchain " +
      "(python3, make, g++) so npm can build the optional better-sqlite3 package for this Node, " +
      "or use store.engine: postgres",
  );
}

/** An error message on one line: better-sqlite3's ABI mismatch spreads over several. */
function firstLine(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}
