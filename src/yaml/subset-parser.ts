/**
 * A hand-written parser for the subset of YAML that resources and configs are written in, used by
 * `parseYamlDocuments` before the `yaml` library (docs/scale.md: the library's lexer, CST parser
 * and composer are most of the CPU of a 10,000-token load, per node and per document).
 *
 * It returns exactly what the `yaml` path returns (the same plain values, the same offsets for
 * every field, the same documents), or `undefined` for a text outside its subset, and the caller
 * then parses the whole text with `yaml`. Anything that `yaml` would report (a syntax error, a
 * warning) or that this parser is not sure to read the same way is outside the subset, so every
 * problem message still comes from `yaml`. `test/yaml-subset.test.ts` checks the agreement on
 * every YAML file of the repository and on generated documents at the edges of the subset.
 *
 * The subset:
 * - `---` document separators (nothing else on their line but a comment), comments, blank lines,
 *   LF or CRLF line ends, a leading BOM; no tabs, directives, `...`, anchors, aliases or tags;
 * - block mappings and block sequences, including `- key: v` compact mappings, `- - x` and a
 *   sequence at its parent key's indentation;
 * - one-line plain scalars, resolved by the YAML 1.2 core schema as `yaml` does; one-line single-
 *   and double-quoted scalars (every double-quoted escape `yaml` knows, computed as it does);
 * - literal block scalars `|`, `|-`, `|+` (no indentation indicator, no `>` folding);
 * - one-line flow sequences and mappings of the above (`roles: [access]`, `{name: x}`), JSON on
 *   one line included;
 * - keys are one-line plain or quoted scalars that resolve to strings, without duplicates.
 */

/** Where a node starts, and for a collection where each of its children starts. */
export type SubsetPosition = number | MapPosition | SeqPosition;

/** A mapping: its start, and per key (in file order) where the key starts and its value's node. */
export interface MapPosition {
  readonly at: number;
  readonly keys: string[];
  readonly keyAt: number[];
  readonly nodes: SubsetPosition[];
}

/** A sequence: its start and its items' nodes (a scalar item is its start offset). */
export interface SeqPosition {
  readonly at: number;
  readonly items: SubsetPosition[];
}

/** One document of the stream: its plain value and the positions of its nodes. */
export interface SubsetDocument {
  readonly value: unknown;
  readonly root: SubsetPosition;
}

/** The text as the subset parser read it: its documents and where its lines start. */
export interface SubsetStream {
  readonly documents: SubsetDocument[];
  /** Offsets where lines start (0, then after every `\n`), as `yaml`'s `LineCounter` has them. */
  readonly lineStarts: number[];
}

/** Thrown (and caught in `parseYamlSubset`) when the text leaves the subset. */
class OutsideSubset {}
const OUTSIDE = new OutsideSubset();

function outside(): never {
  throw OUTSIDE;
}

const SPACE = 0x20;
const HASH = 0x23;
const COLON = 0x3a;
const DASH = 0x2d;
const QUOTE = 0x22;
const APOSTROPHE = 0x27;
const COMMA = 0x2c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const PIPE = 0x7c;
const BACKSLASH = 0x5c;
const BOM = 0xfeff;

/**
 * Characters that send the whole text to `yaml`: tabs, control characters, C1 controls and NEL,
 * the no-break space, Unicode line and paragraph separators, surrogates (astral characters), a BOM
 * anywhere but at the start and the non-characters; `\r` only as part of `\r\n`.
 */
const UNSUPPORTED_CHARACTER = new RegExp(
  `[\\t${controls(0x00, 0x08)}${controls(0x0b, 0x0c)}${controls(0x0e, 0x1f)}\\x7f-\\xa0` +
    `\\u2028\\u2029\\ud800-\\udfff\\ufffe\\uffff]|\\r(?!\\n)|(?!^)\\ufeff`,
);

/** A character class range of control characters, spelled as escapes. */
function controls(from: number, to: number): string {
  const hex = (c: number) => `\\x${c.toString(16).padStart(2, "0")}`;
  return `${hex(from)}-${hex(to)}`;
}

/** A plain scalar may start with anything but whitespace and these indicators. */
const INDICATOR_START = new Set([..."-?:,[]{}#&*!|>'\"%@`"].map((c) => c.charCodeAt(0)));

const FLOW_INDICATOR = new Set([..."[]{},"].map((c) => c.charCodeAt(0)));

