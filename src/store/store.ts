/**
 * What `serve` and the `instances`/`lock` commands open: one engine holding both bot instances
 * and locks. Each engine is one adapter (`memory-store.ts`, `sqlite-store.ts`,
 * `postgres-store.ts`); the join sees only the ports in `src/join/`.
 */
import type { BotInstanceStore } from "../join/bot-instance-store.ts";
import type { LockStore } from "../join/lock-store.ts";

export type StoreEngine = "memory" | "sqlite" | "postgres";

export interface Store extends BotInstanceStore, LockStore {
  readonly engine: StoreEngine;
  /** Where it is, for logs and the CLI: a file path or `host:port/database`, never a password. */
  readonly location: string;
}

/**
 * The store could not be opened at start: unreadable or corrupt file, refused login, a schema
 * newer than this kube-join. Its message names the problem for the admin; no stack is printed.
 */
export class StoreOpenError extends Error {
  override readonly name = "StoreOpenError";
}
