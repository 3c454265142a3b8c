/**
 * The one field reader for everything an admin writes: the service config (`src/config/`), the
 * bot and token resources (`src/resources/`) and, next, the agent's config. One wording for every
 * problem, "did you mean" wherever a name or a value is close to a known one. Imports only
 * leaves (dependency rule `yaml-reader-imports-only-leaves`).
 *
 * The dialect, whatever the file:
 * - absent, `null` and `""` all mean "not set" (the default applies; `must be set` if required);
 * - a value of the wrong type: `must be <what>, got <a type>` (the value itself is not echoed);
 * - a name outside a known set: `unknown field (did you mean "allow"?); known fields here: ...`;
 * - a value outside a known set: `must be one of: a, b, got "x" (did you mean "a"?)`.
 */
import { isAbsolute, resolve } from "node:path";
import { parseDuration } from "../lib/duration.ts";
import { isPlainObject } from "../lib/plain-object.ts";
import type { FieldPath, YamlSource } from "./yaml-source.ts";

export { isPlainObject };

/** Problems (fatal) and warnings (reported, loading goes on) of one load, across all files. */
export class Diagnostics {
  readonly problems: string[] = [];
  readonly warnings: string[] = [];
}

/**
 * Reads fields of one YAML document with type checks, recording every problem with its
 * `file:line:col` and field path instead of stopping at the first. Readers return `undefined`
 * for a missing or ill-typed field; the problem is already recorded.
 */
export class FieldReader {
  readonly source: YamlSource;
  readonly #diagnostics: Diagnostics;
  #problemCount = 0;

  constructor(source: YamlSource, diagnostics: Diagnostics) {
    this.source = source;
    this.#diagnostics = diagnostics;
  }

  /** How many problems this reader has recorded so far (to tell whether a part was valid). */
  get problemCount(): number {
    return this.#problemCount;
  }

  error(path: FieldPath, message: string): void {
    this.#problemCount++;
    this.#diagnostics.problems.push(this.source.problem(path, message));
  }

  warn(path: FieldPath, message: string): void {
    this.#diagnostics.warnings.push(this.source.problem(path, message));
  }

  /**
   * A mapping whose keys must all be among `known`. Each unknown key is a problem at its own
   * position (a typo like `alow` must never silently drop the rules it holds).
   */
  mapping(
    path: FieldPath,
    value: unknown,
    known: readonly string[],
  ): Record<string, unknown> | undefined {
    if (!isPlainObject(value)) {
      this.error(path, `must be a mapping, got ${describe(value)}`);
      return undefined;
    }
    for (const key of Object.keys(value)) {
      if (!known.includes(key)) this.error([...path, key], unknownField(key, known));
    }
    return value;
  }

  /** A required string; empty (or only whitespace) counts as missing. */
  requiredString(path: FieldPath, value: unknown, missing = "must be set"): string | undefined {
    if (
      value === undefined ||
      value === null ||
      (typeof value === "string" && value.trim() === "")
    ) {
      this.error(path, missing);
      return undefined;
    }
    return this.optionalString(path, value);
  }

