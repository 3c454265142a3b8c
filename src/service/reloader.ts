/**
 * Hot reload of the resource files: on demand (SIGHUP) and when a watched file changes. Reloads
 * are serialised (a request during a reload runs once more afterwards) and file events are
 * debounced, so an editor's burst of writes costs one reload.
 *
 * Watching: the parent directory of every resource file (editors replace files by rename, which a
 * watch on the file itself would miss; Kubernetes swaps a ConfigMap's `..data` link), and every
 * configured directory itself. The watch set is rebuilt after each good reload, since a directory
 * may have gained files.
 */
import { watch, type FSWatcher } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import type { ResourceSet } from "../resources/types.ts";

export type ReloadOutcome =
  | { readonly ok: true; readonly resources: ResourceSet; readonly reason: string }
  | { readonly ok: false; readonly error: unknown; readonly reason: string };

export interface ReloaderOptions {
  /** The configured resource paths (files and directories). */
  readonly paths: readonly string[];
  readonly load: (paths: readonly string[]) => Promise<ResourceSet>;
  /** Called with every outcome; on success the caller swaps the set in. */
  readonly onReload: (outcome: ReloadOutcome) => void;
  /** Problems setting up a watch (a directory removed): logged, never fatal. */
  readonly onWatchError?: (err: unknown, path: string) => void;
  readonly debounceMs?: number;
  /** Called once by `close` (the loader's worker is stopped there). */
  readonly onClose?: () => void;
}

export class ResourceReloader {
  readonly #options: ReloaderOptions;
  readonly #watchers = new Map<string, FSWatcher>();
  /** dir -> names to react to there (undefined: any change in the directory counts). */
  #wanted = new Map<string, Set<string> | undefined>();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #pending: string | undefined;
  #queued: Promise<void> | undefined;
  #closed = false;

  constructor(options: ReloaderOptions) {
    this.#options = options;
  }

  /**
   * Loads and validates everything. Resolves once a reload that started after this call is done:
   * the one started now, or, when one is already running, the single queued reload that follows
   * it (requests made meanwhile share that queued run, which takes the latest reason).
   */
  reload(reason: string): Promise<void> {
    if (this.#closed) return Promise.resolve();
    if (this.#running === undefined) {
      this.#running = this.#run(reason).finally(() => {
        this.#running = undefined;
      });
      return this.#running;
    }
    this.#pending = reason;
    this.#queued ??= this.#running.then(() => {
      const next = this.#pending ?? reason;
      this.#pending = undefined;
      this.#queued = undefined;
      return this.reload(next);
    });
    return this.#queued;
  }

  async #run(reason: string): Promise<void> {
    let outcome: ReloadOutcome;
    try {
      const resources = await this.#options.load(this.#options.paths);
      outcome = { ok: true, resources, reason };
    } catch (error) {
      outcome = { ok: false, error, reason };
    }
    this.#options.onReload(outcome);
    if (outcome.ok) await this.watch(outcome.resources.files);
  }

  /** (Re)builds the watches for the configured paths and the files last loaded. */
  async watch(loadedFiles: readonly string[]): Promise<void> {
    if (this.#closed) return;
    // dir -> names to react to there (undefined: any change in the directory counts).
    const wanted = new Map<string, Set<string> | undefined>();
    const addFile = (file: string): void => {
      const dir = dirname(file);
      if (wanted.has(dir) && wanted.get(dir) === undefined) return;
      const names = wanted.get(dir) ?? new Set<string>();
      names.add(basename(file));
      wanted.set(dir, names);
    };
    for (const path of this.#options.paths) {
      const isDir = await stat(path).then(
        (s) => s.isDirectory(),
        () => false,
      );
      if (isDir) wanted.set(path, undefined);
      else addFile(path);
    }
    for (const file of loadedFiles) addFile(file);

    for (const [dir, watcher] of this.#watchers) {
      if (!wanted.has(dir)) {
        watcher.close();
        this.#watchers.delete(dir);
      }
    }
    // A directory still wanted keeps its watcher: closing and reopening it after every reload
    // dropped a change made in between (an edit right after a reload was never picked up). The
    // callback reads the names to react to at event time, so a kept watcher follows the new set.
    this.#wanted = wanted;
    for (const dir of wanted.keys()) {
      if (this.#watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, { persistent: false }, (_event, name) => {
          if (!this.#wanted.has(dir)) return;
          const names = this.#wanted.get(dir);
          const changed = name === null ? undefined : String(name);
          // `..data` and friends: a Kubernetes ConfigMap mount swapping its contents.
          if (
            names === undefined ||
            changed === undefined ||
            names.has(changed) ||
            changed.startsWith("..")
          ) {
            this.#schedule(`file change: ${changed ?? dir}`);
          }
        });
        watcher.on("error", (err) => this.#options.onWatchError?.(err, dir));
        this.#watchers.set(dir, watcher);
      } catch (err) {
        this.#options.onWatchError?.(err, dir);
      }
    }
  }

  #schedule(reason: string): void {
    if (this.#closed) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.reload(reason);
    }, this.#options.debounceMs ?? 200);
    this.#timer.unref();
  }

  /** Stops watching; later reload requests are ignored. */
  close(): void {
    if (!this.#closed) this.#options.onClose?.();
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }
}
