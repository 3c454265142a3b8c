/**
 * The port through which the join pipeline records bot instances: one pod of one bot joining
 * with one token. The join depends on this interface only; each engine (in memory here, SQLite
 * and PostgreSQL later) is an adapter behind it, and the same contract tests run against each,
 * as node-oidc-provider does with its storage `Adapter`.
 *
 * No JWT ever reaches a store: only the facts below.
 */

/** How many joins an instance's history keeps, newest last. */
export const INSTANCE_HISTORY_LIMIT = 10;

/** Identifies an instance: the same pod of the same bot through the same token. */
export interface InstanceKey {
  readonly botName: string;
  readonly tokenName: string;
  /** The JWT's pod UID (`kubernetes.io.pod.uid`). */
  readonly podUid: string;
}

/** One successful join, as the store records it. */
export interface InstanceJoin extends InstanceKey {
  /** The join method (`kubernetes`) and its type (`static_jwks`, `oidc`). */
  readonly joinMethod: string;
  readonly joinType: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly podName: string;
  readonly nodeName: string | undefined;
  /** When the join was answered, milliseconds since the epoch. */
  readonly atMs: number;
  readonly remoteAddress: string;
  readonly jti: string | undefined;
  /**
   * The certificates' serials and expiry. The join chooses serials before signing, so one
   * durable write per join carries them.
   */
  readonly tlsSerial: string;
  readonly sshSerial: string;
  readonly expiresAtMs: number;
}

/** One entry of an instance's bounded history. */
export interface InstanceHistoryEntry {
  readonly atMs: number;
  readonly remoteAddress: string;
  readonly jti: string | undefined;
  /** `ok`, or the refusal code of a later attempt by the same pod. */
  readonly result: string;
}

/** A bot instance as stored. */
export interface BotInstanceRecord {
  /** A random UUID, chosen at the instance's first join. */
  readonly botInstanceId: string;
  /** 1 at the first join, one more at each later join of the same pod. */
  readonly generation: number;
  readonly botName: string;
  readonly tokenName: string;
  readonly joinMethod: string;
  readonly joinType: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly podName: string;
  readonly podUid: string;
  readonly nodeName: string | undefined;
  readonly firstJoinMs: number;
  readonly lastJoinMs: number;
  readonly tlsSerial: string;
  readonly sshSerial: string;
  readonly expiresAtMs: number;
  readonly history: readonly InstanceHistoryEntry[];
}

/**
 * Where bot instances live. Every method may reject when the engine is unreachable; the join
 * turns that into `store_unavailable` and issues nothing.
 */
export interface BotInstanceStore {
  /**
   * Records a successful join: a new instance (a new UUID, generation 1) for a key never seen,
   * else the next generation of the existing one. Resolves once the record is durable.
   */
  recordJoin(join: InstanceJoin): Promise<BotInstanceRecord>;
  /**
   * Adds a refused attempt (`result` = its code) to the history of the key's instance, if there
   * is one, without a new generation; resolves to that record, or undefined for an unknown key.
   */
  recordRefused(
    key: InstanceKey,
    entry: InstanceHistoryEntry,
  ): Promise<BotInstanceRecord | undefined>;
  /** One instance by id. */
  get(botInstanceId: string): Promise<BotInstanceRecord | undefined>;
  /** All instances, or one bot's, oldest first join first. */
  list(filter?: { readonly botName?: string }): Promise<readonly BotInstanceRecord[]>;
  /** Removes instances whose certificates expired before `beforeMs`; resolves to how many. */
  sweep(beforeMs: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * The reference adapter: instances in a Map, lost with the process. Used when no store is
 * configured and by the contract tests as the behaviour every engine must match.
 */
export class MemoryBotInstanceStore implements BotInstanceStore {
  readonly #byId = new Map<string, BotInstanceRecord>();
  readonly #idByKey = new Map<string, string>();
  readonly #newId: () => string;

  constructor(options: { readonly newId?: () => string } = {}) {
    this.#newId = options.newId ?? (() => crypto.randomUUID());
  }

  recordJoin(join: InstanceJoin): Promise<BotInstanceRecord> {
    const key = instanceKeyString(join);
    const existingId = this.#idByKey.get(key);
    const previous = existingId === undefined ? undefined : this.#byId.get(existingId);
    const entry: InstanceHistoryEntry = {
      atMs: join.atMs,
      remoteAddress: join.remoteAddress,
      jti: join.jti,
      result: "ok",
    };
    const record: BotInstanceRecord = {
      botInstanceId: previous?.botInstanceId ?? this.#newId(),
      generation: (previous?.generation ?? 0) + 1,
      botName: join.botName,
      tokenName: join.tokenName,
      joinMethod: join.joinMethod,
      joinType: join.joinType,
      namespace: join.namespace,
      serviceAccount: join.serviceAccount,
      podName: join.podName,
      podUid: join.podUid,
      nodeName: join.nodeName,
      firstJoinMs: previous?.firstJoinMs ?? join.atMs,
      lastJoinMs: join.atMs,
      tlsSerial: join.tlsSerial,
      sshSerial: join.sshSerial,
      expiresAtMs: join.expiresAtMs,
      history: appendHistory(previous?.history ?? [], entry),
    };
    this.#byId.set(record.botInstanceId, record);
    this.#idByKey.set(key, record.botInstanceId);
    return Promise.resolve(record);
  }

  recordRefused(
    key: InstanceKey,
    entry: InstanceHistoryEntry,
  ): Promise<BotInstanceRecord | undefined> {
    const id = this.#idByKey.get(instanceKeyString(key));
    const previous = id === undefined ? undefined : this.#byId.get(id);
    if (previous === undefined) return Promise.resolve(undefined);
    const record = { ...previous, history: appendHistory(previous.history, entry) };
    this.#byId.set(record.botInstanceId, record);
    return Promise.resolve(record);
  }

  get(botInstanceId: string): Promise<BotInstanceRecord | undefined> {
    return Promise.resolve(this.#byId.get(botInstanceId));
  }

  list(filter: { readonly botName?: string } = {}): Promise<readonly BotInstanceRecord[]> {
    const all = [...this.#byId.values()].filter(
      (r) => filter.botName === undefined || r.botName === filter.botName,
    );
    return Promise.resolve(all.sort((a, b) => a.firstJoinMs - b.firstJoinMs));
  }

  sweep(beforeMs: number): Promise<number> {
    let removed = 0;
    for (const [key, id] of this.#idByKey) {
      const record = this.#byId.get(id);
      if (record !== undefined && record.expiresAtMs < beforeMs) {
        this.#byId.delete(id);
        this.#idByKey.delete(key);
        removed += 1;
      }
    }
    return Promise.resolve(removed);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The history with `entry` added last, bounded to `INSTANCE_HISTORY_LIMIT`. */
export function appendHistory(
  history: readonly InstanceHistoryEntry[],
  entry: InstanceHistoryEntry,
): InstanceHistoryEntry[] {
  return [...history, entry].slice(-INSTANCE_HISTORY_LIMIT);
}

function instanceKeyString(key: InstanceKey): string {
  return JSON.stringify([key.botName, key.tokenName, key.podUid]);
}
