/**
 * The SQLite adapter: the default store, one file in `data_dir`, nothing to run beside kube-join.
 *
 * Durability: WAL journal with `synchronous=NORMAL`. A commit is in the WAL file (the OS page
 * cache) before `recordJoin` resolves, so killing the process, even with SIGKILL, loses no
 * answered join; only an OS crash or power loss can drop the last commits before a checkpoint.
 * `FULL` would add an fsync to every join, and this binding is synchronous: the fsync would stall
 * the event loop, and every other join with it. docs/operations.md says the same.
 *
 * Each write is its own `BEGIN IMMEDIATE` transaction with a 5 s busy timeout, so the CLI
 * (`kube-join lock create`) can write to the file while `serve` runs.
 */
import { existsSync } from "node:fs";
import {
  appendHistory,
  INSTANCE_HISTORY_LIMIT,
  type BotInstanceRecord,
  type InstanceHistoryEntry,
  type InstanceJoin,
  type InstanceKey,
} from "../join/bot-instance-store.ts";
import { LockExistsError } from "../join/lock-store.ts";
import type { Lock } from "../locks/lock.ts";
import { historyJson, lockTargetJson, recordOf, rowToInstance, rowToLock } from "./rows.ts";
import { CREATE_SCHEMA_VERSION_TABLE, pendingMigrations } from "./schema.ts";
import {
  loadSqliteDriver,
  type SqliteDatabase,
  type SqliteDriverName,
  type SqliteStatement,
  type SqlRow,
} from "./sqlite-driver.ts";
import { StoreOpenError, type Store } from "./store.ts";

export interface SqliteStoreOptions {
  /** The database file; created with the schema when missing. */
  readonly path: string;
  /** Forces a binding (tests); default: node:sqlite where Node has it, else better-sqlite3. */
  readonly driver?: SqliteDriverName;
  readonly newId?: () => string;
}

/**
 * A join in one statement: generation 1 for a new key, else one more, and the history trimmed to
 * the last entries in SQL (ordered aggregates: SQLite 3.44 and later, which both bindings bundle).
 * The new entry is passed twice: for a new row, and for the history of an existing one.
 */
const UPSERT = `
  INSERT INTO bot_instances (bot_instance_id, bot_name, token_name, pod_uid, generation,
    join_method, join_type, namespace, service_account, pod_name, node_name, first_join_ms,
    last_join_ms, tls_serial, ssh_serial, expires_at_ms, history)
  VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, json_array(json(?)))
  ON CONFLICT (bot_name, token_name, pod_uid) DO UPDATE SET
    generation = generation + 1,
    join_method = excluded.join_method,
    join_type = excluded.join_type,
    namespace = excluded.namespace,
    service_account = excluded.service_account,
    pod_name = excluded.pod_name,
    node_name = excluded.node_name,
    last_join_ms = excluded.last_join_ms,
    tls_serial = excluded.tls_serial,
    ssh_serial = excluded.ssh_serial,
    expires_at_ms = excluded.expires_at_ms,
    history = (
      SELECT json_group_array(json(v) ORDER BY k) FROM (
        SELECT k, v FROM (
          SELECT key AS k, value AS v FROM json_each(bot_instances.history)
          UNION ALL SELECT 1000000000, ?
        ) ORDER BY k DESC LIMIT ${INSTANCE_HISTORY_LIMIT}
      )
    )
  RETURNING bot_instance_id, generation, first_join_ms, history`;

export class SqliteStore implements Store {
  readonly engine = "sqlite";
  readonly location: string;
  /** Which binding runs, for the start-up log. */
  readonly driver: SqliteDriverName;
  readonly #db: SqliteDatabase;
  readonly #newId: () => string;
  readonly #byKey: SqliteStatement;
  readonly #byId: SqliteStatement;
  readonly #upsert: SqliteStatement;
  readonly #updateHistory: SqliteStatement;
  readonly #all: SqliteStatement;
  readonly #allOfBot: SqliteStatement;
  readonly #sweep: SqliteStatement;
  readonly #insertLock: SqliteStatement;
  readonly #lockByName: SqliteStatement;
  readonly #allLocks: SqliteStatement;
  readonly #deleteLock: SqliteStatement;
  #closed = false;

