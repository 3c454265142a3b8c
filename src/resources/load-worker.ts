/**
 * A resource load worker (see `ResourceLoader`): reads the files of each request, hashes them, and
 * parses and validates those whose sha256 is not the one the loader already has; one message per
 * file, then `done`. Holds nothing between requests.
 *
 * For a reload it runs at a lower scheduling priority than the event loop's thread (Linux keeps
 * a nice value per thread), so on a busy machine the kernel runs joins and probes first and the
 * reload takes what is left: `load-worker-entry.ts`, its first module, sets it.
 */
import { setTimeout as sleep } from "node:timers/promises";
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
 * The share of a reload's time this worker spends parsing: after each file it sleeps as long as
 * the file took. Nice 19 gives the event loop the CPU whenever both want it, but not its caches,
 * nor the CPU of V8's helper threads, which compile and collect for this worker at the process's
 * priority; join p50 still rose from 1.2-1.3 to 1.6-1.8 ms during a full reload of 10,000 tokens.
 * At half the duty, the reload takes 1.0-1.1 s instead of 0.7 s without load, and under paced
 * joins at half capacity the full reload's join p99 was 0.42-1.77x the p99 without a reload (the
 * medians of three alternated pairs, five runs) against 2.16x and 2.34x at full duty (two runs;
 * 2026-12-02). Start-up and `kube-join check` parse at full duty: nothing is served meanwhile.
 */
const RELOAD_DUTY = 0.5;

/** Whether this worker parses reloads (behind the event loop) or start-up and `check`. */
const background = (workerData as LoadWorkerData).background;

/** One buffer for every file this worker reads. */
const reader = new FileReader();

// Requests come one at a time (the loader waits for `done`), so they never interleave.
parentPort?.on("message", ({ id, files, nowMs }: ParseRequest) => {
  void (async () => {
    // One transferable key set per KeySet of this request (shared within each message).
    const shared = new Map<KeySet, KeySetInTransit>();
    for (const [i, file] of files.entries()) {
      const started = performance.now();
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
      if (background && i < files.length - 1) {
        await sleep(((performance.now() - started) * (1 - RELOAD_DUTY)) / RELOAD_DUTY);
      }
    }
    const done: ParseAnswer = { id, done: true };
    parentPort?.postMessage(done);
  })();
});
