/**
 * The store kept in memory, lost with the process: the reference adapter, and `store: {engine:
 * memory}` for the bench's baseline. Not for production: a restart forgets every instance and
 * every lock made with the CLI.
 */
import {
  MemoryBotInstanceStore,
  type BotInstanceRecord,
  type InstanceHistoryEntry,
  type InstanceJoin,
  type InstanceKey,
} from "../join/bot-instance-store.ts";
import { MemoryLockStore } from "../join/lock-store.ts";
import type { Lock } from "../locks/lock.ts";
import type { Store } from "./store.ts";

export class MemoryStore implements Store {
  readonly engine = "memory";
  readonly location = "memory";
  readonly #instances = new MemoryBotInstanceStore();
  readonly #locks = new MemoryLockStore();

  recordJoin(join: InstanceJoin): Promise<BotInstanceRecord> {
    return this.#instances.recordJoin(join);
  }
  recordRefused(
    key: InstanceKey,
    entry: InstanceHistoryEntry,
  ): Promise<BotInstanceRecord | undefined> {
    return this.#instances.recordRefused(key, entry);
  }
  get(botInstanceId: string): Promise<BotInstanceRecord | undefined> {
    return this.#instances.get(botInstanceId);
  }
  list(filter?: { readonly botName?: string }): Promise<readonly BotInstanceRecord[]> {
    return this.#instances.list(filter);
  }
  sweep(beforeMs: number): Promise<number> {
    return this.#instances.sweep(beforeMs);
  }
  createLock(lock: Lock): Promise<void> {
    return this.#locks.createLock(lock);
  }
  listLocks(): Promise<readonly Lock[]> {
    return this.#locks.listLocks();
  }
  deleteLock(name: string): Promise<boolean> {
    return this.#locks.deleteLock(name);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
