/**
 * Rows to records and back, shared by the SQL adapters: both engines use the same column names;
 * they differ only in how a value arrives (PostgreSQL's BIGINT as a string, JSONB already parsed).
 */
import type {
  BotInstanceRecord,
  InstanceHistoryEntry,
  InstanceJoin,
} from "../join/bot-instance-store.ts";
import { LOCK_TARGET_FIELDS, type Lock, type LockTarget } from "../locks/lock.ts";

type Value = unknown;
type Row = Readonly<Record<string, Value>>;

function text(row: Row, column: string): string {
  const value = row[column];
  if (typeof value !== "string") throw new TypeError(`column ${column} is not text`);
  return value;
}

function optionalText(row: Row, column: string): string | undefined {
  const value = row[column];
  return value === null || value === undefined ? undefined : text(row, column);
}

function integer(row: Row, column: string): number {
  const value = row[column];
  const n = typeof value === "string" || typeof value === "bigint" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n)) {
    throw new TypeError(`column ${column} is not an integer`);
  }
  return n;
}

function optionalInteger(row: Row, column: string): number | undefined {
  const value = row[column];
  return value === null || value === undefined ? undefined : integer(row, column);
}

function json(row: Row, column: string): unknown {
  const value = row[column];
  return typeof value === "string" ? (JSON.parse(value) as unknown) : value;
}

/** The stored history, each entry with all four fields (a missing jti is undefined). */
function history(value: unknown): InstanceHistoryEntry[] {
  if (!Array.isArray(value)) throw new TypeError("column history is not a JSON array");
  return value.map((raw: unknown) => {
    const e = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, unknown>;
    return {
      atMs: typeof e["atMs"] === "number" ? e["atMs"] : 0,
      remoteAddress: typeof e["remoteAddress"] === "string" ? e["remoteAddress"] : "",
      jti: typeof e["jti"] === "string" ? e["jti"] : undefined,
      result: typeof e["result"] === "string" ? e["result"] : "",
    };
  });
}

export function historyJson(entries: readonly InstanceHistoryEntry[]): string {
  return JSON.stringify(entries);
}

export function rowToInstance(row: Row): BotInstanceRecord {
  return {
    botInstanceId: text(row, "bot_instance_id"),
    generation: integer(row, "generation"),
    botName: text(row, "bot_name"),
    tokenName: text(row, "token_name"),
    joinMethod: text(row, "join_method"),
    joinType: text(row, "join_type"),
    namespace: text(row, "namespace"),
    serviceAccount: text(row, "service_account"),
    podName: text(row, "pod_name"),
    podUid: text(row, "pod_uid"),
    nodeName: optionalText(row, "node_name"),
    firstJoinMs: integer(row, "first_join_ms"),
    lastJoinMs: integer(row, "last_join_ms"),
    tlsSerial: text(row, "tls_serial"),
    sshSerial: text(row, "ssh_serial"),
    expiresAtMs: integer(row, "expires_at_ms"),
    history: history(json(row, "history")),
  };
}

export function lockTargetJson(target: LockTarget): string {
  return JSON.stringify(target);
}

export function rowToLock(row: Row): Lock {
  const raw = json(row, "target");
  const target: Partial<Record<(typeof LOCK_TARGET_FIELDS)[number], string>> = {};
  if (typeof raw === "object" && raw !== null) {
    for (const field of LOCK_TARGET_FIELDS) {
      const value = (raw as Record<string, unknown>)[field];
      if (typeof value === "string") target[field] = value;
    }
  }
  return {
    name: text(row, "name"),
    target,
    message: optionalText(row, "message"),
    expiresAtMs: optionalInteger(row, "expires_at_ms"),
    createdAtMs: optionalInteger(row, "created_at_ms"),
    origin: "store",
  };
}

/**
 * The record an upsert made: the join's own facts plus what the row decided (id, generation,
 * first join, history). Built directly, not through `rowToInstance`: it is on every join's path.
 */
export function recordOf(join: InstanceJoin, row: Row): BotInstanceRecord {
  return {
    botInstanceId: text(row, "bot_instance_id"),
    generation: integer(row, "generation"),
    botName: join.botName,
    tokenName: join.tokenName,
    joinMethod: join.joinMethod,
    joinType: join.joinType,
    namespace: join.namespace,
    serviceAccount: join.serviceAccount,
    podName: join.podName,
    podUid: join.podUid,
    nodeName: join.nodeName,
    firstJoinMs: integer(row, "first_join_ms"),
    lastJoinMs: join.atMs,
    tlsSerial: join.tlsSerial,
    sshSerial: join.sshSerial,
    expiresAtMs: join.expiresAtMs,
    history: history(json(row, "history")),
  };
}
