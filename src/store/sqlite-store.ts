/**
 * The SQLite adapter: the default store, one file in `data_dir`, nothing to run beside kube-join.
 *
 * Durability: WAL journal with `synchronous=NORMAL`. A commit is in the WAL file (the OS page
 * cache) before `recordJoin` resolves, so killing the process, even with SIGKILL, loses no
 * answered join; only an OS crash or power loss can drop the last commits before a checkpoint.
 * `FULL` would add an fsync to every join, and this binding is synchronous: the fsync would stall
 * the event loop, and every other join with it. docs/operations.md says the same.
 *
 * Group commit: the joins that call `recordJoin` in one turn of the event loop are written in
 * one `BEGIN IMMEDIATE ... COMMIT` when that turn ends (`setImmediate`), and each join's promise
 * resolves only after the commit. A transaction's fixed costs (locks, WAL frame headers and
 * checksums, the page of the table's end written once instead of once per join) are shared by
 * the batch. A failed commit refuses every join in it; a join whose own row fails (a value the
 * schema refuses) is refused alone: the batch is rolled back and its other joins written one by one.
 *
 * Checkpoints run on a worker thread (`sqlite-checkpointer.ts`), not inside a join's commit.
 *
 * Every other write is its own `BEGIN IMMEDIATE` transaction with a 5 s busy timeout, so the CLI
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
import { SqliteCheckpointer, type CheckpointReport } from "./sqlite-checkpointer.ts";
import { StoreOpenError, type Store } from "./store.ts";
import { TurnBatch, type PendingJoin } from "./turn-batch.ts";

export interface SqliteStoreOptions {
  /** The database file; created with the schema when missing. */
  readonly path: string;
  /** Forces a binding (tests); default: node:sqlite where Node has it, else better-sqlite3. */
  readonly driver?: SqliteDriverName;
  readonly newId?: () => string;
  /**
   * How often the checkpoint thread copies the WAL into the database file; 0: no thread, SQLite's
   * own automatic checkpoint inside commits (the CLI, which writes little and briefly).
   */
  readonly checkpointIntervalMs?: number;
  /** How long a write waits for another connection's write (the CLI's, a checkpoint's). */
  readonly busyTimeoutMs?: number;
  /** The most joins one transaction writes (default 256); more wait for the next. */
  readonly maxBatch?: number;
  /** Each group commit, with how many joins it wrote (a metric: joins per commit). */
  readonly onWriteBatch?: (joins: number) => void;
  readonly onCheckpoint?: (report: CheckpointReport) => void;
  /** The checkpoint thread failed (at start or later); SQLite's automatic checkpoint took over. */
  readonly onCheckpointerError?: (err: Error) => void;
}