const NULL_RE = /^(?:~|[Nn]ull|NULL)?$/;
const BOOL_RE = /^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/;
const OCT_RE = /^0o[0-7]+$/;
const INT_RE = /^[-+]?[0-9]+$/;
const HEX_RE = /^0x[0-9a-fA-F]+$/;
const NAN_INF_RE = /^(?:[-+]?\.(?:inf|Inf|INF)|\.nan|\.NaN|\.NAN)$/;
const FLOAT_EXP_RE = /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/;
const FLOAT_RE = /^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/;

/** Could `s` resolve to anything but a string (the first test of each core-schema tag)? */
const MAYBE_NOT_STRING = /^[-+.0-9~nNtTfF]/;

/**
 * A plain scalar's value by the YAML 1.2 core schema, with `yaml`'s tags in `yaml`'s order and
 * its resolve functions (`yaml/dist/schema/core/`): null, bool, octal, int, hex, .inf/.nan,
 * exponent float, float; anything else is a string.
 */
function resolvePlainScalar(s: string): unknown {
  if (s === "" || !MAYBE_NOT_STRING.test(s)) return s === "" ? null : s;
  if (NULL_RE.test(s)) return null;
  if (BOOL_RE.test(s)) return s[0] === "t" || s[0] === "T";
  if (OCT_RE.test(s)) return parseInt(s.substring(2), 8);
  if (INT_RE.test(s)) return parseInt(s, 10);
  if (HEX_RE.test(s)) return parseInt(s.substring(2), 16);
  if (NAN_INF_RE.test(s)) {
    if (s.slice(-3).toLowerCase() === "nan") return NaN;
    return s[0] === "-" ? Number.NEGATIVE_INFINITY : Number.POSITIVE_INFINITY;
  }
  if (FLOAT_EXP_RE.test(s) || FLOAT_RE.test(s)) return parseFloat(s);
  return s;
}

/** `yaml`'s double-quoted escapes (`compose/resolve-flow-scalar.js`), but for `\` + tab. */
const ESCAPES: Readonly<Record<string, string>> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  e: "\x1b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
  v: "\v",
  N: "\u0085",
  _: "\u00a0",
  L: "\u2028",
  P: "\u2029",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
};
const HEX_DIGITS = /^[0-9a-fA-F]+$/;

/**
 * Parses `text` if it lies in the subset; `undefined` if not (the caller then uses `yaml`).
 *
 * @example parseYamlSubset("kind: bot\n")?.documents[0]?.value // { kind: "bot" }
 */
export function parseYamlSubset(text: string): SubsetStream | undefined {
  if (UNSUPPORTED_CHARACTER.test(text)) return undefined;
  try {
    return new SubsetParser(text).stream();
  } catch (err) {
    // A RangeError is the call stack running out on deep nesting: `yaml` decides about that.
    if (err === OUTSIDE || err instanceof RangeError) return undefined;
    throw err;
  }
}

/** Key value pairs are kept in a plain object as `yaml`'s `toJS` makes them. */
type PlainObject = Record<string, unknown>;

class SubsetParser {
  readonly #text: string;
  /** Line `i` is `#text.slice(#starts[i], #ends[i])`, without its `\n` or `\r\n`. */
  readonly #starts: number[] = [];
  readonly #ends: number[] = [];
  /** Does the text end without a line break (its last line has none)? */
  readonly #lastLineUnterminated: boolean;
  /** The current line. */
  #line = 0;

  constructor(text: string) {
    this.#text = text;
    let start = text.charCodeAt(0) === BOM ? 1 : 0;
    const lineStarts: number[] = [0];
    for (;;) {
      const nl = text.indexOf("\n", start);
      if (nl === -1) break;
      this.#pushLine(start, nl > start && text.charCodeAt(nl - 1) === 0x0d ? nl - 1 : nl);
      start = nl + 1;
      lineStarts.push(start);
    }
    this.#lastLineUnterminated = start < text.length;
    if (this.#lastLineUnterminated) this.#pushLine(start, text.length);
    this.lineStarts = lineStarts;
  }

  readonly lineStarts: number[];

  #pushLine(start: number, end: number): void {
    const text = this.#text;
    const c = text.charCodeAt(start);
    // Column-0 lines that only the full parser reads: directives, document ends, `---` glued to
    // more text (`---x`, `----`).
    if (c === 0x25) outside();
    if (end - start >= 3) {
      if (text.startsWith("...", start)) outside();
      if (text.startsWith("---", start) && end - start > 3 && text.charCodeAt(start + 3) !== SPACE)
        outside();
    }
    this.#starts.push(start);
    this.#ends.push(end);
  }

