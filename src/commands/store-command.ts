/**
 * What the `instances` and `lock` commands share: `--config FILE` (default: the demo config, as
 * `serve`), opening the store it names, and turning a StoreOpenError into one line on stderr.
 * They talk to the store directly, so they work while `serve` runs (SQLite's WAL lets a reader
 * and a writer share the file; PostgreSQL is shared by design).
 */
import { loadConfig } from "../config/config.ts";
import { ConfigError } from "../errors.ts";
import { openStore } from "../store/open-store.ts";
import { StoreOpenError, type Store } from "../store/store.ts";
import { DEMO_CONFIG } from "./serve.ts";

/** Splits `--config FILE` / `--config=FILE` out of the arguments. */
export function takeConfigOption(args: readonly string[]): {
  readonly configFile: string;
  readonly rest: string[];
  readonly error: string | undefined;
} {
  let configFile = DEMO_CONFIG;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg === "--config" || arg === "-c") {
      const value = args[++i];
      if (value === undefined) return { configFile, rest, error: "--config needs a file" };
      configFile = value;
    } else if (arg.startsWith("--config=")) {
      configFile = arg.slice("--config=".length);
    } else rest.push(arg);
  }
  return { configFile, rest, error: undefined };
}

/**
 * Runs `body` with the store of `configFile`; prints config and store problems (no stack) and
 * returns 1 for them.
 */
export async function withConfiguredStore(
  command: string,
  configFile: string,
  body: (store: Store) => Promise<number>,
): Promise<number> {
  let store: Store;
  try {
    const config = await loadConfig(configFile);
    store = await openStore(config.store.backend, { mustExist: true });
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const problem of err.problems) console.error(problem);
      return 1;
    }
    if (err instanceof StoreOpenError) {
      console.error(`kube-join ${command}: ${err.message}`);
      return 1;
    }
    throw err;
  }
  try {
    return await body(store);
  } finally {
    await store.close();
  }
}

/** Columns padded to the widest cell; the last column is not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** `2026-11-28T18:00:00Z`: ISO 8601 to the second, for tables. */
export function isoSeconds(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}
