/**
 * The service's resource loader: incremental and, when asked, off the event loop.
 *
 * - **Incremental.** Each file is keyed by the sha256 of its bytes. A file whose bytes did not
 *   change since the last load is not parsed again: its parsed bots and tokens (and their imported
 *   keys) are reused as they are. The checks across files (unique names, `bot_name` references)
 *   run over the whole set on every load, exactly as `parseResources` runs them.
 * - **Not even read, when its stat says so.** A file whose `stat` (device, inode, size, mtime and
 *   ctime, to the nanosecond) is the one it had when it was last read is not read again, unless
 *   that read came less than `RACY_MARGIN_MS` after the file's last change: a second write within
 *   one tick of the file system's clock could leave the same stat behind (git's "racily clean"
 *   entries). Such files are read and hashed once more when the margin has passed (`settle`).
 * - **Off the event loop.** Changed files are parsed and validated in worker threads, each posting
 *   one message per file; the event loop only rebuilds key sets (interned, so a JWKS shared by many
 *   tokens is one object) and runs the checks across files. Joins and probes keep being answered.
 *   A change of a few small files is parsed on the event loop itself, a file per turn: starting a
 *   worker costs more than parsing them.
 * - **All or nothing**, as `loadResources`: a load with any problem throws and the caller keeps
 *   serving what it had.
 */
import { createHash } from "node:crypto";
import { closeSync, constants, openSync, readSync } from "node:fs";
import { stat } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import { ConfigError } from "../errors.ts";
import type { KeySet } from "../jwt/keys.ts";
import {
  assembleResourceSetInSlices,
  cannotReadProblem,
  findResourceFiles,
  MAX_RESOURCE_FILE_BYTES,
  parseResourceFile,
  readResourceFile,
  tooLargeProblem,
  type ParsedFile,
} from "./load.ts";
import {
  KeySetPool,
  fingerprintsOf,
  fromTransferable,
  keySetsOf,
  toTransferable,
  type TransferableFile,
} from "./transfer.ts";
import type { ResourceSet } from "./types.ts";

/** What one load did, for logs and the bench. */
export interface LoadStats {
  readonly files: number;
  /** Files parsed because they were new or their content changed. */
  readonly parsed: number;
  /** Files whose earlier parse was reused. */
  readonly reused: number;
  /**
   * Files whose bytes were read (to hash them, or to parse them); the others' stat was trusted
   * (see `ResourceLoader`).
   */
  readonly read: number;
  /** Where the changed files were parsed: on the event loop's thread, or in load workers. */
  readonly parsedIn: "this thread" | "workers" | "nowhere";
  readonly ms: number;
}

/** The loader's tunables; the defaults are the service's. */
export interface ResourceLoaderOptions {
  /** See `RACY_MARGIN_NS`; tests shorten it. */
  readonly racyMarginMs?: number;
  /** See `PARSE_HERE_MAX_BYTES`; 0 sends every parse to the workers (when there are any). */
  readonly parseHereMaxBytes?: number;
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

/**
 * How long after a file's last change (its ctime) a read must start for its `stat` to be trusted
 * at the next load: more than any file system's timestamp tick (Linux's coarse clock: a few ms;
 * FAT: 2 s).
 */
const RACY_MARGIN_MS = 2_000;

/**
 * Changed files of at most this many bytes in all are parsed on the event loop rather than in a
 * worker: one 100-token file (110 KB) parses in a few milliseconds, a worker's start costs 0.1-0.3 s.
 */
const PARSE_HERE_MAX_BYTES = 256 * 1024;

/** What a file's `stat` said just before it was read, and when that read started. */
interface FileStamp {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  /** Whether it is a regular file (only those are read on this thread, synchronously). */
  readonly isFile: boolean;
  /** Wall clock, ns since the epoch, when the read started. */
  readonly readAtNs: bigint;
}

/** A file to parse; `read` when this thread has read it already. */
interface ToParse {
  readonly file: string;
  read: { readonly hash: string; readonly text: string } | undefined;
  readonly bytes: number;
  /** Whether this thread read it already (to hash it), with or without keeping its text. */
  readonly hashed: boolean;
}

interface KnownFile {
  readonly hash: string;
  readonly parsed: ParsedFile;
  /** Undefined when the file could not be stat'ed before its read: it is read again next time. */
  readonly stamp: FileStamp | undefined;
}

export class ResourceLoader {
  /** file -> what its bytes parsed to at the last load, and the stat they were read with. */
  #known = new Map<string, KnownFile>();
  readonly #pool = new KeySetPool();
  readonly #workers = new LoadWorkers();
  readonly #reader = new FileReader();
  #last: LoadStats | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  /** The last set assembled, and the parsed files it was assembled from. */
  #lastAssembly: { readonly files: readonly ParsedFile[]; readonly set: ResourceSet } | undefined;
  /** Bumped by every load, so a settle pass started before one gives up. */
  #generation = 0;
  readonly #racyMarginNs: bigint;
  /** Whether this thread has parsed a file yet (see `load`). */
  #warm = false;
  readonly #parseHereMaxBytes: number;

