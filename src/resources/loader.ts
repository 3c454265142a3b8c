/**
 * The service's resource loader: incremental and, when asked, off the event loop.
 *
 * - **Incremental.** Each file is keyed by the sha256 of its bytes. A file whose bytes did not
 *   change since the last load is not parsed again: its parsed bots and tokens (and their imported
 *   keys) are reused as they are. The checks across files (unique names, `bot_name` references)
 *   run over the whole set on every load, exactly as `parseResources` runs them.
 * - **Off the event loop.** Changed files are parsed and validated in worker threads, each posting
 *   one message per file; the event loop only rebuilds key sets (interned, so a JWKS shared by many
 *   tokens is one object) and runs the checks across files. Joins and probes keep being answered.
 * - **All or nothing**, as `loadResources`: a load with any problem throws and the caller keeps
 *   serving what it had.
 */
import { createHash } from "node:crypto";
import { Worker } from "node:worker_threads";
import { ConfigError } from "../errors.ts";
import type { KeySet } from "../jwt/keys.ts";
import {
  assembleResourceSetInSlices,
  findResourceFiles,
  parseResourceFile,
  readResourceFile,
  type ParsedFile,
} from "./load.ts";
import { KeySetPool, fromTransferable, keySetsOf, type TransferableFile } from "./transfer.ts";
import type { ResourceSet } from "./types.ts";

/** What one load did, for logs and the bench. */
export interface LoadStats {
  readonly files: number;
  /** Files parsed because they were new or their content changed. */
  readonly parsed: number;
  /** Files whose earlier parse was reused. */
  readonly reused: number;
  readonly ms: number;
}

export interface LoadOptions {
  /**
   * Worker threads that parse the changed files; 0 parses them on this thread (yielding between
   * files). The service uses 1 for reloads (the other core keeps serving joins), more at start-up.
   */
  readonly workers: number;
  /**
   * Whether the workers run behind the event loop (a lower scheduling priority): for reloads,
   * while joins are served. Start-up and `kube-join check` parse at full priority.
   */
  readonly background?: boolean;
  /** The time of the load, milliseconds since the epoch (a lock's `expires`); default now. */
  readonly nowMs?: number;
}

export class ResourceLoader {
  /** file -> what its bytes parsed to at the last load. */
  #parsed = new Map<string, { readonly hash: string; readonly parsed: ParsedFile }>();
  readonly #pool = new KeySetPool();
  readonly #workers = new LoadWorkers();
  #last: LoadStats | undefined;

  /** What the last load did (undefined before the first). */
  get lastLoad(): LoadStats | undefined {
    return this.#last;
  }

  /**
   * Reads `paths` (as `loadResources` does), parses what changed, and validates the whole set.
   *
   * @throws ConfigError with every problem; nothing of the attempt is served.
   */
  async load(paths: readonly string[], options: LoadOptions): Promise<ResourceSet> {
    const started = performance.now();
    const found = await findResourceFiles(paths);
    const problems = [...found.problems];
    const nowMs = options.nowMs ?? Date.now();
    const files: FileToLoad[] = found.files.map((file) => {
      const known = this.#parsed.get(file);
      // A file whose parse depends on the time (locks) is parsed again on every load.
      return { file, knownHash: known?.parsed.timeDependent === true ? undefined : known?.hash };
    });
    // In workers, even the reading: 10,000 tokens are 11 MB of text, whose buffers would stay on
    // this thread's heap until a collection (RSS 60 MiB higher after ten reads, measured).
    const loaded =
      options.workers > 0
        ? await this.#workers.load(files, options, nowMs, this.#pool)
        : await loadHere(files, nowMs);
    const next = new Map<string, { readonly hash: string; readonly parsed: ParsedFile }>();
    const order: string[] = [];
    let parsedCount = 0;
    for (const { file } of files) {
      const result = loaded.get(file);
      if (result === undefined) throw new Error(`resource loader: no result for ${file}`);
      if ("problem" in result) {
        problems.push(result.problem);
        continue;
      }
      order.push(file);
      if (result.parsed === undefined) {
        next.set(file, this.#parsed.get(file)!);
      } else {
        parsedCount++;
        next.set(file, { hash: result.hash, parsed: result.parsed });
      }
    }
    // Remembered whatever the outcome: the next load after a fix reparses only the fixed file.
    this.#parsed = next;
    const inUse = new Set<KeySet>();
    for (const { parsed: p } of next.values()) keySetsOf(p, inUse);
    this.#pool.retain(inUse);
    this.#last = {
      files: order.length,
      parsed: parsedCount,
      reused: order.length - parsedCount,
      ms: performance.now() - started,
    };

    let set: ResourceSet | undefined;
    try {
      set = await assembleResourceSetInSlices(order.map((file) => next.get(file)!.parsed));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
    }
    if (set === undefined || problems.length > 0) throw new ConfigError(problems);
    return set;
  }