  stream(): SubsetStream {
    const documents: SubsetDocument[] = [];
    const count = this.#starts.length;
    this.#skipBlank();
    if (this.#line >= count) return { documents, lineStarts: this.lineStarts };
    // `yaml` counts a BOM as a column of its line: content there is left to it.
    if (this.#line === 0 && this.#starts[0] === 1 && !this.#isMarker(0)) outside();
    for (;;) {
      let emptyAt = -1;
      if (this.#isMarker(this.#line)) {
        emptyAt = this.#afterMarker(this.#line);
        this.#line++;
        this.#skipBlank();
      }
      if (this.#line >= count || this.#isMarker(this.#line)) {
        // An explicit document with no content: `null`, found where the marker's line goes on.
        if (emptyAt < 0) outside();
        documents.push({ value: null, root: emptyAt });
      } else {
        const [value, root] = this.#rootNode();
        this.#skipBlank();
        if (this.#line < count && !this.#isMarker(this.#line)) outside();
        documents.push({ value, root });
      }
      if (this.#line >= count) break;
    }
    return { documents, lineStarts: this.lineStarts };
  }

  #isMarker(line: number): boolean {
    const start = this.#starts[line]!;
    const end = this.#ends[line]!;
    return (
      end - start >= 3 &&
      this.#text.startsWith("---", start) &&
      (end - start === 3 || this.#text.charCodeAt(start + 3) === SPACE)
    );
  }

  /** The offset after `---` and its spaces; only a comment may follow. */
  #afterMarker(line: number): number {
    const end = this.#ends[line]!;
    const at = this.#skipSpaces(this.#starts[line]! + 3, end);
    if (at < end && this.#text.charCodeAt(at) !== HASH) outside();
    return at;
  }

  #skipSpaces(at: number, end: number): number {
    while (at < end && this.#text.charCodeAt(at) === SPACE) at++;
    return at;
  }

  /** Moves to the next line that has content other than spaces and a comment. */
  #skipBlank(): void {
    const count = this.#starts.length;
    while (this.#line < count) {
      const end = this.#ends[this.#line]!;
      const at = this.#skipSpaces(this.#starts[this.#line]!, end);
      if (at < end && this.#text.charCodeAt(at) !== HASH) return;
      this.#line++;
    }
  }

  #indentOf(line: number): number {
    const start = this.#starts[line]!;
    return this.#skipSpaces(start, this.#ends[line]!) - start;
  }

  /** Is the line at `at` an item of a block sequence (`-` then a space or the line's end)? */
  #isSeqItem(at: number, end: number): boolean {
    return (
      this.#text.charCodeAt(at) === DASH &&
      (at + 1 === end || this.#text.charCodeAt(at + 1) === SPACE)
    );
  }

  /** The document's top node: a block mapping or sequence, or a flow collection. */
  #rootNode(): [unknown, SubsetPosition] {
    const line = this.#line;
    const indent = this.#indentOf(line);
    const at = this.#starts[line]! + indent;
    const end = this.#ends[line]!;
    const c = this.#text.charCodeAt(at);
    if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      const result = this.#flowToLineEnd(at, end);
      this.#line++;
      return result;
    }
    return this.#blockCollection(line, indent, at, end);
  }

  /** A block mapping or sequence whose first line is `line`, starting at `at` (column `indent`). */
  #blockCollection(
    line: number,
    indent: number,
    at: number,
    end: number,
  ): [unknown, SubsetPosition] {
    this.#line = line;
    if (this.#isSeqItem(at, end)) return this.#blockSeq(indent, at);
    if (this.#keyEnd(at, end) < 0) outside();
    return this.#blockMap(indent, at);
  }

  /**
   * Where the key that starts at `at` ends (its `:` offset), or -1 if the line holds no key. A
   * quoted key must be followed by `:` at once; a plain key ends at the first `: ` (or a `:` at
   * the end of the line) and must not hold a comment.
   */
  #keyEnd(at: number, end: number): number {
    const text = this.#text;
    const c = text.charCodeAt(at);
    if (c === QUOTE || c === APOSTROPHE) {
      const colon = this.#quotedEnd(at, end) + 1;
      if (text.charCodeAt(colon) !== COLON || colon >= end) return -1;
      if (colon + 1 < end && text.charCodeAt(colon + 1) !== SPACE) outside();
      return colon;
    }
    for (let i = at; i < end; i++) {
      const d = text.charCodeAt(i);
      if (d === COLON && (i + 1 === end || text.charCodeAt(i + 1) === SPACE)) return i;
      if (d === HASH && text.charCodeAt(i - 1) === SPACE) return -1; // a comment starts
    }
    return -1;
  }

  /**
   * After a collection's entry: the offset where its next entry starts, on the next line with
   * content at column `indent`; undefined when the collection ends there (end of text, a document
   * marker, a line less indented). A line more indented is outside the subset.
   */
  #nextAt(indent: number): number | undefined {
    this.#skipBlank();
    if (this.#line >= this.#starts.length || this.#isMarker(this.#line)) return undefined;
    const next = this.#indentOf(this.#line);
    if (next < indent) return undefined;
    if (next > indent) outside();
    return this.#starts[this.#line]! + next;
  }

  /** A block mapping at column `indent`, its first key at `at` on the current line. */
  #blockMap(indent: number, at: number): [PlainObject, MapPosition] {
    const value: PlainObject = {};
    const pos: MapPosition = { at, keys: [], keyAt: [], nodes: [] };
    for (;;) {
      const end = this.#ends[this.#line]!;
      const colon = this.#keyEnd(at, end);
      if (colon < 0) outside();
      const key = this.#key(at, colon);
      if (Object.hasOwn(value, key)) outside(); // a duplicate key: an error in `yaml`
      const [child, node] = this.#blockValue(colon + 1, indent, false);
      value[key] = child;
      pos.keys.push(key);
      pos.keyAt.push(at);
      pos.nodes.push(node);
      const next = this.#nextAt(indent);
      if (next === undefined) break;
      at = next;
    }
    return [value, pos];
  }

