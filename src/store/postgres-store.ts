/**
 * The PostgreSQL adapter, for several `serve` replicas sharing instances and locks.
 *
 * A join is one row of an upsert keyed on (bot, token, pod UID) that makes generation 1 or adds
 * one to it and trims the history in SQL, so two replicas joining the same pod at the same moment
 * still give consecutive generations (the row lock of `ON CONFLICT DO UPDATE` orders them).
 *
 * Batching: the joins that reach their write in one turn of the event loop go to PostgreSQL as
 * one statement (rows passed as one JSON array, unpacked by `jsonb_to_recordset`), so one round trip and one commit (one WAL
 * flush) serve them all; each join's promise resolves when that statement has committed. The
 * rows travel as one JSON parameter. `ON
 * CONFLICT DO UPDATE` cannot touch one row twice in a statement, so a second join of the same pod
 * in a batch goes into a following statement, after the first has committed. A failed statement
 * refuses every join in it; when PostgreSQL refuses it for a value (SQLSTATE classes 22 and 23),
 * its joins are retried one statement each, so one bad row is refused alone.
 *
 * The schema is migrated at start under `pg_advisory_lock`, so replicas starting together do not
 * race to create it. The pool reconnects by itself after an outage; while PostgreSQL is down,
 * queries reject within `queryTimeoutMs` and the join answers `store_unavailable`.
 */
import pg from "pg";
import type {
  BotInstanceRecord,
  InstanceHistoryEntry,
  InstanceJoin,
  InstanceKey,
} from "../join/bot-instance-store.ts";
import { INSTANCE_HISTORY_LIMIT } from "../join/bot-instance-store.ts";
import { LockExistsError } from "../join/lock-store.ts";
import type { Lock } from "../locks/lock.ts";
import { historyJson, lockTargetJson, recordOf, rowToInstance, rowToLock } from "./rows.ts";
import { CREATE_SCHEMA_VERSION_TABLE, pendingMigrations } from "./schema.ts";
import { TurnBatch, type PendingJoin } from "./turn-batch.ts";
import { StoreOpenError, type Store } from "./store.ts";

export interface PostgresStoreOptions {
  /** `postgres://user@host:port/database`; libpq's `PG*` variables fill what it leaves out. */
  readonly url: string;
  /** From `store.postgres.password_file`; else the URL's or `PGPASSWORD`. */
  readonly password?: string | undefined;
  readonly poolSize?: number;
  /** How long one query (or getting a connection) may take before the join gives up. */
  readonly queryTimeoutMs?: number;
  /** Errors of idle connections (PostgreSQL restarting): logged, never thrown. */
  readonly onIdleError?: (err: Error) => void;
  readonly newId?: () => string;
  /** Each batched statement that committed, with how many joins it wrote (a metric). */
  readonly onWriteBatch?: (joins: number) => void;
}

/** Key of the advisory lock held while migrating: the ASCII bytes of "kubejoin" as a bigint. */
const MIGRATION_LOCK_KEY = "7743203322050341230";

/** The new history: the stored one plus `incoming` (a JSON array), the last entries only. */
const TRIMMED_HISTORY = (stored: string, incoming: string): string =>
  `(SELECT jsonb_agg(e ORDER BY o) FROM (SELECT e, o FROM jsonb_array_elements(${stored} || ${incoming}) WITH ORDINALITY AS t(e, o) ORDER BY o DESC LIMIT ${INSTANCE_HISTORY_LIMIT}) AS s)`;

/**
 * The batch is one JSON parameter, an array of one object per join with these fields: one
 * `JSON.stringify` in kube-join instead of an escaped array literal per column, and PostgreSQL
 * unpacks it (`jsonb_to_recordset`).
 */
const BATCH_FIELDS = `id text, bot text, token text, pod text, join_method text, join_type text,
    namespace text, service_account text, pod_name text, node_name text, at_ms bigint,
    tls_serial text, ssh_serial text, expires_at_ms bigint, entry jsonb`;