  /** An optional string: `undefined` when absent, null or empty. */
  optionalString(path: FieldPath, value: unknown): string | undefined {
    if (value === undefined || value === null || value === "") return undefined;
    if (typeof value !== "string") {
      this.error(path, `must be a string, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  optionalBoolean(path: FieldPath, value: unknown): boolean | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "boolean") {
      this.error(path, `must be true or false, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  /** A list (`undefined` when absent or null); each item is checked by the caller. */
  optionalList(path: FieldPath, value: unknown): readonly unknown[] | undefined {
    if (value === undefined || value === null) return undefined;
    if (!Array.isArray(value)) {
      this.error(path, `must be a list, got ${describe(value)}`);
      return undefined;
    }
    return value;
  }

  /** A list of non-empty strings; ill-typed items are problems and left out. */
  stringList(path: FieldPath, value: unknown): string[] | undefined {
    const list = this.optionalList(path, value);
    if (list === undefined) return undefined;
    const out: string[] = [];
    list.forEach((item, i) => {
      const s = this.requiredString([...path, i], item, "must be a non-empty string");
      if (s !== undefined) out.push(s);
    });
    return out;
  }

  /** Like `mapping`, but absent or null is `undefined` without a problem (an optional block). */
  optionalMapping(
    path: FieldPath,
    value: unknown,
    known: readonly string[],
  ): Record<string, unknown> | undefined {
    if (value === undefined || value === null) return undefined;
    return this.mapping(path, value, known);
  }

  /**
   * An optional value out of `allowed`. A near miss gets a "did you mean" hint.
   *
   * @example r.optionalEnum(["log_level"], "inf", LOG_LEVELS)
   *   // problem: log_level: must be one of: trace, debug, info, ..., got "inf" (did you mean "info"?)
   */
  optionalEnum<T extends string>(
    path: FieldPath,
    value: unknown,
    allowed: readonly T[],
  ): T | undefined {
    if (value === undefined || value === null || value === "") return undefined;
    if (typeof value === "string" && (allowed as readonly string[]).includes(value)) {
      return value as T;
    }
    const list = `must be one of: ${allowed.join(", ")}`;
    if (typeof value !== "string") {
      this.error(path, `${list}, got ${describe(value)}`);
    } else {
      this.error(path, `${list}, got ${JSON.stringify(value)}${didYouMean(value, allowed)}`);
    }
    return undefined;
  }

  /** An optional Go duration (`90s`, `1h30m`), in milliseconds. */
  optionalDuration(path: FieldPath, value: unknown): number | undefined {
    if (value === undefined || value === null || value === "") return undefined;
    if (typeof value !== "string") {
      this.error(path, `must be a duration such as "1h" or "90s", got ${describe(value)}`);
      return undefined;
    }
    try {
      return parseDuration(value);
    } catch (err) {
      this.error(path, (err as TypeError).message);
      return undefined;
    }
  }

  /** An optional whole number of at least 1 (a count, a size). */
  optionalPositiveInt(path: FieldPath, value: unknown): number | undefined {
    if (value === undefined || value === null || value === "") return undefined;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
      const got = typeof value === "number" ? String(value) : describe(value);
      this.error(path, `must be a whole number of at least 1, got ${got}`);
      return undefined;
    }
    return value;
  }

  /** An optional file path; a relative one resolves against `baseDir` (the file's directory). */
  optionalPath(path: FieldPath, value: unknown, baseDir: string): string | undefined {
    const text = this.optionalString(path, value);
    return text === undefined ? undefined : resolvePath(baseDir, text);
  }

  /** A required file path, resolved like `optionalPath`. */
  requiredPath(
    path: FieldPath,
    value: unknown,
    baseDir: string,
    missing = "must be set",
  ): string | undefined {
    const text = this.requiredString(path, value, missing);
    return text === undefined ? undefined : resolvePath(baseDir, text);
  }

  /** A list of file paths (`undefined` when absent), each resolved like `optionalPath`. */
  pathList(path: FieldPath, value: unknown, baseDir: string): string[] | undefined {
    return this.stringList(path, value)?.map((p) => resolvePath(baseDir, p));
  }
}

/**
 * `fallback` when an admin left `value` unset (absent, null or `""`), else `value`. Defaults are
 * written as the admin would write them (`"1h"`, `"127.0.0.1:3025"`), so the same reader checks
 * a default and a given value, and the docs can quote the default verbatim.
 */
export function orDefault(value: unknown, fallback: unknown): unknown {
  return value === undefined || value === null || value === "" ? fallback : value;
}

/**
 * Problems sorted by file (in the order of `files`), then line and column, so an admin reads them
 * top to bottom. Stable: problems at one position keep the order they were found in.
 */
export function inFileOrder(problems: readonly string[], files: readonly string[]): string[] {
  const order = new Map(files.map((f, i) => [f, i]));
  const keyOf = (problem: string): readonly [number, number, number] => {
    for (const [file, index] of order) {
      if (!problem.startsWith(`${file}:`)) continue;
      const m = /^(\d+):(\d+): /.exec(problem.slice(file.length + 1));
      if (m !== null) return [index, Number(m[1]), Number(m[2])];
    }
    return [order.size, 0, 0];
  };
  const keyed = problems.map((p) => ({ p, k: keyOf(p) }));
  keyed.sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.k[2] - b.k[2]);
  return keyed.map(({ p }) => p);
}

function resolvePath(baseDir: string, text: string): string {
  return isAbsolute(text) ? text : resolve(baseDir, text);
}

/** A short description of a value's type for messages; never echoes the value itself. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") return "a string";
  return `a ${typeof value}`;
}

function unknownField(key: string, known: readonly string[]): string {
  return `unknown field${didYouMean(key, known)}; known fields here: ${known.join(", ")}`;
}

/**
 * ` (did you mean "allow"?)` when one of `known` is within two edits of `given`, else `""`.
 *
 * @example `unknown join method "kubernets"${didYouMean("kubernets", KNOWN_JOIN_METHODS)}`
 */
export function didYouMean(given: string, known: readonly string[]): string {
  const close = known.find(
    (k) => editDistance(k, given) <= 2 && Math.abs(k.length - given.length) <= 2,
  );
  return close === undefined ? "" : ` (did you mean ${JSON.stringify(close)}?)`;
}

/** Levenshtein distance, for "did you mean" hints on short field names. */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