  private constructor(db: SqliteDatabase, options: SqliteStoreOptions, driver: SqliteDriverName) {
    this.#db = db;
    this.location = options.path;
    this.driver = driver;
    this.#newId = options.newId ?? (() => crypto.randomUUID());
    this.#byKey = db.prepare(
      "SELECT * FROM bot_instances WHERE bot_name = ? AND token_name = ? AND pod_uid = ?",
    );
    this.#byId = db.prepare("SELECT * FROM bot_instances WHERE bot_instance_id = ?");
    this.#upsert = db.prepare(UPSERT);
    this.#updateHistory = db.prepare(
      "UPDATE bot_instances SET history = ? WHERE bot_instance_id = ?",
    );
    this.#all = db.prepare("SELECT * FROM bot_instances ORDER BY first_join_ms, bot_instance_id");
    this.#allOfBot = db.prepare(
      "SELECT * FROM bot_instances WHERE bot_name = ? ORDER BY first_join_ms, bot_instance_id",
    );
    this.#sweep = db.prepare("DELETE FROM bot_instances WHERE expires_at_ms < ?");
    this.#insertLock = db.prepare(
      "INSERT INTO locks (name, target, message, expires_at_ms, created_at_ms) VALUES (?, ?, ?, ?, ?)",
    );
    this.#lockByName = db.prepare("SELECT name FROM locks WHERE name = ?");
    this.#allLocks = db.prepare("SELECT * FROM locks ORDER BY name");
    this.#deleteLock = db.prepare("DELETE FROM locks WHERE name = ?");
  }

  /**
   * Opens (creating if missing) the database file and brings its schema up to date.
   *
   * @throws StoreOpenError for an unreadable or corrupt file or a newer schema.
   */
  static async open(options: SqliteStoreOptions): Promise<SqliteStore> {
    const driver = await loadSqliteDriver(options.driver);
    const existed = existsSync(options.path);
    let db: SqliteDatabase | undefined;
    try {
      db = driver.open(options.path);
      db.exec("PRAGMA busy_timeout = 5000");
      // Reads the header: a file that is not a database fails here, before anything is written.
      const check = db.prepare("PRAGMA quick_check").get();
      if (check?.["quick_check"] !== "ok") {
        throw new Error(`integrity check failed: ${String(check?.["quick_check"])}`);
      }
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      migrate(db, options.path);
      return new SqliteStore(db, options, driver.name);
    } catch (err) {
      try {
        db?.close();
      } catch {
        // already failing; the open error below is the one to report
      }
      if (err instanceof StoreOpenError) throw err;
      throw new StoreOpenError(describeOpenFailure(options.path, existed, err));
    }
  }

  recordJoin(join: InstanceJoin): Promise<BotInstanceRecord> {
    // One statement, so one implicit transaction: the join's only durable write.
    const entry = historyJson([
      { atMs: join.atMs, remoteAddress: join.remoteAddress, jti: join.jti, result: "ok" },
    ]).slice(1, -1);
    let row: SqlRow | undefined;
    try {
      row = this.#upsert.get(
        this.#newId(),
        join.botName,
        join.tokenName,
        join.podUid,
        join.joinMethod,
        join.joinType,
        join.namespace,
        join.serviceAccount,
        join.podName,
        join.nodeName ?? null,
        join.atMs,
        join.atMs,
        join.tlsSerial,
        join.sshSerial,
        join.expiresAtMs,
        entry,
        entry,
      );
    } catch (err) {
      return Promise.reject(asError(err));
    }
    if (row === undefined) return Promise.reject(new Error("the upsert returned no row"));
    return Promise.resolve(recordOf(join, row));
  }

  recordRefused(
    key: InstanceKey,
    entry: InstanceHistoryEntry,
  ): Promise<BotInstanceRecord | undefined> {
    return this.#write(() => {
      const row = this.#byKey.get(key.botName, key.tokenName, key.podUid);
      if (row === undefined) return undefined;
      const previous = rowToInstance(row);
      this.#updateHistory.run(
        historyJson(appendHistory(previous.history, entry)),
        previous.botInstanceId,
      );
      return this.#mustGet(previous.botInstanceId);
    });
  }

  get(botInstanceId: string): Promise<BotInstanceRecord | undefined> {
    return this.#read(() => {
      const row = this.#byId.get(botInstanceId);
      return row === undefined ? undefined : rowToInstance(row);
    });
  }

  list(filter: { readonly botName?: string } = {}): Promise<readonly BotInstanceRecord[]> {
    return this.#read(() => {
      const rows =
        filter.botName === undefined ? this.#all.all() : this.#allOfBot.all(filter.botName);
      return rows.map(rowToInstance);
    });
  }

  sweep(beforeMs: number): Promise<number> {
    return this.#write(() => {
      const result = this.#sweep.run(beforeMs) as { changes: number | bigint };
      return Number(result.changes);
    });
  }

  createLock(lock: Lock): Promise<void> {
    return this.#write(() => {
      if (this.#lockByName.get(lock.name) !== undefined) throw new LockExistsError(lock.name);
      this.#insertLock.run(
        lock.name,
        lockTargetJson(lock.target),
        lock.message ?? null,
        lock.expiresAtMs ?? null,
        lock.createdAtMs ?? Date.now(),
      );
    });
  }

  listLocks(): Promise<readonly Lock[]> {
    return this.#read(() => this.#allLocks.all().map(rowToLock));
  }

  deleteLock(name: string): Promise<boolean> {
    return this.#write(() => {
      const result = this.#deleteLock.run(name) as { changes: number | bigint };
      return Number(result.changes) > 0;
    });
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      this.#db.close();
    }
    return Promise.resolve();
  }

  #mustGet(id: string): BotInstanceRecord {
    const row = this.#byId.get(id);
    if (row === undefined) throw new Error(`instance ${id} vanished inside its transaction`);
    return rowToInstance(row);
  }

  /** Runs `body` in one immediate transaction; rejects (never throws) on any failure. */
  #write<T>(body: () => T): Promise<T> {
    try {
      this.#db.exec("BEGIN IMMEDIATE");
    } catch (err) {
      return Promise.reject(asError(err));
    }
    try {
      const result = body();
      this.#db.exec("COMMIT");
      return Promise.resolve(result);
    } catch (err) {
      try {
        this.#db.exec("ROLLBACK");
      } catch {
        // SQLite may have rolled back by itself (disk full, I/O error)
      }
      return Promise.reject(asError(err));
    }
  }

  #read<T>(body: () => T): Promise<T> {
    try {
      return Promise.resolve(body());
    } catch (err) {
      return Promise.reject(asError(err));
    }
  }
}