const UPSERT_BATCH = `
  INSERT INTO bot_instances AS i (bot_instance_id, bot_name, token_name, pod_uid, generation,
    join_method, join_type, namespace, service_account, pod_name, node_name, first_join_ms,
    last_join_ms, tls_serial, ssh_serial, expires_at_ms, history)
  SELECT id, bot, token, pod, 1, join_method, join_type, namespace, service_account, pod_name,
    node_name, at_ms, at_ms, tls_serial, ssh_serial, expires_at_ms, jsonb_build_array(entry)
  FROM jsonb_to_recordset($1::jsonb) AS t(${BATCH_FIELDS})
  ON CONFLICT (bot_name, token_name, pod_uid) DO UPDATE SET
    generation = i.generation + 1,
    join_method = EXCLUDED.join_method,
    join_type = EXCLUDED.join_type,
    namespace = EXCLUDED.namespace,
    service_account = EXCLUDED.service_account,
    pod_name = EXCLUDED.pod_name,
    node_name = EXCLUDED.node_name,
    last_join_ms = EXCLUDED.last_join_ms,
    tls_serial = EXCLUDED.tls_serial,
    ssh_serial = EXCLUDED.ssh_serial,
    expires_at_ms = EXCLUDED.expires_at_ms,
    history = ${TRIMMED_HISTORY("i.history", "EXCLUDED.history")}
  RETURNING bot_name, token_name, pod_uid, bot_instance_id, generation, first_join_ms, history`;

/** The most joins one statement carries; more go into the next. */
const MAX_BATCH = 256;

const APPEND_REFUSED = `
  UPDATE bot_instances SET history = ${TRIMMED_HISTORY("history", "$4::jsonb")}
  WHERE bot_name = $1 AND token_name = $2 AND pod_uid = $3
  RETURNING *`;

export class PostgresStore implements Store {
  readonly engine = "postgres";
  readonly location: string;
  readonly #pool: pg.Pool;
  readonly #newId: () => string;
  readonly #onWriteBatch: ((joins: number) => void) | undefined;
  readonly #batch = new TurnBatch((batch) => this.#send(batch));
  /** Statements sent and not yet settled, so `close` waits for them. */
  readonly #inFlight = new Set<Promise<void>>();

  private constructor(pool: pg.Pool, location: string, options: PostgresStoreOptions) {
    this.#pool = pool;
    this.location = location;
    this.#newId = options.newId ?? (() => crypto.randomUUID());
    this.#onWriteBatch = options.onWriteBatch;
  }

  /**
   * Connects, checks the login, and brings the schema up to date under an advisory lock.
   *
   * @throws StoreOpenError for an unreachable server, a refused login, a missing database or a
   *   schema newer than this kube-join.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const location = describeLocation(options.url);
    const timeout = options.queryTimeoutMs ?? 5_000;
    const pool = new pg.Pool({
      connectionString: withPassword(options.url, options.password),
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: timeout,
      query_timeout: timeout,
      idleTimeoutMillis: 30_000,
      application_name: "kube-join",
    });
    // Without a listener, an idle connection cut by a PostgreSQL restart would crash the process.
    pool.on("error", (err) => options.onIdleError?.(err));
    try {
      await migrate(pool, location);
    } catch (err) {
      await pool.end().catch(() => undefined);
      if (err instanceof StoreOpenError) throw err;
      throw new StoreOpenError(describeOpenFailure(location, options.url, err));
    }
    return new PostgresStore(pool, location, options);
  }

  recordJoin(join: InstanceJoin): Promise<BotInstanceRecord> {
    return this.#batch.add(join);
  }

  /** Sends a turn's joins: one statement per group of distinct pods, in order. */
  #send(pending: readonly PendingJoin[]): void {
    // A pod's second join of the batch goes into the next statement, after the first committed.
    const statements: PendingJoin[][] = [];
    const seen = new Map<string, number>();
    for (const p of pending) {
      const key = keyOf(p.join.botName, p.join.tokenName, p.join.podUid);
      const index = seen.get(key) ?? 0;
      seen.set(key, index + 1);
      let target = index;
      while ((statements[target]?.length ?? 0) >= MAX_BATCH) target += 1;
      (statements[target] ??= []).push(p);
    }
    const sending = (async () => {
      for (const batch of statements) await this.#write(batch, true);
    })();
    this.#inFlight.add(sending);
    void sending.finally(() => this.#inFlight.delete(sending));
  }

