/**
 * The SQLite checkpointer's thread: its own connection to the store's file, running
 * `PRAGMA wal_checkpoint(PASSIVE)` every `intervalMs`. A checkpoint copies the WAL's pages into
 * the database file and fsyncs both; here, that disk wait falls on this thread, not on the event
 * loop that answers joins. PASSIVE never waits for the writer: it copies what it can and returns.
 *
 * Started by `sqlite-checkpointer.ts`; reports each checkpoint that did work to its parent.
 */
import { readlinkSync } from "node:fs";
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import { loadSqliteDriver, type SqliteDriverName } from "./sqlite-driver.ts";

export interface CheckpointWorkerData {
  readonly path: string;
  readonly driver: SqliteDriverName;
  readonly intervalMs: number;
}

/** What the worker posts: `ready` once open, then one `checkpoint` per checkpoint that did work. */
export type CheckpointMessage =
  | { readonly type: "ready" }
  | {
      readonly type: "checkpoint";
      /** Frames in the WAL, and how many of them are now in the database file. */
      readonly walFrames: number;
      readonly checkpointed: number;
    }
  | { readonly type: "error"; readonly message: string };

const port = parentPort;
if (port === null) throw new Error("sqlite-checkpoint-worker runs as a worker thread only");
const data = workerData as CheckpointWorkerData;

/**
 * Lowers this thread's scheduling priority (Linux: a thread has its own nice value, set through
 * its thread id): on a busy machine, a checkpoint's burst of copying yields the CPU to the event
 * loop that answers joins. Elsewhere, or if refused, the thread runs at normal priority.
 */
function yieldToTheEventLoop(): void {
  try {
    const tid = Number(readlinkSync("/proc/thread-self").split("/").pop());
    if (Number.isSafeInteger(tid) && tid > 0) setPriority(tid, 10);
  } catch {
    // not Linux, or not allowed: normal priority
  }
}
yieldToTheEventLoop();

const driver = await loadSqliteDriver(data.driver);
const db = driver.open(data.path);
// Each checkpoint fsyncs the WAL then the database file (synchronous=NORMAL's durability point).
db.exec("PRAGMA busy_timeout = 1000");
db.exec("PRAGMA synchronous = NORMAL");
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
let lastFrames = -1;
let lastDone = -1;

const timer = setInterval(() => {
  try {
    const row = checkpoint.get();
    const walFrames = Number(row?.["log"] ?? 0);
    const checkpointed = Number(row?.["checkpointed"] ?? 0);
    if (walFrames !== lastFrames || checkpointed !== lastDone) {
      lastFrames = walFrames;
      lastDone = checkpointed;
      port.postMessage({ type: "checkpoint", walFrames, checkpointed } satisfies CheckpointMessage);
    }
  } catch (err) {
    // SQLITE_BUSY and the like: the next tick tries again; the parent logs nothing per tick.
    port.postMessage({
      type: "error",
      message: err instanceof Error ? err.message : String(err),
    } satisfies CheckpointMessage);
  }
}, data.intervalMs);

port.on("message", (message: unknown) => {
  if (message === "stop") {
    clearInterval(timer);
    db.close();
    port.close();
  }
});
port.postMessage({ type: "ready" } satisfies CheckpointMessage);