  /** Stops the load worker kept between loads. */
  close(): void {
    this.#workers.close();
  }
}

/** A file to load: its name as messages name it, and the sha256 its last parse had. */
export interface FileToLoad {
  readonly file: string;
  readonly knownHash: string | undefined;
}

/** What loading one file gave: a problem, the same bytes as before, or a new parse. */
export type FileLoaded =
  { readonly problem: string } | { readonly hash: string; readonly parsed: ParsedFile | undefined };

/**
 * Reads one file and parses it unless its sha256 is `knownHash` (`parsed` is then undefined):
 * what a load worker does per file, and this thread when there are no workers.
 */
export async function loadFile(
  { file, knownHash }: FileToLoad,
  nowMs: number,
): Promise<FileLoaded> {
  const read = await readResourceFile(file);
  if (typeof read === "string") return { problem: read };
  const hash = createHash("sha256").update(read).digest("base64url");
  if (hash === knownHash) return { hash, parsed: undefined };
  return { hash, parsed: parseResourceFile(file, read.toString("utf8"), nowMs) };
}

async function loadHere(
  files: readonly FileToLoad[],
  nowMs: number,
): Promise<Map<string, FileLoaded>> {
  const out = new Map<string, FileLoaded>();
  for (const file of files) {
    // Key sets are shared here by parseJwks itself (its results are kept by JWKS text).
    out.set(file.file, await loadFile(file, nowMs));
    await new Promise((resolve) => setImmediate(resolve));
  }
  return out;
}

/** What a load worker is started with. */
export interface LoadWorkerData {
  /** Run behind the event loop (nice 10). */
  readonly background: boolean;
}

/** What the loader asks a load worker: parse these files. */
export interface ParseRequest {
  readonly id: number;
  readonly files: readonly FileToLoad[];
  readonly nowMs: number;
}

/** What a load worker answers: one message per file, in the order given, then `done`. */
export type ParseAnswer =
  | { readonly id: number; readonly file: string; readonly loaded: FileLoadedInTransit }
  | { readonly id: number; readonly done: true };

/** `FileLoaded` as a worker posts it. */
export type FileLoadedInTransit =
  | { readonly problem: string }
  | { readonly hash: string; readonly parsed: TransferableFile | undefined };

/**
 * The worker's module: next to this one, as `.ts` when running from the sources (tests, the
 * bench's in-process parts) and `.js` from `dist/`.
 */
const WORKER_URL = new URL(
  import.meta.url.endsWith(".ts") ? "./load-worker.ts" : "./load-worker.js",
  import.meta.url,
);

/**
 * How long a load worker is kept after a load. Its start costs more than parsing one file
 * (measured 0.3 s under load against 40 ms for a file of 100 tokens), so a burst of edits reuses
 * one; but an idle worker keeps the heap its last load grew (measured: RSS 39% higher after ten
 * full reloads of 1,000 tokens with the worker kept for good), so it is stopped once quiet.
 */
const WORKER_IDLE_MS = 2_000;