  /** One statement for `batch` (distinct pods); settles every join in it. Never rejects. */
  async #write(batch: readonly PendingJoin[], retryAlone: boolean): Promise<void> {
    let rows: Record<string, unknown>[];
    try {
      const result = await this.#pool.query({
        // Named: parsed and planned once per connection, whatever the batch's size.
        name: "kube_join_record_joins",
        text: UPSERT_BATCH,
        values: [this.#batchJson(batch)],
      });
      rows = result.rows as Record<string, unknown>[];
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      const aboutAValue = typeof code === "string" && /^2[23]/.test(code);
      if (retryAlone && aboutAValue && batch.length > 1) {
        for (const p of batch) await this.#write([p], false);
        return;
      }
      const error = err instanceof Error ? err : new Error(String(err));
      for (const p of batch) p.reject(error);
      return;
    }
    this.#onWriteBatch?.(batch.length);
    const byKey = new Map<string, Record<string, unknown>>();
    for (const row of rows) {
      byKey.set(keyOf(row["bot_name"], row["token_name"], row["pod_uid"]), row);
    }
    for (const p of batch) {
      try {
        const row = byKey.get(keyOf(p.join.botName, p.join.tokenName, p.join.podUid));
        if (row === undefined) throw new Error("the upsert returned no row for this join");
        p.resolve(recordOf(p.join, row));
      } catch (err) {
        p.reject(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  /** The batch as the statement's one parameter: a JSON array, fields as in `BATCH_FIELDS`. */
  #batchJson(batch: readonly PendingJoin[]): string {
    return JSON.stringify(
      batch.map(({ join }) => ({
        id: this.#newId(),
        bot: join.botName,
        token: join.tokenName,
        pod: join.podUid,
        join_method: join.joinMethod,
        join_type: join.joinType,
        namespace: join.namespace,
        service_account: join.serviceAccount,
        pod_name: join.podName,
        node_name: join.nodeName ?? null,
        at_ms: join.atMs,
        tls_serial: join.tlsSerial,
        ssh_serial: join.sshSerial,
        expires_at_ms: join.expiresAtMs,
        // The stored history entry, as historyJson writes it (no jti key when there is none).
        entry: {
          atMs: join.atMs,
          remoteAddress: join.remoteAddress,
          jti: join.jti,
          result: "ok",
        } satisfies InstanceHistoryEntry,
      })),
    );
  }

  async recordRefused(
    key: InstanceKey,
    entry: InstanceHistoryEntry,
  ): Promise<BotInstanceRecord | undefined> {
    const result = await this.#pool.query(APPEND_REFUSED, [
      key.botName,
      key.tokenName,
      key.podUid,
      historyJson([entry]),
    ]);
    const row = result.rows[0] as Record<string, unknown> | undefined;
    return row === undefined ? undefined : rowToInstance(row);
  }

  async get(botInstanceId: string): Promise<BotInstanceRecord | undefined> {
    const result = await this.#pool.query(
      "SELECT * FROM bot_instances WHERE bot_instance_id = $1",
      [botInstanceId],
    );
    const row = result.rows[0] as Record<string, unknown> | undefined;
    return row === undefined ? undefined : rowToInstance(row);
  }

  async list(filter: { readonly botName?: string } = {}): Promise<readonly BotInstanceRecord[]> {
    const result =
      filter.botName === undefined
        ? await this.#pool.query(
            "SELECT * FROM bot_instances ORDER BY first_join_ms, bot_instance_id",
          )
        : await this.#pool.query(
            "SELECT * FROM bot_instances WHERE bot_name = $1 ORDER BY first_join_ms, bot_instance_id",
            [filter.botName],
          );
    return (result.rows as Record<string, unknown>[]).map(rowToInstance);
  }

  async sweep(beforeMs: number): Promise<number> {
    const result = await this.#pool.query("DELETE FROM bot_instances WHERE expires_at_ms < $1", [
      beforeMs,
    ]);
    return result.rowCount ?? 0;
  }

  async createLock(lock: Lock): Promise<void> {
    try {
      await this.#pool.query(
        "INSERT INTO locks (name, target, message, expires_at_ms, created_at_ms) VALUES ($1, $2::jsonb, $3, $4, $5)",
        [
          lock.name,
          lockTargetJson(lock.target),
          lock.message ?? null,
          lock.expiresAtMs ?? null,
          lock.createdAtMs ?? Date.now(),
        ],
      );
    } catch (err) {
      if ((err as { code?: unknown }).code === "23505") throw new LockExistsError(lock.name);
      throw err;
    }
  }

  async listLocks(): Promise<readonly Lock[]> {
    const result = await this.#pool.query("SELECT * FROM locks ORDER BY name");
    return (result.rows as Record<string, unknown>[]).map(rowToLock);
  }

  async deleteLock(name: string): Promise<boolean> {
    const result = await this.#pool.query("DELETE FROM locks WHERE name = $1", [name]);
    return (result.rowCount ?? 0) > 0;
  }

  async close(): Promise<void> {
    // Joins already waiting for their statement get it before the pool closes.
    if (this.#batch.waiting) this.#batch.flush();
    await Promise.all(this.#inFlight);
    await this.#pool.end();
  }
}

/** A map key for an instance key (from a join, or from a returned row). */
function keyOf(botName: unknown, tokenName: unknown, podUid: unknown): string {
  return JSON.stringify([botName, tokenName, podUid]);
}

async function migrate(pool: pg.Pool, location: string): Promise<void> {
  const client = await pool.connect();
  try {
    // Session-level: held across the transaction below, released even if it fails.
    await client.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK_KEY})`);
    try {
      await client.query("BEGIN");
      await client.query(CREATE_SCHEMA_VERSION_TABLE);
      const current = await client.query<{ v: number }>(
        "SELECT coalesce(max(version), 0)::int AS v FROM schema_version",
      );
      for (const migration of pendingMigrations(current.rows[0]?.v ?? 0, location)) {
        await client.query(migration.postgres);
        await client.query("INSERT INTO schema_version (version, applied_at_ms) VALUES ($1, $2)", [
          migration.version,
          Date.now(),
        ]);
      }
      await client.query("COMMIT");
    } catch (err) {
      await client.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      await client.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK_KEY})`).catch(() => undefined);
    }
  } finally {
    client.release();
  }
}

