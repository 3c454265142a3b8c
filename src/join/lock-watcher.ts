/**
 * Keeps the locks in force in memory, so a join checks them without a query: the admin's YAML
 * locks (replaced on each resource reload) and the store's (`kube-join lock create`), polled every
 * `intervalMs`. A new stored lock is enforced by every `serve` on the store within one interval.
 *
 * A `bot_instance_id` lock is resolved at poll time to the instance's key (bot, token, pod UID),
 * so a join, which knows its key but not yet its instance id, still matches it from memory.
 *
 * A failed poll keeps the last good set: a database blip neither lifts locks nor blocks joins
 * that the store itself would refuse anyway (an instance that cannot be recorded is refused).
 */
import { LockSet, type Lock } from "../locks/lock.ts";
import type { BotInstanceStore, InstanceKey } from "./bot-instance-store.ts";
import type { LockStore } from "./lock-store.ts";

export interface LockWatcherOptions {
  /** Locks to poll, and instances to resolve `bot_instance_id` locks against. */
  readonly store: LockStore & Pick<BotInstanceStore, "get">;
  /** Default 2 s: well inside the 5 s within which a new lock must be enforced. */
  readonly intervalMs?: number;
  /** A poll failed (logged by the caller); called once per failure streak. */
  readonly onPollError?: (err: unknown) => void;
  /** Polls succeed again after a failure streak. */
  readonly onPollRecovered?: () => void;
}

export class LockWatcher {
  readonly #store: LockStore & Pick<BotInstanceStore, "get">;
  readonly #intervalMs: number;
  readonly #onPollError: ((err: unknown) => void) | undefined;
  readonly #onPollRecovered: (() => void) | undefined;
  #fromResources: readonly Lock[] = [];
  #fromStore: readonly Lock[] = [];
  #current = LockSet.EMPTY;
  /** Instance key -> id, for the instances that some lock names. */
  #lockedInstances = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #failing = false;
  #polling: Promise<void> | undefined;

  constructor(options: LockWatcherOptions) {
    this.#store = options.store;
    this.#intervalMs = options.intervalMs ?? 2_000;
    this.#onPollError = options.onPollError;
    this.#onPollRecovered = options.onPollRecovered;
  }

  /** The locks in force: what the join consults. */
  get current(): LockSet {
    return this.#current;
  }

  /** Every lock known, from the resources and from the store (expired ones included), for display. */
  get all(): readonly Lock[] {
    return [...this.#fromResources, ...this.#fromStore];
  }

  /**
   * The instance id of `key` when a lock names that instance, else undefined: what a join puts
   * in its `LockSubject` before it has recorded (and so learnt) its own instance id.
   */
  lockedInstanceIdOf(key: InstanceKey): string | undefined {
    if (this.#lockedInstances.size === 0) return undefined;
    return this.#lockedInstances.get(instanceKeyString(key));
  }

  /** Replaces the YAML locks (at start and on every good reload). */
  setResourceLocks(locks: readonly Lock[]): void {
    this.#fromResources = locks;
    this.#rebuild();
    // A YAML lock on an instance is resolved by the next poll; start it now.
    if (locks.some((l) => l.target.bot_instance_id !== undefined)) void this.poll();
  }

  /** Reads the store once now, then every interval until `stop()`. */
  async start(): Promise<void> {
    await this.poll();
    this.#timer = setInterval(() => void this.poll(), this.#intervalMs);
    this.#timer.unref();
  }

  /** One read of the store; never rejects. Concurrent calls share one read. */
  poll(): Promise<void> {
    this.#polling ??= this.#pollOnce().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #pollOnce(): Promise<void> {
    try {
      const fromStore = await this.#store.listLocks();
      const instances = new Map<string, string>();
      for (const lock of [...this.#fromResources, ...fromStore]) {
        const id = lock.target.bot_instance_id;
        if (id === undefined) continue;
        const record = await this.#store.get(id);
        if (record !== undefined) instances.set(instanceKeyString(record), id);
      }
      this.#fromStore = fromStore;
      this.#lockedInstances = instances;
      this.#rebuild();
      if (this.#failing) {
        this.#failing = false;
        this.#onPollRecovered?.();
      }
    } catch (err) {
      if (!this.#failing) {
        this.#failing = true;
        this.#onPollError?.(err);
      }
    }
  }

  #rebuild(): void {
    this.#current = new LockSet([...this.#fromResources, ...this.#fromStore]);
  }
}

function instanceKeyString(key: InstanceKey): string {
  return JSON.stringify([key.botName, key.tokenName, key.podUid]);
}
