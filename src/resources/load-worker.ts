/**
 * A resource load worker (see `ResourceLoader`): reads the files of each request, hashes them, and
 * parses and validates those whose sha256 is not the one the loader already has; one message per
 * file, then `done`. Holds nothing between requests.
 *
 * For a reload it runs at a lower scheduling priority than the event loop's thread (Linux keeps
 * a nice value per thread), so on a busy machine the kernel runs joins and probes first and the
 * reload takes what is left.
 */
import { setPriority } from "node:os";
import { parentPort, workerData } from "node:worker_threads";
import type { KeySet } from "../jwt/keys.ts";
import {
  FileReader,
  loadFile,
  type LoadWorkerData,
  type ParseAnswer,
  type ParseRequest,
} from "./loader.ts";
import { toTransferable, type KeySetInTransit } from "./transfer.ts";

/**
 * Nice value of this thread: the lowest (19), so it takes only what the event loop and the rest
 * leave of the CPU. Under paced joins at half capacity on two cores, the full reload's join p99 was
 * 1.4-3.7x the quiet p99 at nice 10 and 1.0-2.9x at 19 (2026-12-02, six rounds each).
 */
const WORKER_NICE = 19;

if ((workerData as LoadWorkerData).background) {
  try {
    setPriority(WORKER_NICE);
  } catch {
    // Not permitted or not supported here: the worker runs at the process's priority.
  }
}

/** One buffer for every file this worker reads. */
const reader = new FileReader();

// Requests come one at a time (the loader waits for `done`), so they never interleave.
parentPort?.on("message", ({ id, files, nowMs }: ParseRequest) => {
  void (async () => {
    // One transferable key set per KeySet of this request (shared within each message).
    const shared = new Map<KeySet, KeySetInTransit>();
    for (const file of files) {
      const loaded = await loadFile(file, nowMs, reader);
      const answer: ParseAnswer = {
        id,
        file: file.file,
        loaded:
          "problem" in loaded
            ? loaded
            : {
                hash: loaded.hash,
                parsed: loaded.parsed && toTransferable(loaded.parsed, shared, file.fingerprints),
              },
      };
      parentPort?.postMessage(answer);
    }
    const done: ParseAnswer = { id, done: true };
    parentPort?.postMessage(done);
  })();
});