/** The default checkpoint interval of `serve`: the WAL holds about this long's writes at most. */
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 200;
/** A WAL file larger than this is truncated back to it when the writer restarts it. */
const JOURNAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

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
  readonly #onWriteBatch: ((joins: number) => void) | undefined;
  readonly #batch: TurnBatch;
  #checkpointer: SqliteCheckpointer | undefined;
  #closed = false;

  private constructor(db: SqliteDatabase, options: SqliteStoreOptions, driver: SqliteDriverName) {
    this.#db = db;
    this.location = options.path;
    this.driver = driver;
    this.#newId = options.newId ?? (() => crypto.randomUUID());
    this.#batch = new TurnBatch(
      (batch) => this.#commit(batch),
      Math.max(1, options.maxBatch ?? 256),
    );
    this.#onWriteBatch = options.onWriteBatch;
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
      db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? 5000))}`);
      // Reads the header: a file that is not a database fails here, before anything is written.
      const check = db.prepare("PRAGMA quick_check").get();
      if (check?.["quick_check"] !== "ok") {
        throw new Error(`integrity check failed: ${String(check?.["quick_check"])}`);
      }
      db.exec("PRAGMA journal_mode = WAL");
      db.exec("PRAGMA synchronous = NORMAL");
      db.exec(`PRAGMA journal_size_limit = ${JOURNAL_SIZE_LIMIT_BYTES}`);
      migrate(db, options.path);
      const store = new SqliteStore(db, options, driver.name);
      await store.#startCheckpointer(options);
      return store;
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
    if (this.#closed) return Promise.reject(new Error("the SQLite store is closed"));
    return this.#batch.add(join);
  }

  /** One group commit: a turn's joins (up to `maxBatch`) in one transaction. */
  #commit(batch: readonly PendingJoin[]): void {
    if (this.#closed) {
      for (const p of batch) p.reject(new Error("the SQLite store is closed"));
      return;
    }
    try {
      this.#db.exec("BEGIN IMMEDIATE");
    } catch (err) {
      for (const p of batch) p.reject(asError(err));
      return;
    }
    const rows: SqlRow[] = [];
    for (const p of batch) {
      let row: SqlRow | undefined;
      try {
        row = this.#upsertOne(p.join);
      } catch {
        // One row the database refuses must not refuse the others: write them one by one.
        this.#rollback();
        this.#writeOneByOne(batch);
        return;
      }
      rows.push(row);
    }
    try {
      this.#db.exec("COMMIT");
    } catch (err) {
      this.#rollback();
      for (const p of batch) p.reject(asError(err));
      return;
    }
    this.#onWriteBatch?.(batch.length);
    batch.forEach((p, i) => settle(p, rows[i]));
  }

  /** The slow path after a row failed inside a batch: each join in its own transaction. */
  #writeOneByOne(batch: readonly PendingJoin[]): void {
    for (const p of batch) {
      try {
        this.#db.exec("BEGIN IMMEDIATE");
      } catch (err) {
        p.reject(asError(err));
        continue;
      }
      let row: SqlRow;
      try {
        row = this.#upsertOne(p.join);
        this.#db.exec("COMMIT");
      } catch (err) {
        this.#rollback();
        p.reject(asError(err));
        continue;
      }
      this.#onWriteBatch?.(1);
      settle(p, row);
    }
  }

  /** The join's upsert, inside the caller's transaction. @throws what SQLite throws. */
  #upsertOne(join: InstanceJoin): SqlRow {
    const entry = historyJson([
      { atMs: join.atMs, remoteAddress: join.remoteAddress, jti: join.jti, result: "ok" },
    ]).slice(1, -1);
    const row = this.#upsert.get(
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
    if (row === undefined) throw new Error("the upsert returned no row");
    return row;
  }

  #rollback(): void {
    try {
      this.#db.exec("ROLLBACK");
    } catch {
      // SQLite may have rolled back by itself (disk full, I/O error)
    }
  }

  async #startCheckpointer(options: SqliteStoreOptions): Promise<void> {
    const intervalMs = options.checkpointIntervalMs ?? 0;
    if (intervalMs <= 0) return;
    const report = (err: Error): void => {
      // SQLite's own checkpoint, inside commits, bounds the WAL again.
      if (!this.#closed) this.#db.exec("PRAGMA wal_autocheckpoint = 1000");
      options.onCheckpointerError?.(err);
    };
    try {
      this.#checkpointer = await SqliteCheckpointer.start({
        path: options.path,
        driver: this.driver,
        intervalMs,
        ...(options.onCheckpoint === undefined ? {} : { onCheckpoint: options.onCheckpoint }),
        onDied: report,
      });
    } catch (err) {
      report(asError(err));
      return;
    }
    this.#db.exec("PRAGMA wal_autocheckpoint = 0");
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

  async close(): Promise<void> {
    if (this.#closed) return;
    // Joins already waiting for their commit get it.
    if (this.#batch.waiting) this.#batch.flush();
    this.#closed = true;
    this.#batch.rejectAll(new Error("the SQLite store is closed"));
    await this.#checkpointer?.stop();
    this.#db.close();
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

/** Resolves a committed join with its record (or refuses it if the row cannot be read back). */
function settle(p: PendingJoin, row: SqlRow | undefined): void {
  try {
    if (row === undefined) throw new Error("the upsert returned no row");
    p.resolve(recordOf(p.join, row));
  } catch (err) {
    p.reject(asError(err));
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