/**
 * The URL with the password set. node-postgres lets the URL's fields override the config's, so a
 * separate `password` option would be dropped when the URL names the user.
 */
function withPassword(url: string, password: string | undefined): string {
  if (password === undefined) return url;
  try {
    const parsed = new URL(url);
    parsed.password = encodeURIComponent(password);
    return parsed.toString();
  } catch {
    return url; // reported as "not a URL" by describeLocation when the connection fails
  }
}

/** `postgres://host:port/database`, never the user's password. */
export function describeLocation(url: string): string {
  try {
    const parsed = new URL(url);
    const host = parsed.hostname === "" ? (process.env["PGHOST"] ?? "localhost") : parsed.host;
    return `postgres://${host}${parsed.pathname}`;
  } catch {
    return "postgres (store.postgres.url is not a URL)";
  }
}

function userOf(url: string): string {
  try {
    const user = decodeURIComponent(new URL(url).username);
    return user === "" ? (process.env["PGUSER"] ?? "the default user") : user;
  } catch {
    return "the configured user";
  }
}

/** One sentence for the admin, from a connection or login failure; never the password. */
function describeOpenFailure(location: string, url: string, err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const code = typeof e.code === "string" ? e.code : undefined;
  const detail = typeof e.message === "string" ? e.message.split("\n", 1)[0] : String(err);
  const user = userOf(url);
  switch (code) {
    case "28P01":
      return (
        `PostgreSQL at ${location} refused the password of user ${user} (28P01): check ` +
        "store.postgres.password_file (or PGPASSWORD, or the password in the URL's Secret)"
      );
    case "28000":
      return `PostgreSQL at ${location} does not let user ${user} log in (28000: ${detail}): check pg_hba.conf and the role`;
    case "3D000":
      return `PostgreSQL at ${location}: ${detail} (3D000): create it, or fix store.postgres.url`;
    case "ECONNREFUSED":
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
      return `cannot reach PostgreSQL at ${location} (${code}): check store.postgres.url and that the server runs`;
    default:
      break;
  }
  if (/password must be a string|no password/i.test(detail ?? "")) {
    return (
      `PostgreSQL at ${location} asks user ${user} for a password and none is configured: set ` +
      "store.postgres.password_file or PGPASSWORD"
    );
  }
  if (/timeout/i.test(detail ?? "")) {
    return `cannot reach PostgreSQL at ${location} (timed out): check store.postgres.url and that the server runs`;
  }
  return `cannot use the PostgreSQL store at ${location}: ${detail}${code === undefined ? "" : ` (${code})`}`;
}
