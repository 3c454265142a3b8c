/**
 * The port through which `kube-join lock create|list|delete` writes locks and every `serve`
 * process reads them (polling, so a new lock is enforced without a restart). Engines implement it
 * next to `BotInstanceStore`; the in-memory adapter here is the reference for the contract tests.
 */
import type { Lock } from "../locks/lock.ts";

export interface LockStore {
  /** Adds a lock; rejects with `LockExistsError` when one of that name exists. */
  createLock(lock: Lock): Promise<void>;
  /** Every stored lock, expired ones too (the CLI shows them until deleted), by name. */
  listLocks(): Promise<readonly Lock[]>;
  /** Removes a lock; resolves to whether one of that name existed. */
  deleteLock(name: string): Promise<boolean>;
}

/** A lock of that name is already stored. */
export class LockExistsError extends Error {
  override readonly name = "LockExistsError";
  constructor(lockName: string) {
    super(`a lock named ${JSON.stringify(lockName)} already exists`);
  }
}

export class MemoryLockStore implements LockStore {
  readonly #locks = new Map<string, Lock>();

  createLock(lock: Lock): Promise<void> {
    if (this.#locks.has(lock.name)) return Promise.reject(new LockExistsError(lock.name));
    this.#locks.set(lock.name, { ...lock, origin: "store" });
    return Promise.resolve();
  }

  listLocks(): Promise<readonly Lock[]> {
    return Promise.resolve([...this.#locks.values()].sort((a, b) => compare(a.name, b.name)));
  }

  deleteLock(name: string): Promise<boolean> {
    return Promise.resolve(this.#locks.delete(name));
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
