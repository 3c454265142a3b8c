/**
 * YAML text -> plain values that still know where each field was written, so a validator can
 * report `file:line:col: field.path: message`. Generic: used for bot/token resources here and for
 * the service's config file (`src/config/`). The only module of ours that imports `yaml`.
 *
 * Texts in the subset of YAML that resources and configs are written in are read by
 * `subset-parser.ts` (same values, same positions, several times cheaper); anything else, and
 * every text with a problem, by the `yaml` library, which words every problem message.
 */
import {
  LineCounter,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  parseAllDocuments,
  type Document,
  type Node as YamlNode,
} from "yaml";
import { ConfigError } from "../errors.ts";
import { parseYamlSubset, type SubsetPosition, type SubsetStream } from "./subset-parser.ts";

/** A path into a parsed value: map keys and sequence indexes, e.g. `["spec", "allow", 0]`. */
export type FieldPath = readonly (string | number)[];

/** One YAML document, as a plain JS value plus the positions of its fields. */
/** Where a resource or field was declared, for diagnostics. */
export interface SourcePosition {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export interface YamlSource {
  /** The file name as given by the caller (used verbatim in messages). */
  readonly file: string;
  /** Index of the document in its file's stream (0 for the first). */
  readonly index: number;
  /**
   * The document as plain JS: objects, arrays, strings, numbers, booleans, null. YAML 1.2 core
   * schema, so `yes` stays a string and timestamps stay strings. An empty document is `null`.
   */
  readonly value: unknown;
  /**
   * Where the field at `path` was written: the position of its key for a map entry (where an
   * admin looks for the field), of the item for a sequence index. For a path that does not exist
   * (a missing field), the position of the deepest part of it that does, so "missing" problems
   * point at the enclosing block. Lines and columns are 1-based.
   *
   * @example source.positionOf(["spec", "kubernetes", "allow", 0, "service_account"])
   */
  positionOf(path: FieldPath): SourcePosition;
  /**
   * Formats a problem about the field at `path` as `file:line:col: field.path: message`
   * (`file:line:col: message` for the empty path, i.e. the whole document).
   *
   * @example source.problem(["spec", "roles"], "must not be empty")
   *   // "bot.yaml:7:3: spec.roles: must not be empty"
   */
  problem(path: FieldPath, message: string): string;
}

/** Everything parsed from one file: its documents, and all syntax problems, formatted. */
export interface YamlStream {
  /** Documents without syntax errors, in file order (documents with errors are left out). */
  readonly documents: readonly YamlSource[];
  /** `file:line:col: message` for every syntax error; empty when the text is well-formed. */
  readonly problems: readonly string[];
  /** `file:line:col: message` for YAML warnings (e.g. an unresolved `!tag`). */
  readonly warnings: readonly string[];
}

/** Anchors/aliases expand at most this many times per document (a "billion laughs" guard). */
const MAX_ALIAS_COUNT = 100;

/**
 * Parses a multi-document YAML text (`---` separated). Never throws for bad input: syntax
 * problems come back formatted in `problems`, and the documents that parsed are still returned
 * so a validator can report their problems too.
 */
export function parseYamlDocuments(file: string, text: string): YamlStream {
  const subset = parseYamlSubset(text);
  if (subset !== undefined) return subsetStream(file, subset);
  return parseWithLibrary(file, text);
}

/**
 * `parseYamlDocuments` by the `yaml` library alone, without the subset parser: the reference
 * the subset parser is tested against, and the bench's baseline.
 */
export function parseWithLibrary(file: string, text: string): YamlStream {
  const lineCounter = new LineCounter();
  const documents: YamlSource[] = [];
  const problems: string[] = [];
  const warnings: string[] = [];
  const where = (offset: number | undefined): string => {
    const { line, col } = lineCounter.linePos(offset ?? 0);
    return `${file}:${line}:${col}`;
  };
  parseAllDocuments(text, { lineCounter, prettyErrors: false, uniqueKeys: true }).forEach(
    (doc, index) => {
      for (const w of doc.warnings) warnings.push(`${where(w.pos[0])}: ${w.message}`);
      if (doc.errors.length > 0) {
        for (const e of doc.errors) problems.push(`${where(e.pos[0])}: YAML syntax: ${e.message}`);
        return;
      }
      let value: unknown;
      try {
        value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
      } catch (err) {
        problems.push(`${where(doc.range[0])}: YAML: ${(err as Error).message}`);
        return;
      }
      documents.push(makeSource(file, index, value, (path) => offsetOf(doc, path), lineCounter));
    },
  );
  return { documents, problems, warnings };
}

function subsetStream(file: string, subset: SubsetStream): YamlStream {
  const lineCounter = new LineCounter();
  lineCounter.lineStarts.push(...subset.lineStarts);
  const documents = subset.documents.map(({ value, root }, index) =>
    makeSource(file, index, value, (path) => subsetOffsetOf(root, path), lineCounter),
  );
  return { documents, problems: [], warnings: [] };
}

/**
 * Parses a YAML text that must hold at most one document (a config file).
 *
 * @throws ConfigError with every syntax problem, or when the text holds more than one document.
 * @example
 *   const src = parseYamlDocument("kube-join.yaml", text);
 *   if (typeof src.value !== "object") throw new ConfigError([src.problem([], "must be a mapping")]);
 */
export function parseYamlDocument(file: string, text: string): YamlSource {
  const stream = parseYamlDocuments(file, text);
  if (stream.problems.length > 0) throw new ConfigError(stream.problems);
  const [first, second] = stream.documents;
  if (second !== undefined) {
    throw new ConfigError([second.problem([], "only one YAML document is allowed here")]);
  }
  return first ?? makeSource(file, 0, null, () => 0, new LineCounter());
}

/** Formats a field path the way problems show it: `spec.kubernetes.allow[0].service_account`. */
export function formatFieldPath(path: FieldPath): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(part)) out += out === "" ? part : `.${part}`;
    else out += `[${JSON.stringify(part)}]`;
  }
  return out;
}

