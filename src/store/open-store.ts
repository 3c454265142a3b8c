/**
 * Opens the store the service config names (`store:` block): the one place that knows every
 * engine, so `serve` and the `instances`/`lock` commands open the same thing the same way.
 */
import { mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { existsSync } from "node:fs";
import { MemoryStore } from "./memory-store.ts";
import { StoreOpenError, type Store } from "./store.ts";

export type StoreConfig =
  | { readonly engine: "memory" }
  | { readonly engine: "sqlite"; readonly path: string }
  | {
      readonly engine: "postgres";
      /** A URL without a password; undefined: `urlFile`, or libpq's `PG*` variables alone. */
      readonly url: string | undefined;
      /** A file holding the whole URL (a Secret), read when the store opens. */
      readonly urlFile: string | undefined;
      /** A file holding the password; else the URL file's, or `PGPASSWORD`. */
      readonly passwordFile: string | undefined;
      readonly poolSize: number;
    };

export interface OpenStoreOptions {
  /** The CLI reads an existing store only; `serve` creates the SQLite file at its first start. */
  readonly mustExist?: boolean;
  /** PostgreSQL connection errors outside a query (a restart): for the log. */
  readonly onIdleError?: (err: Error) => void;
  /**
   * `serve` writes a join at a time under load: SQLite checkpoints on a thread of their own
   * (`sqlite-checkpointer.ts`). The CLI writes once and leaves SQLite its automatic checkpoint.
   */
  readonly serving?: boolean;
  /** Each group commit (SQLite) or batched statement (PostgreSQL): how many joins it wrote. */
  readonly onWriteBatch?: (joins: number) => void;
  /** The SQLite checkpoint thread failed; SQLite's own checkpoints took over (for the log). */
  readonly onCheckpointerError?: (err: Error) => void;
}

/**
 * @throws StoreOpenError with a sentence for the admin (never a stack, never a password).
 */
export async function openStore(
  config: StoreConfig,
  options: OpenStoreOptions = {},
): Promise<Store> {
  switch (config.engine) {
    case "memory":
      return new MemoryStore();
    case "sqlite": {
      if (options.mustExist === true && !existsSync(config.path)) {
        throw new StoreOpenError(
          `no SQLite store at ${config.path} yet: kube-join serve creates it when it first starts`,
        );
      }
      if (options.mustExist !== true) {
        // serve's first start: data_dir may not exist yet (the CA makes it too, after this).
        try {
          await mkdir(dirname(config.path), { recursive: true, mode: 0o700 });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? "error";
          throw new StoreOpenError(
            `cannot create the directory of the SQLite store ${config.path} (${code})`,
          );
        }
      }
      const { SqliteStore, DEFAULT_CHECKPOINT_INTERVAL_MS } = await import("./sqlite-store.ts");
      return SqliteStore.open({
        path: config.path,
        checkpointIntervalMs: options.serving === true ? DEFAULT_CHECKPOINT_INTERVAL_MS : 0,
        ...(options.onWriteBatch === undefined ? {} : { onWriteBatch: options.onWriteBatch }),
        ...(options.onCheckpointerError === undefined
          ? {}
          : { onCheckpointerError: options.onCheckpointerError }),
      });
    }
    case "postgres": {
      const password =
        config.passwordFile === undefined
          ? undefined
          : await readSecretFile(config.passwordFile, "store.postgres.password_file");
      const url =
        config.urlFile === undefined
          ? (config.url ?? "postgres://")
          : await readSecretFile(config.urlFile, "store.postgres.url_file");
      // Loaded on demand: a SQLite deployment never loads pg.
      const { PostgresStore } = await import("./postgres-store.ts");
      return PostgresStore.open({
        url,
        password,
        poolSize: config.poolSize,
        ...(options.onWriteBatch === undefined ? {} : { onWriteBatch: options.onWriteBatch }),
        ...(options.onIdleError === undefined ? {} : { onIdleError: options.onIdleError }),
      });
    }
  }
}

/** A one-line secret (password, URL): its text without the trailing newline; never echoed. */
async function readSecretFile(file: string, key: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new StoreOpenError(`cannot read ${key} ${file} (${code})`);
  }
  // A Secret mount or `echo pw > file` ends in a newline that is not part of the value.
  const value = text.replace(/\r?\n$/, "");
  if (value === "") throw new StoreOpenError(`${key} ${file} is empty`);
  return value;
}