  constructor(options: ResourceLoaderOptions = {}) {
    this.#racyMarginNs = BigInt(options.racyMarginMs ?? RACY_MARGIN_MS) * 1_000_000n;
    this.#parseHereMaxBytes = options.parseHereMaxBytes ?? PARSE_HERE_MAX_BYTES;
  }

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
    const generation = ++this.#generation;
    clearTimeout(this.#settleTimer);
    const found = await findResourceFiles(paths);
    const problems = [...found.problems];
    const nowMs = options.nowMs ?? Date.now();
    const loaded = new Map<string, FileLoaded>();
    const stamps = new Map<string, FileStamp | undefined>();
    /** Files to parse, with their text and hash when this thread has read them already. */
    const toParse: ToParse[] = [];
    let unknownBytes = false;
    let readHere = 0;
    let textBytes = 0;
    for (const file of found.files) {
      const known = this.#known.get(file);
      const stamp = await stampOf(file);
      stamps.set(file, stamp);
      // A file whose parse depends on the time (locks) is parsed again on every load.
      const reusable = known !== undefined && !known.parsed.timeDependent;
      if (reusable && stamp !== undefined && this.#trusted(known.stamp, stamp)) {
        stamps.set(file, known.stamp);
        loaded.set(file, { hash: known.hash, parsed: undefined });
        continue;
      }
      if (!reusable || stamp === undefined || !stamp.isFile) {
        // Never seen (start-up): straight to the parser, which reads it.
        toParse.push({ file, read: undefined, bytes: Number(stamp?.size ?? 0), hashed: false });
        if (stamp === undefined) unknownBytes = true;
        continue;
      }
      // Seen, but its stat moved (or is not to be trusted): read and hash it here, into one
      // buffer reused for every file, so an unchanged file leaves nothing behind on this heap.
      readHere++;
      const read = this.#reader.read(file);
      if (typeof read === "string") {
        loaded.set(file, { problem: read });
      } else if (read.hash === known.hash) {
        loaded.set(file, { hash: known.hash, parsed: undefined });
      } else {
        // The text is kept only while it may still be parsed here; past the limit the workers
        // read it themselves, and 11 MB of strings kept meanwhile would outlive the young heap.
        textBytes += read.bytes;
        const text = textBytes <= this.#parseHereMaxBytes ? read.text() : undefined;
        toParse.push({
          file,
          read: text === undefined ? undefined : { hash: read.hash, text },
          bytes: read.bytes,
          hashed: true,
        });
      }
      if (readHere % 4 === 0) await yieldToEventLoop();
    }
    const bytesToParse = toParse.reduce((n, f) => n + f.bytes, 0);
    // Files read only to be parsed (the others were read above to hash them).
    const readToParse = toParse.filter((f) => !f.hashed).length;
    const here =
      options.workers === 0 || (!unknownBytes && bytesToParse <= this.#parseHereMaxBytes);
    if (!here) for (const item of toParse) item.read = undefined;
    if (here) {
      for (const item of toParse) loaded.set(item.file, await this.#loadHere(item, nowMs));
      this.#warm ||= toParse.length > 0;
    } else {
      // While the workers parse, this thread parses the smallest file itself the first time: the
      // first parse on a thread compiles the parser and the readers, a 50-60 ms stall of the event
      // loop at the first small reload otherwise (measured at 10,000 tokens), paid here at
      // start-up instead, when nothing is served yet.
      const warmUp = this.#warm ? undefined : smallest(toParse);
      this.#warm = true;
      const warming = warmUp === undefined ? undefined : this.#loadHere(warmUp, nowMs);
      // In workers, even the reading: 10,000 tokens are 11 MB of text, whose buffers would stay on
      // this thread's heap until a collection (RSS 60 MiB higher after ten reads, measured).
      const files = toParse
        .filter((item) => item !== warmUp)
        .map(({ file }) => {
          const known = this.#known.get(file);
          return { file, fingerprints: known && fingerprintsOf(known.parsed) };
        });
      const previous = (file: string) => this.#known.get(file)?.parsed;
      const [results, warmed] = await Promise.all([
        this.#workers.load(files, options, nowMs, this.#pool, previous),
        warming,
      ]);
      for (const [file, result] of results) loaded.set(file, result);
      if (warmUp !== undefined && warmed !== undefined) loaded.set(warmUp.file, warmed);
    }
    const next = new Map<string, KnownFile>();
    const order: string[] = [];
    let parsedCount = 0;
    for (const file of found.files) {
      const result = loaded.get(file);
      if (result === undefined) throw new Error(`resource loader: no result for ${file}`);
      if ("problem" in result) {
        problems.push(result.problem);
        continue;
      }
      order.push(file);
      const stamp = stamps.get(file);
      if (result.parsed === undefined) {
        next.set(file, { ...this.#known.get(file)!, stamp });
      } else {
        parsedCount++;
        next.set(file, { hash: result.hash, parsed: result.parsed, stamp });
      }
    }
    // Remembered whatever the outcome: the next load after a fix reparses only the fixed file.
    this.#known = next;
    const inUse = new Set<KeySet>();
    for (const { parsed: p } of next.values()) keySetsOf(p, inUse);
    this.#pool.retain(inUse);
    this.#last = {
      files: order.length,
      parsed: parsedCount,
      reused: order.length - parsedCount,
      read: readHere + readToParse,
      parsedIn: toParse.length === 0 ? "nowhere" : here ? "this thread" : "workers",
      ms: performance.now() - started,
    };
    this.#scheduleSettle(generation);

    const files = order.map((file) => next.get(file)!.parsed);
    let set: ResourceSet | undefined;
    try {
      // The checks across files are a function of the parsed files alone, which never change:
      // the same files in the same order give the set assembled last time (a reload that parsed
      // every file to what it was, such as a ConfigMap rewritten unchanged, builds no new maps).
      const last = this.#lastAssembly;
      set =
        last !== undefined && sameFiles(last.files, files)
          ? last.set
          : await assembleResourceSetInSlices(files);
      this.#lastAssembly = { files, set };
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(...err.problems);
    }
    if (set === undefined || problems.length > 0) throw new ConfigError(problems);
    return set;
  }

  /** Stops the load worker kept between loads, and the pending settle pass. */
  close(): void {
    clearTimeout(this.#settleTimer);
    this.#generation++;
    this.#workers.close();
  }

  /** Parses one file on this thread, its key sets interned in the pool as a worker's are. */
  async #loadHere(item: ToParse, nowMs: number): Promise<FileLoaded> {
    await yieldToEventLoop();
    // Without a reader, asynchronously: this file may not be a regular one (a FIFO would block
    // a synchronous read, and the event loop with it).
    const read = item.read ?? (await readHashed(item.file));
    if (typeof read === "string") return { problem: read };
    const parsed = parseResourceFile(item.file, read.text, nowMs);
    const known = this.#known.get(item.file);
    // Through the worker's form and a structured clone, exactly as a worker's parse arrives: its
    // key sets are interned in the pool, and its strings are copies (a string sliced from the
    // file's text would keep the whole text alive).
    return {
      hash: read.hash,
      parsed: fromTransferable(
        structuredClone(toTransferable(parsed, new Map(), known && fingerprintsOf(known.parsed))),
        this.#pool,
        known?.parsed,
      ),
    };
  }

  /**
   * Once the racy margin has passed, reads and hashes again the files whose last read came too
   * soon after their change: when the bytes are the same, their stat can be trusted from then on,
   * and the next reload need not read them. A file per turn of the event loop; a load meanwhile
   * stops it.
   */
  #scheduleSettle(generation: number): void {
    const racy = [...this.#known].filter(
      ([, k]) => k.stamp !== undefined && !this.#settled(k.stamp),
    );
    if (racy.length === 0) return;
    this.#settleTimer = setTimeout(
      () => {
        void (async () => {
          for (const [file, known] of racy) {
            if (generation !== this.#generation) return;
            const stamp = await stampOf(file);
            if (stamp === undefined || !stamp.isFile || !sameFile(known.stamp!, stamp)) continue;
            const read = this.#reader.read(file);
            if (generation !== this.#generation) return;
            if (
              typeof read !== "string" &&
              read.hash === known.hash &&
              this.#known.get(file) === known
            ) {
              this.#known.set(file, { ...known, stamp });
            }
            await yieldToEventLoop();
          }
        })();
      },
      Number(this.#racyMarginNs / 1_000_000n) + 100,
    );
    this.#settleTimer.unref();
  }

  /** Whether a read with this stamp started long enough after the file's last change. */
  #settled(stamp: FileStamp): boolean {
    return stamp.ctimeNs < stamp.readAtNs - this.#racyMarginNs && stamp.mtimeNs < stamp.readAtNs;
  }

  /** Whether `now` shows the file exactly as the settled read with `then` saw it. */
  #trusted(then: FileStamp | undefined, now: FileStamp): boolean {
    return then !== undefined && now.isFile && this.#settled(then) && sameFile(then, now);
  }
}

/** The stat of `file` now, with the time the read that follows starts; undefined on failure. */
async function stampOf(file: string): Promise<FileStamp | undefined> {
  try {
    const info = await stat(file, { bigint: true });
    return {
      dev: info.dev,
      ino: info.ino,
      size: info.size,
      mtimeNs: info.mtimeNs,
      ctimeNs: info.ctimeNs,
      isFile: info.isFile(),
      readAtNs: BigInt(Date.now()) * 1_000_000n,
    };
  } catch {
    return undefined;
  }
}

/** The smallest regular file to parse, by its stat; undefined when there is none. */
function smallest(files: readonly ToParse[]): ToParse | undefined {
  let best: ToParse | undefined;
  for (const item of files)
    if (item.bytes > 0 && (best === undefined || item.bytes < best.bytes)) best = item;
  return best;
}

function sameFiles(a: readonly ParsedFile[], b: readonly ParsedFile[]): boolean {
  return a.length === b.length && a.every((file, i) => file === b[i]);
}

function sameFile(a: FileStamp, b: FileStamp): boolean {
  return (
    a.dev === b.dev &&
    a.ino === b.ino &&
    a.size === b.size &&
    a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs
  );
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("base64url");
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Reads whole resource files into one buffer, reused: what is kept is a hash (and a string only
 * when the caller asks for the text).
 */
export class FileReader {
  #buffer: Buffer | undefined;

  /**
   * Synchronous on purpose: resource files are local (a ConfigMap volume is tmpfs) and small, so
   * each call costs microseconds, where each of the five asynchronous calls (open, stat, read,
   * read, close) cost a thread-pool round trip: reading and hashing 100 files of 110 KB took 40-60
   * ms of CPU asynchronously, 11-14 ms like this (2026-12-02). Callers yield between files.
   */
  read(file: string): string | { readonly hash: string; readonly bytes: number; text(): string } {
    let fd: number | undefined;
    try {
      // Non-blocking: a file swapped for a FIFO since its stat fails here instead of waiting.
      fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
      // One byte more than the limit, so a file over it is caught without a stat.
      const buffer = (this.#buffer ??= Buffer.allocUnsafeSlow(MAX_RESOURCE_FILE_BYTES + 1));
      let length = 0;
      for (;;) {
        const bytesRead = readSync(fd, buffer, length, buffer.length - length, length);
        if (bytesRead === 0) break;
        length += bytesRead;
        if (length > MAX_RESOURCE_FILE_BYTES) return tooLargeProblem(file);
      }
      const bytes = buffer.subarray(0, length);
      return { hash: sha256(bytes), bytes: length, text: () => bytes.toString("utf8") };
    } catch (err) {
      return cannotReadProblem(file, err);
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
}

/** A file to load: its name as messages name it. */
export interface FileToLoad {
  readonly file: string;
  /** Its documents' fingerprints at the last load: those unchanged are not sent back. */
  readonly fingerprints?: readonly string[] | undefined;
}

/** What loading one file gave: a problem, the same bytes as before, or a new parse. */
export type FileLoaded =
  { readonly problem: string } | { readonly hash: string; readonly parsed: ParsedFile | undefined };

/** Reads and parses one file: what a load worker does per file. */
export async function loadFile(
  { file }: FileToLoad,
  nowMs: number,
  reader: FileReader,
): Promise<FileLoaded> {
  const read = await readHashed(file, reader);
  if (typeof read === "string") return { problem: read };
  return { hash: read.hash, parsed: parseResourceFile(file, read.text, nowMs) };
}

/**
 * A file's text and sha256, or its problem. With `reader`, a regular file is read synchronously
 * (in a worker: through fs/promises its reads would queue in libuv's thread pool, four threads
 * shared with the event loop, ahead of the audit trail's writes that every join waits for);
 * anything else asynchronously, since a FIFO would block a synchronous read.
 */
async function readHashed(
  file: string,
  reader?: FileReader,
): Promise<string | { readonly hash: string; readonly text: string }> {
  if (reader !== undefined && (await stampOf(file))?.isFile === true) {
    const read = reader.read(file);
    return typeof read === "string" ? read : { hash: read.hash, text: read.text() };
  }
  const read = await readResourceFile(file);
  return typeof read === "string" ? read : { hash: sha256(read), text: read.toString("utf8") };
}

/** What a load worker is started with. */
export interface LoadWorkerData {
  /** Run behind the event loop (nice 19). */
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
 * The worker's first module (`load-worker-entry.ts`, which loads `load-worker.ts`): next to this
 * one, as `.ts` when running from the sources (tests, the bench's in-process parts) and `.js` from
 * `dist/`.
 */
const WORKER_URL = new URL(
  import.meta.url.endsWith(".ts") ? "./load-worker-entry.ts" : "./load-worker-entry.js",
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
    previous: (file: string) => ParsedFile | undefined,
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
                  parsed: loaded.parsed && fromTransferable(loaded.parsed, pool, previous(file)),
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