function migrate(db: SqliteDatabase, location: string): void {
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(CREATE_SCHEMA_VERSION_TABLE);
    const row = db.prepare("SELECT coalesce(max(version), 0) AS v FROM schema_version").get();
    const current = Number(row?.["v"] ?? 0);
    for (const migration of pendingMigrations(current, location)) {
      db.exec(migration.sqlite);
      db.prepare("INSERT INTO schema_version (version, applied_at_ms) VALUES (?, ?)").run(
        migration.version,
        Date.now(),
      );
    }
    db.exec("COMMIT");
  } catch (err) {
    db.exec("ROLLBACK");
    throw err;
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** One sentence for the admin: what is wrong with the file and what to do. */
function describeOpenFailure(path: string, existed: boolean, err: unknown): string {
  const detail = (err instanceof Error ? err.message : String(err)).split("\n", 1)[0] ?? "";
  const code = (err as { code?: unknown }).code;
  if (/not a database|malformed|integrity check/i.test(detail)) {
    return (
      `the SQLite store ${path} is not a SQLite database or is corrupt (${detail}): ` +
      "restore it from a backup, or move it aside to start with an empty store"
    );
  }
  if (/unable to open|readonly|permission|access/i.test(detail) || code === "EACCES") {
    return (
      `cannot open the SQLite store ${path}${existed ? "" : " (it does not exist and cannot be created)"} ` +
      `(${detail}): check that the file and its directory exist and are readable and writable ` +
      "by this user"
    );
  }
  return `cannot open the SQLite store ${path}: ${detail}`;
}