  /** A key's text (from `at` to its `:`), which must be a string and not yet in the mapping. */
  #key(at: number, colon: number): string {
    if (colon - at > 1000) outside(); // `yaml` limits implicit keys to 1024 characters
    const text = this.#text;
    const c = text.charCodeAt(at);
    let key: string;
    if (c === QUOTE || c === APOSTROPHE) {
      key = this.#quoted(at, colon - 1);
    } else {
      key = text.slice(at, colon);
      if (!this.#plainStartsWell(at, colon)) outside();
      if (text.charCodeAt(colon - 1) === SPACE) outside();
      if (resolvePlainScalar(key) !== key) outside();
    }
    if (key === "__proto__" || key === "<<") outside();
    return key;
  }

  /**
   * A value after `key:` or `-` (from `at`, on the current line): a scalar, a flow collection or
   * a block scalar on this line, or a block node on the following lines (a mapping value may be a
   * sequence at the key's own column). `parentIndent` is the column of the mapping or sequence;
   * `inSeq` is true after `-`, where a compact mapping or sequence may follow on the same line.
   * Leaves the current line at the first line it did not consume.
   */
  #blockValue(at: number, parentIndent: number, inSeq: boolean): [unknown, SubsetPosition] {
    const text = this.#text;
    const end = this.#ends[this.#line]!;
    const start = this.#skipSpaces(at, end);
    if (start < end && start === at) outside(); // `key:x` is not a key; `-x` not an item
    if (start === end || text.charCodeAt(start) === HASH)
      return this.#valueBelow(parentIndent, inSeq, start);
    const c = text.charCodeAt(start);
    if (c === PIPE) return this.#blockScalar(start, end, parentIndent);
    if (c === OPEN_BRACKET || c === OPEN_BRACE) {
      const result = this.#flowToLineEnd(start, end);
      this.#line++;
      return result;
    }
    if (inSeq) {
      const column = start - this.#starts[this.#line]!;
      if (this.#isSeqItem(start, end)) return this.#blockSeq(column, start);
      if (this.#keyEnd(start, end) >= 0) return this.#blockMap(column, start);
    }
    if (c === QUOTE || c === APOSTROPHE) {
      const close = this.#quotedEnd(start, end);
      const value = this.#quoted(start, close);
      this.#restIsComment(close + 1, end);
      this.#line++;
      return [value, start];
    }
    // A plain scalar to the end of the line or a comment; `a: b: c` is an error in `yaml`.
    if (!this.#plainStartsWell(start, end)) outside();
    let last = end;
    for (let i = start + 1; i < end; i++) {
      const d = text.charCodeAt(i);
      if (d === COLON && (i + 1 === end || text.charCodeAt(i + 1) === SPACE)) outside();
      if (d === HASH && text.charCodeAt(i - 1) === SPACE) {
        last = i;
        break;
      }
    }
    while (text.charCodeAt(last - 1) === SPACE) last--;
    this.#line++;
    return [resolvePlainScalar(text.slice(start, last)), start];
  }

  /**
   * The value of a `key:` or `-` with nothing more on its line: a block collection on the
   * following lines, more indented than its parent (or a sequence at a mapping key's column), or
   * else `null`, found (as a sequence item) where its line's spaces end, at `nullAt`.
   */
  #valueBelow(parentIndent: number, inSeq: boolean, nullAt: number): [unknown, SubsetPosition] {
    this.#line++;
    this.#skipBlank();
    const line = this.#line;
    if (line < this.#starts.length && !this.#isMarker(line)) {
      const indent = this.#indentOf(line);
      const at = this.#starts[line]! + indent;
      const end = this.#ends[line]!;
      if (indent > parentIndent) {
        const c = this.#text.charCodeAt(at);
        if (c === OPEN_BRACKET || c === OPEN_BRACE || c === PIPE) outside();
        return this.#blockCollection(line, indent, at, end);
      }
      if (indent === parentIndent && !inSeq && this.#isSeqItem(at, end))
        return this.#blockSeq(indent, at);
    }
    return [null, nullAt];
  }

  /** A block sequence at column `indent`, its first `-` at `at` on the current line. */
  #blockSeq(indent: number, at: number): [unknown[], SeqPosition] {
    const value: unknown[] = [];
    const pos: SeqPosition = { at, items: [] };
    for (;;) {
      const [item, node] = this.#blockValue(at + 1, indent, true);
      value.push(item);
      pos.items.push(node);
      const next = this.#nextAt(indent);
      if (next === undefined || !this.#isSeqItem(next, this.#ends[this.#line]!)) break;
      at = next;
    }
    return [value, pos];
  }

  /**
   * A literal block scalar (`|`, `|-`, `|+`) whose header is at `at`: its lines are those after
   * the header indented more than `parentIndent`, at the indentation of the first of them.
   */
  #blockScalar(at: number, end: number, parentIndent: number): [string, SubsetPosition] {
    const text = this.#text;
    let chomp = 0; // -1 strip, 0 clip, +1 keep
    let i = at + 1;
    const c = text.charCodeAt(i);
    if (c === DASH || c === 0x2b) {
      chomp = c === DASH ? -1 : 1;
      i++;
    }
    if (i < end && text.charCodeAt(i) !== SPACE) outside(); // indentation indicator, `|x`
    this.#restIsComment(i, end);

    const count = this.#starts.length;
    let line = this.#line + 1;
    let indent = -1;
    let leading = 0; // empty lines before the first content line, and their most spaces
    let leadingSpaces = 0;
    let pending: string[] = []; // empty lines since the last content line: their extra spaces
    let body = "";
    for (; line < count; line++) {
      const start = this.#starts[line]!;
      const lineEnd = this.#ends[line]!;
      const spaces = this.#skipSpaces(start, lineEnd) - start;
      if (start + spaces === lineEnd) {
        if (indent < 0) {
          leading++;
          leadingSpaces = Math.max(leadingSpaces, spaces);
        } else {
          pending.push(spaces > indent ? " ".repeat(spaces - indent) : "");
        }
        continue;
      }
      if (indent < 0) {
        if (spaces <= parentIndent) break;
        indent = spaces;
        // More-indented leading empty lines need an indentation indicator (an error in `yaml`).
        if (leadingSpaces > indent) outside();
        body = "\n".repeat(leading) + text.slice(start + indent, lineEnd);
        continue;
      }
      if (spaces < indent) break;
      for (const extra of pending) body += "\n" + extra;
      pending = [];
      body += "\n" + text.slice(start + indent, lineEnd);
    }
    if (indent < 0) outside(); // an empty block scalar
    // The last line holding the scalar must end with a line break (EOF without one is left out).
    if (line === count && this.#lastLineUnterminated) outside();
    this.#line = line;
    // Trailing empty lines with more spaces than the content's are content, as `yaml` reads them.
    let kept = pending.length;
    while (kept > 0 && pending[kept - 1] === "") kept--;
    for (let i = 0; i < kept; i++) body += "\n" + pending[i]!;
    const trailing = pending.length - kept;
    if (chomp < 0) return [body, at];
    if (chomp === 0) return [body + "\n", at];
    return [body + "\n" + "\n".repeat(trailing), at];
  }

  /** Only spaces and then maybe a comment (after at least one space) from `at` to `end`. */
  #restIsComment(at: number, end: number): void {
    const next = this.#skipSpaces(at, end);
    if (next === end) return;
    if (next === at || this.#text.charCodeAt(next) !== HASH) outside();
  }

  /**
   * May a plain scalar start at `at` (up to `end`)? Not at an indicator, but for `-` before
   * anything but a space, `#` or a flow indicator (`--server`, `-1`).
   */
  #plainStartsWell(at: number, end: number): boolean {
    if (at >= end) return false;
    const c = this.#text.charCodeAt(at);
    if (c === SPACE) return false;
    if (!INDICATOR_START.has(c)) return true;
    if (c !== DASH || at + 1 >= end) return false;
    const d = this.#text.charCodeAt(at + 1);
    return !(d === SPACE || d === HASH || FLOW_INDICATOR.has(d));
  }

  /** The offset of the closing quote of the quoted scalar at `at`, on this line. */
  #quotedEnd(at: number, end: number): number {
    const text = this.#text;
    const quote = text.charCodeAt(at);
    let i = at + 1;
    for (;;) {
      const close = text.indexOf(quote === QUOTE ? '"' : "'", i);
      if (close === -1 || close >= end) outside(); // multi-line or unterminated
      if (quote === APOSTROPHE) {
        if (text.charCodeAt(close + 1) === APOSTROPHE && close + 1 < end) {
          i = close + 2;
          continue;
        }
        return close;
      }
      // A `"` preceded by an odd number of backslashes is escaped.
      let backslashes = 0;
      while (text.charCodeAt(close - 1 - backslashes) === BACKSLASH) backslashes++;
      if (backslashes % 2 === 0) return close;
      i = close + 1;
    }
  }

