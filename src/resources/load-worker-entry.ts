/**
 * A load worker's first module. For a reload it lowers the thread's priority (Linux keeps a nice
 * value per thread) before it loads the worker's own modules: loading them is most of what a
 * worker's start costs, and a static import would run it first, at the process's priority.
 */
import { setPriority } from "node:os";
import { workerData } from "node:worker_threads";
import type { LoadWorkerData } from "./loader.ts";

/**
 * Nice value of a reload's worker: the lowest (19), so it takes only what the event loop and the
 * rest leave of the CPU. Under paced joins at half capacity on two cores, the full reload's join
 * p99 was 1.4-3.7x the quiet p99 at nice 10 and 1.0-2.9x at 19 (2026-12-02, six rounds each).
 */
const WORKER_NICE = 19;

if ((workerData as LoadWorkerData).background) {
  try {
    setPriority(WORKER_NICE);
  } catch {
    // Not permitted or not supported here: the worker runs at the process's priority.
  }
}

await import(
  new URL(
    import.meta.url.endsWith(".ts") ? "./load-worker.ts" : "./load-worker.js",
    import.meta.url,
  ).href
);
