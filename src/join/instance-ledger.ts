/**
 * What the join asks of bot instances and locks, in two steps around issuing:
 *
 *   authenticated -> `refuseIfLocked` (memory only) -> `record` (one durable write) -> sign
 *
 * `record` resolves only once the store holds the instance, so no certificate leaves without its
 * record; a failed write is `store_unavailable` (the caller retries after `Retry-After`). Outages
 * are reported once each, when the first write fails and when the first write succeeds again.
 */
import { JoinError } from "../errors.ts";
import { lockSubjectOf, type Lock, type LockSet } from "../locks/lock.ts";
import type {
  BotInstanceRecord,
  BotInstanceStore,
  InstanceHistoryEntry,
  InstanceJoin,
  InstanceKey,
} from "./bot-instance-store.ts";

/** Seconds a refused caller should wait: about how long a database failover takes to show. */
export const STORE_RETRY_AFTER_SECONDS = 5;

/** `join_locked`, with the lock's name for the audit trail (never for the caller). */
export class JoinLockedError extends JoinError {
  readonly lockName: string;
  /** The first target field, for the metric's label (bounded: five values). */
  readonly targetField: string;

  constructor(lock: Lock) {
    // The caller may see the admin's message, never the lock's target or name.
    super(
      "join_locked",
      lock.message === undefined
        ? "a lock in force refuses new certificates for this bot"
        : `a lock in force refuses new certificates for this bot: ${lock.message}`,
    );
    this.lockName = lock.name;
    this.targetField = Object.keys(lock.target)[0] ?? "unknown";
  }
}

/** What the ledger needs of the lock watcher. */
export interface LockSource {
  readonly current: LockSet;
  lockedInstanceIdOf(key: InstanceKey): string | undefined;
}

export interface InstanceLedgerOptions {
  readonly store: BotInstanceStore;
  readonly locks?: LockSource;
  /** Every failed write (a metric). */
  readonly onWriteFailure?: (err: unknown) => void;
  /** The first failed write after a good one: log it once. */
  readonly onStoreDown?: (err: unknown) => void;
  /** The first good write after failures. */
  readonly onStoreUp?: () => void;
  /** How long each join waited for its record, group commit included, and whether it was written. */
  readonly onRecordWait?: (seconds: number, written: boolean) => void;
}

/** The facts a lock looks at, for a join that is authenticated but not yet recorded. */
export interface LockQuery extends InstanceKey {
  readonly namespace: string;
  readonly serviceAccount: string;
}

export class InstanceLedger {
  readonly #store: BotInstanceStore;
  readonly #locks: LockSource | undefined;
  readonly #options: InstanceLedgerOptions;
  #storeUp = true;

  constructor(options: InstanceLedgerOptions) {
    this.#store = options.store;
    this.#locks = options.locks;
    this.#options = options;
  }

  /** False from a failed write until the next good one. */
  get storeUp(): boolean {
    return this.#storeUp;
  }

  /** @throws JoinLockedError when a lock in force matches the join. Memory lookups only. */
  refuseIfLocked(query: LockQuery, nowMs: number): void {
    const locks = this.#locks;
    if (locks === undefined) return;
    const set = locks.current;
    if (set.size === 0) return;
    const subject = lockSubjectOf({
      ...query,
      botInstanceId: locks.lockedInstanceIdOf(query),
    });
    const lock = set.match(subject, nowMs);
    if (lock !== undefined) throw new JoinLockedError(lock);
  }

  /** Records the join durably. @throws JoinError `store_unavailable` when the write fails. */
  async record(join: InstanceJoin): Promise<BotInstanceRecord> {
    let record: BotInstanceRecord;
    const started = performance.now();
    try {
      record = await this.#store.recordJoin(join);
    } catch (err) {
      this.#options.onRecordWait?.((performance.now() - started) / 1000, false);
      this.#options.onWriteFailure?.(err);
      if (this.#storeUp) {
        this.#storeUp = false;
        this.#options.onStoreDown?.(err);
      }
      throw new JoinError(
        "store_unavailable",
        `the bot instance could not be recorded, so no certificate was issued; retry in ${STORE_RETRY_AFTER_SECONDS} s`,
      );
    }
    this.#options.onRecordWait?.((performance.now() - started) / 1000, true);
    if (!this.#storeUp) {
      this.#storeUp = true;
      this.#options.onStoreUp?.();
    }
    return record;
  }

  /**
   * Adds a refused attempt to the history of a known pod's instance. Best effort and not awaited
   * by the join: the refusal stands whether or not the store takes the note.
   */
  noteRefused(key: InstanceKey, entry: InstanceHistoryEntry): void {
    this.#store.recordRefused(key, entry).catch(() => {
      // The store is down: the write path reports outages; a lost note loses no certificate.
    });
  }
}