/**
 * Load workers, started on demand; at most one is kept between loads, for `WORKER_IDLE_MS`.
 * Unreferenced while idle: they never keep the process alive.
 */
class LoadWorkers {
  readonly #idle: { readonly worker: Worker; readonly background: boolean }[] = [];
  #idleTimer: NodeJS.Timeout | undefined;
  #nextId = 0;

  async load(
    files: readonly FileToLoad[],
    options: LoadOptions,
    nowMs: number,
    pool: KeySetPool,
  ): Promise<Map<string, FileLoaded>> {
    const out = new Map<string, FileLoaded>();
    if (files.length === 0) return out;
    const background = options.background === true;
    const count = Math.min(options.workers, files.length);
    clearTimeout(this.#idleTimer);
    // A thread may lower its own priority but not raise it again: reuse only a worker of the same.
    const taken: Worker[] = [];
    for (const idle of this.#idle.splice(0)) {
      if (idle.background === background && taken.length < count) taken.push(idle.worker);
      else void idle.worker.terminate();
    }
    while (taken.length < count) taken.push(startWorker(background));
    // Referenced while it works, so a caller with nothing else pending still gets its answer.
    for (const worker of taken) worker.ref();
    // Round robin: files of one directory tend to be of similar size.
    const batches = taken.map((_, w) => files.filter((_, i) => i % count === w));
    const results = await Promise.allSettled(
      taken.map((worker, w) =>
        this.#run(worker, batches[w]!, nowMs, (file, loaded) =>
          out.set(
            file,
            "problem" in loaded
              ? loaded
              : {
                  hash: loaded.hash,
                  parsed: loaded.parsed && fromTransferable(loaded.parsed, pool),
                },
          ),
        ),
      ),
    );
    results.forEach((result, w) => {
      const worker = taken[w]!;
      worker.unref();
      if (result.status === "fulfilled" && this.#idle.length === 0) {
        this.#idle.push({ worker, background });
      } else void worker.terminate();
    });
    this.#idleTimer = setTimeout(() => this.close(), WORKER_IDLE_MS);
    this.#idleTimer.unref();
    for (const result of results) if (result.status === "rejected") throw result.reason;
    return out;
  }

  #run(
    worker: Worker,
    files: readonly FileToLoad[],
    nowMs: number,
    onLoaded: (file: string, loaded: FileLoadedInTransit) => void,
  ): Promise<void> {
    const id = ++this.#nextId;
    return new Promise((resolve, reject) => {
      const cleanup = (): void => {
        worker.off("message", onMessage);
        worker.off("error", onError);
        worker.off("exit", onExit);
      };
      const onMessage = (answer: ParseAnswer): void => {
        if (answer.id !== id) return;
        if ("done" in answer) {
          cleanup();
          resolve();
        } else {
          onLoaded(answer.file, answer.loaded);
        }
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(new Error(`resource load worker failed: ${err.message}`));
      };
      const onExit = (code: number): void => {
        cleanup();
        reject(new Error(`resource load worker exited (${code}) before parsing every file`));
      };
      worker.on("message", onMessage);
      worker.once("error", onError);
      worker.once("exit", onExit);
      const request: ParseRequest = { id, files, nowMs };
      worker.postMessage(request);
    });
  }

  close(): void {
    clearTimeout(this.#idleTimer);
    for (const idle of this.#idle.splice(0)) void idle.worker.terminate();
  }
}

function startWorker(background: boolean): Worker {
  const workerData: LoadWorkerData = { background };
  // From the sources, the worker needs the TypeScript loader the tests run under (Node 20 does
  // not carry `--import tsx` into a worker).
  const worker = WORKER_URL.pathname.endsWith(".ts")
    ? new Worker(
        `import("tsx/esm/api").then((m) => { m.register(); return import(${JSON.stringify(WORKER_URL.href)}); });`,
        { eval: true, workerData },
      )
    : new Worker(WORKER_URL, { workerData });
  worker.unref();
  return worker;
}