/**
 * Formats a problem about the field at `path` found at `at`, exactly as `YamlSource.problem` does:
 * for problems found after the document itself is gone (checks across files).
 */
export function formatProblem(at: SourcePosition, path: FieldPath, message: string): string {
  const field = formatFieldPath(path);
  return field === ""
    ? `${at.file}:${at.line}:${at.col}: ${message}`
    : `${at.file}:${at.line}:${at.col}: ${field}: ${message}`;
}

function makeSource(
  file: string,
  index: number,
  value: unknown,
  offsetOfPath: (path: FieldPath) => number,
  lineCounter: LineCounter,
): YamlSource {
  const positionOf = (path: FieldPath): SourcePosition => {
    const { line, col } = lineCounter.linePos(offsetOfPath(path));
    // An empty text has no lines at all (0:0); its problems are about line 1.
    return { file, line: Math.max(line, 1), col: Math.max(col, 1) };
  };
  return {
    file,
    index,
    value,
    positionOf,
    problem(path, message) {
      return formatProblem(positionOf(path), path, message);
    },
  };
}

/** Offset of the deepest existing node along `path` (key node for map entries). */
function offsetOf(doc: Document, path: FieldPath): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? doc.range?.[0] ?? 0;
  for (const part of path) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => keyText(p.key) === String(part));
      if (pair === undefined) break;
      offset = rangeStart(pair.key) ?? rangeStart(pair.value) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof part === "number") {
      const item: unknown = node.items[part];
      if (item === undefined) break;
      offset = rangeStart(item) ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

/** `offsetOf` over the subset parser's positions: the same walk, the same answers. */
function subsetOffsetOf(root: SubsetPosition, path: FieldPath): number {
  let node = root;
  let offset = typeof node === "number" ? node : node.at;
  for (const part of path) {
    if (typeof node === "number") break;
    if ("keys" in node) {
      const i = node.keys.indexOf(String(part));
      if (i < 0) break;
      offset = node.keyAt[i]!;
      node = node.nodes[i]!;
    } else if (typeof part === "number") {
      const item = node.items[part];
      if (item === undefined) break;
      offset = typeof item === "number" ? item : item.at;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

function keyText(key: unknown): string | undefined {
  if (isScalar(key)) return String(key.value);
  return typeof key === "string" ? key : undefined;
}

function rangeStart(node: unknown): number | undefined {
  const range = (node as YamlNode | null | undefined)?.range;
  return range?.[0];
}