  /** The value of the quoted scalar from `at` to its closing quote at `close`. */
  #quoted(at: number, close: number): string {
    const text = this.#text;
    const raw = text.slice(at + 1, close);
    if (text.charCodeAt(at) === APOSTROPHE)
      return raw.includes("''") ? raw.replaceAll("''", "'") : raw;
    if (!raw.includes("\\")) return raw;
    let out = "";
    for (let i = 0; i < raw.length; i++) {
      const ch = raw[i]!;
      if (ch !== "\\") {
        out += ch;
        continue;
      }
      const next = raw[++i];
      if (next === undefined) outside();
      const escaped = ESCAPES[next];
      if (escaped !== undefined) {
        out += escaped;
        continue;
      }
      const length = next === "x" ? 2 : next === "u" ? 4 : next === "U" ? 8 : 0;
      if (length === 0) outside(); // an invalid escape: `yaml` reports it
      const hex = raw.substr(i + 1, length);
      if (hex.length !== length || !HEX_DIGITS.test(hex)) outside();
      const code = parseInt(hex, 16);
      if (code > 0x10ffff) outside();
      out += String.fromCodePoint(code);
      i += length;
    }
    return out;
  }

  /** A flow collection at `at` that must close on this line, with only a comment after it. */
  #flowToLineEnd(at: number, end: number): [unknown, SubsetPosition] {
    const result = this.#flow(at, end);
    this.#restIsComment(result[2], end);
    return [result[0], result[1]];
  }

  /** A flow sequence or mapping at `at`; returns its value, position and the offset after it. */
  #flow(at: number, end: number): [unknown, SubsetPosition, number] {
    const text = this.#text;
    const isSeq = text.charCodeAt(at) === OPEN_BRACKET;
    const close = isSeq ? CLOSE_BRACKET : CLOSE_BRACE;
    let i = this.#skipSpaces(at + 1, end);
    if (i >= end) outside();
    if (isSeq) {
      const value: unknown[] = [];
      const pos: SeqPosition = { at, items: [] };
      if (text.charCodeAt(i) === close) return [value, pos, i + 1];
      for (;;) {
        const [item, node, after] = this.#flowItem(i, end);
        value.push(item);
        pos.items.push(node);
        i = this.#flowSeparator(after, end, close);
        if (i < 0) return [value, pos, -i];
      }
    }
    const value: PlainObject = {};
    const pos: MapPosition = { at, keys: [], keyAt: [], nodes: [] };
    if (text.charCodeAt(i) === close) return [value, pos, i + 1];
    for (;;) {
      const [key, afterKey] = this.#flowKey(i, end);
      if (Object.hasOwn(value, key)) outside();
      const valueAt = this.#skipSpaces(afterKey, end);
      const [child, node, after] = this.#flowItem(valueAt, end);
      value[key] = child;
      pos.keys.push(key);
      pos.keyAt.push(i);
      pos.nodes.push(node);
      i = this.#flowSeparator(after, end, close);
      if (i < 0) return [value, pos, -i];
    }
  }

  /**
   * After a flow item: `,` and the next item's offset, or the closing bracket (returned as minus
   * the offset after it). A trailing `,` and anything else are left to `yaml`.
   */
  #flowSeparator(at: number, end: number, close: number): number {
    const text = this.#text;
    const i = this.#skipSpaces(at, end);
    if (i >= end) outside();
    const c = text.charCodeAt(i);
    if (c === close) return -(i + 1);
    if (c !== COMMA) outside();
    const next = this.#skipSpaces(i + 1, end);
    if (next >= end) outside();
    const d = text.charCodeAt(next);
    if (d === close || d === COMMA) outside();
    return next;
  }

  /**
   * A flow mapping's key at `at`: plain and then `: `, or quoted and then `:` (with or without a
   * space: JSON's `{"a":1}` is YAML too). Returns the key and the offset after its `:`.
   */
  #flowKey(at: number, end: number): [string, number] {
    const text = this.#text;
    const c = text.charCodeAt(at);
    let key: string;
    let colon: number;
    if (c === QUOTE || c === APOSTROPHE) {
      const close = this.#quotedEnd(at, end);
      key = this.#quoted(at, close);
      colon = close + 1;
      if (text.charCodeAt(colon) !== COLON) outside();
    } else {
      colon = this.#flowPlainEnd(at, end, true);
      if (text.charCodeAt(colon) !== COLON || text.charCodeAt(colon + 1) !== SPACE) outside();
      key = text.slice(at, colon);
      if (resolvePlainScalar(key) !== key) outside();
    }
    if (colon + 1 >= end) outside();
    if (key === "__proto__" || key === "<<" || colon - at > 1000) outside();
    return [key, colon + 1];
  }

  /** A flow item at `at`: a nested flow collection, a quoted or a plain scalar. */
  #flowItem(at: number, end: number): [unknown, SubsetPosition, number] {
    const text = this.#text;
    const c = text.charCodeAt(at);
    if (c === OPEN_BRACKET || c === OPEN_BRACE) return this.#flow(at, end);
    if (c === QUOTE || c === APOSTROPHE) {
      const close = this.#quotedEnd(at, end);
      const after = this.#skipSpaces(close + 1, end);
      const d = text.charCodeAt(after);
      if (after >= end || !(d === COMMA || d === CLOSE_BRACKET || d === CLOSE_BRACE)) outside();
      return [this.#quoted(at, close), at, close + 1];
    }
    const stop = this.#flowPlainEnd(at, end, false);
    if (text.charCodeAt(stop) === COLON) outside();
    let last = stop;
    while (text.charCodeAt(last - 1) === SPACE) last--;
    return [resolvePlainScalar(text.slice(at, last)), at, stop];
  }

  /**
   * Where a plain scalar in a flow collection stops: at `,`, a closing bracket or (for a key) its
   * `: `. Anything that could make it something else (`:` elsewhere, `#`, brackets, an
   * indicator at its start) is left to `yaml`.
   */
  #flowPlainEnd(at: number, end: number, isKey: boolean): number {
    const text = this.#text;
    if (!this.#plainStartsWell(at, end)) outside();
    for (let i = at; i < end; i++) {
      const c = text.charCodeAt(i);
      if (c === COMMA || c === CLOSE_BRACKET || c === CLOSE_BRACE) {
        if (isKey) outside();
        return i;
      }
      if (c === COLON) {
        if (isKey && text.charCodeAt(i + 1) === SPACE && text.charCodeAt(i - 1) !== SPACE) return i;
        outside();
      }
      if (c === OPEN_BRACKET || c === OPEN_BRACE || c === HASH || c === QUOTE || c === APOSTROPHE)
        outside();
    }
    return outside();
  }
}
