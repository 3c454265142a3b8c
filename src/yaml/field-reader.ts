import type { FieldPath, YamlSource } from "./yaml-source.ts";

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
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
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
  const close = known.find(
    (k) => editDistance(k, key) <= 2 && Math.abs(k.length - key.length) <= 2,
  );
  const hint = close === undefined ? "" : ` (did you mean "${close}"?)`;
  return `unknown field${hint}; known fields here: ${known.join(", ")}`;
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
