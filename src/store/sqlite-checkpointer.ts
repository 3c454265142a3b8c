/**
 * Checkpoints of the SQLite store's WAL, off the event loop.
 *
 * SQLite's automatic checkpoint runs inside a commit on the committing thread, and fsyncs the WAL
 * and the database file even with `synchronous=NORMAL`: with a synchronous binding, that is the
 * event loop, stalled (measured: 15-40 ms every few hundred joins). Worse, with the upsert read
 * through `RETURNING` (a statement stepped once, then reset), SQLite never reaches the point where
 * it runs the automatic checkpoint, so the WAL grew until the next statement that ran to its end:
 * the lock watcher's poll, which then paid for seconds of writes at once.
 *
 * So the serving connection turns automatic checkpoints off, and a worker thread with its own
 * connection (`sqlite-checkpoint-worker.ts`) runs a PASSIVE checkpoint every `intervalMs`. The
 * WAL is then bounded by what the service writes in one interval (its file, by
 * `journal_size_limit`, once the writer restarts it). If the worker cannot start or dies, the
 * store turns SQLite's own automatic checkpoint back on: slower joins, never an unbounded WAL.
 */
import { Worker } from "node:worker_threads";
import type { CheckpointMessage, CheckpointWorkerData } from "./sqlite-checkpoint-worker.ts";
import type { SqliteDriverName } from "./sqlite-driver.ts";

/** What one checkpoint did, for tests and the log. */
export interface CheckpointReport {
  readonly walFrames: number;
  readonly checkpointed: number;
}

export interface CheckpointerOptions {
  readonly path: string;
  readonly driver: SqliteDriverName;
  readonly intervalMs: number;
  readonly onCheckpoint?: (report: CheckpointReport) => void;
  /** The worker stopped without being asked (an error in it): the store takes checkpoints back. */
  readonly onDied?: (err: Error) => void;
}

/**
 * The worker's module, beside this one: `.js` from dist. Run from source (tests, under tsx), a
 * worker does not inherit the TypeScript loader on Node 20, so a two-line bootstrap registers it
 * in the thread first.
 */
function newWorker(workerData: CheckpointWorkerData): Worker {
  if (!import.meta.url.endsWith(".ts")) {
    return new Worker(new URL("./sqlite-checkpoint-worker.js", import.meta.url), { workerData });
  }
  const api = JSON.stringify(import.meta.resolve("tsx/esm/api"));
  const entry = JSON.stringify(new URL("./sqlite-checkpoint-worker.ts", import.meta.url).href);
  return new Worker(`import(${api}).then((api) => { api.register(); return import(${entry}); });`, {
    eval: true,
    workerData,
  });
}

export class SqliteCheckpointer {
  readonly #worker: Worker;
  #stopping = false;

  private constructor(worker: Worker) {
    this.#worker = worker;
  }

  /** Starts the thread and waits until its connection is open. @throws if it cannot start. */
  static start(options: CheckpointerOptions): Promise<SqliteCheckpointer> {
    const data: CheckpointWorkerData = {
      path: options.path,
      driver: options.driver,
      intervalMs: options.intervalMs,
    };
    const worker = newWorker(data);
    return new Promise((resolve, reject) => {
      let ready = false;
      const checkpointer = new SqliteCheckpointer(worker);
      worker.on("message", (message: CheckpointMessage) => {
        if (message.type === "ready") {
          ready = true;
          // The thread must not keep a finished process alive.
          worker.unref();
          resolve(checkpointer);
        } else if (message.type === "checkpoint") {
          options.onCheckpoint?.({
            walFrames: message.walFrames,
            checkpointed: message.checkpointed,
          });
        }
      });
      const died = (err: Error): void => {
        if (!ready) {
          reject(err);
        } else if (!checkpointer.#stopping) {
          options.onDied?.(err);
        }
      };
      worker.on("error", died);
      worker.on("exit", (code) => died(new Error(`the checkpoint thread exited (${code})`)));
    });
  }

  /** Stops the thread and closes its connection. */
  async stop(): Promise<void> {
    if (this.#stopping) return;
    this.#stopping = true;
    const exited = new Promise<void>((resolve) => this.#worker.once("exit", () => resolve()));
    this.#worker.postMessage("stop");
    const timer = setTimeout(() => void this.#worker.terminate(), 2_000);
    await exited;
    clearTimeout(timer);
  }
}
