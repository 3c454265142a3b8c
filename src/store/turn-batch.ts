/**
 * Group commit's waiting room, shared by the SQL adapters: the joins whose `recordJoin` was called
 * in one turn of the event loop are handed to the adapter's write together when that turn ends
 * (after its I/O callbacks and their microtasks: `setImmediate`), and each join's promise is
 * settled by that write. SQLite writes a batch in one transaction, PostgreSQL in one statement.
 */
import type { BotInstanceRecord, InstanceJoin } from "../join/bot-instance-store.ts";

/** A join waiting for its write. */
export interface PendingJoin {
  readonly join: InstanceJoin;
  readonly resolve: (record: BotInstanceRecord) => void;
  readonly reject: (err: Error) => void;
}

export class TurnBatch {
  #pending: PendingJoin[] = [];
  #scheduled = false;
  readonly #write: (batch: PendingJoin[]) => void;
  readonly #max: number;

  /** `write` takes at most `max` joins at a time; the others wait for the next turn. */
  constructor(write: (batch: PendingJoin[]) => void, max = Number.POSITIVE_INFINITY) {
    this.#write = write;
    this.#max = max;
  }

  /** Whether joins are waiting. */
  get waiting(): boolean {
    return this.#pending.length > 0;
  }

  /** Queues a join for this turn's write; settled by that write. */
  add(join: InstanceJoin): Promise<BotInstanceRecord> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ join, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Hands the waiting joins (at most `max`) to the write now. */
  flush(): void {
    const batch = this.#pending.splice(0, this.#max);
    if (this.#pending.length > 0) setImmediate(() => this.flush());
    else this.#scheduled = false;
    if (batch.length > 0) this.#write(batch);
  }

  /** Refuses every join still waiting. */
  rejectAll(err: Error): void {
    for (const p of this.#pending.splice(0)) p.reject(err);
  }
}
