/**
 * Generated YAML texts in and near the subset the subset parser reads (test/yaml-subset.test.ts):
 * what resources and configs look like, with odd spacing, comments everywhere, quotes, colons
 * and `#` inside values, keys that look like numbers or booleans, sequences at their parent's
 * column, blank lines, CRLF, a BOM, trailing spaces and block scalars with every chomping.
 */
/** A small seeded generator (mulberry32): each case draws its choices from its seed. */
function rngOf(seed: number): {
  int(n: number): number;
  pick<T>(xs: readonly T[]): T;
  chance(p: number): boolean;
} {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
  return {
    int: (n) => Math.floor(next() * n),
    pick: (xs) => xs[Math.floor(next() * xs.length)]!,
    chance: (p) => next() < p,
  };
}
type Rng = ReturnType<typeof rngOf>;

/** Scalars that look like other types, or hold characters that mean something in YAML. */
const WORDS = [
  "a",
  "bot",
  "default:tbot",
  "ns-1:sa-0",
  "null",
  "Null",
  "NULL",
  "~",
  "true",
  "True",
  "TRUE",
  "false",
  "FALSE",
  "yes",
  "no",
  "on",
  "0",
  "-0",
  "+1",
  "007",
  "0o17",
  "0o8",
  "0x1F",
  "0xg",
  "1e3",
  "1E-2",
  "1.",
  ".5",
  "1.50",
  ".inf",
  "-.Inf",
  "+.INF",
  ".nan",
  ".NaN",
  "1_000",
  "12:30",
  "2026-12-02T04:17:38Z",
  "http://x.example:80/p",
  "a b",
  "a#b",
  "a #b",
  "a:b",
  "a: b",
  "it's",
  'say "hi"',
  "-",
  "--flag",
  "-x",
  "- x",
  "?",
  "? x",
  ":",
  ":x",
  "!",
  "&a",
  "*a",
  "|",
  ">",
  "%",
  "@",
  "`",
  "[",
  "]",
  "{",
  "}",
  ",",
  "a,b",
  "a]",
  "[a]",
  "{a: b}",
  "#",
  "\\",
  "\\n",
  "é",
  "日本",
  "",
  " ",
  "  lead",
  "trail  ",
  "---",
  "...",
  "--- x",
  "<<",
  "__proto__",
  "constructor",
  "k1",
];
const ALPHABET = [..."abcxyz019 -_:#'\",.[]{}!&*|>%@`?~\\/é"];

function word(r: Rng): string {
  if (r.chance(0.5))
    return r.pick(["x", "bot-1", "default:tbot", "Bot", "access", "a b", "1", "v2"]);
  if (r.chance(0.85)) return r.pick(WORDS);
  return Array.from({ length: 1 + r.int(8) }, () => r.pick(ALPHABET)).join("");
}

function doubleQuoted(r: Rng, s: string): string {
  let out = '"';
  for (const ch of s) {
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else out += ch;
    if (r.chance(0.1))
      out += r.pick([
        "\\n",
        "\\t",
        "\\x41",
        "\\u00e9",
        "\\/",
        "\\ ",
        "\\U0001F600",
        "\\q",
        "\\x4",
        "\\0",
      ]);
  }
  return out + '"';
}

/** A scalar as it would stand after `key: ` or `- ` (plain, quoted or flow). */
function inlineScalar(r: Rng): string {
  const w = word(r);
  switch (r.int(6)) {
    case 0:
      return `'${w.replaceAll("'", "''")}'`;
    case 1:
      return doubleQuoted(r, w);
    case 2:
      return flow(r, 0);
    default:
      return w;
  }
}

function flow(r: Rng, depth: number): string {
  const sp = () => r.pick(["", " ", "  "]);
  const item = (): string =>
    depth < 2 && r.chance(0.25)
      ? flow(r, depth + 1)
      : r.chance(0.3)
        ? `'${word(r).replaceAll("'", "''")}'`
        : r.chance(0.2)
          ? doubleQuoted(r, word(r))
          : word(r);
  const n = r.int(4);
  if (r.chance(0.5)) {
    return `[${sp()}${Array.from({ length: n }, item).join(`${sp()},${r.pick([" ", "", "  "])}`)}${sp()}]`;
  }
  const entries = Array.from(
    { length: n },
    () => `${r.chance(0.2) ? `"${word(r)}"` : word(r)}:${r.pick([" ", "  ", ""])}${item()}`,
  );
  return `{${sp()}${entries.join(`,${r.pick([" ", ""])}`)}${sp()}}`;
}

const COMMENTS = [" # c", "  # a: b", " #", "#x", " # - x", " # 'q"];

/** Lines of a literal block scalar's body at `indent`, with blank lines and `#` lines. */
function blockScalarLines(r: Rng, indent: number): string[] {
  const lines: string[] = [];
  const n = 1 + r.int(4);
  const blank = () => " ".repeat(r.chance(0.8) ? r.int(indent + 1) : indent + 1 + r.int(2));
  if (r.chance(0.15)) lines.push(blank());
  for (let i = 0; i < n; i++) {
    const extra = r.chance(0.2) ? " ".repeat(1 + r.int(2)) : "";
    lines.push(
      " ".repeat(indent) +
        extra +
        r.pick([word(r) || "x", "# not a comment", '{"keys": []}', "x: y", "- z"]),
    );
    if (r.chance(0.25)) lines.push(blank());
  }
  if (r.chance(0.3)) lines.push(blank());
  return lines;
}

/**
 * Lines of a value after `head` (`key:` or `-`) at column `indent` of its collection: inline
 * scalar, flow, a block scalar, or a nested block collection on the following lines.
 */
function valueLines(r: Rng, head: string, indent: number, depth: number, inSeq: boolean): string[] {
  const pad = " ".repeat(indent);
  const comment = () => (r.chance(0.15) ? r.pick(COMMENTS) : "");
  const trailing = () => (r.chance(0.05) ? " " : "");
  const kind = depth >= 2 ? r.int(4) : r.int(7);
  const step = r.pick([1, 2, 2, 2, 3, 4]);
  switch (kind) {
    case 0:
    case 1:
      return [
        `${pad}${head}${r.pick([" ", " ", "  "])}${inlineScalar(r)}${comment()}${trailing()}`,
      ];
    case 2:
      return [
        `${pad}${head} |${r.pick(["", "", "-", "+", "", "-", "+", "", "-", "+", "2"])}${comment()}`,
        ...blockScalarLines(r, indent + step),
      ];
    case 3:
      return [`${pad}${head}${r.chance(0.1) ? "" : comment()}`];
    case 4: {
      if (inSeq && r.chance(0.6)) {
        // A compact mapping or sequence on the `-` line.
        const spaces = r.pick([1, 1, 1, 2, 3]);
        const inner = r.chance(0.7)
          ? mapLines(r, indent + 1 + spaces, depth + 1)
          : seqLines(r, indent + 1 + spaces, depth + 1);
        const first = inner[0]!.slice(indent + 1 + spaces);
        return [`${pad}${head}${" ".repeat(spaces)}${first}`, ...inner.slice(1)];
      }
      return [`${pad}${head}${comment()}`, ...mapLines(r, indent + step, depth + 1)];
    }
    case 5:
      return [`${pad}${head}${comment()}`, ...seqLines(r, indent + step, depth + 1)];
    default:
      // A sequence at the key's own column.
      return [
        `${pad}${head}${comment()}`,
        ...seqLines(r, inSeq ? indent + step : indent, depth + 1),
      ];
  }
}

/** A JSON value (a kubeconfig or a JWKS written by a program is often one line of JSON). */
function jsonValue(r: Rng, depth: number): unknown {
  switch (depth < 3 ? r.int(6) : r.int(3)) {
    case 0:
      return word(r);
    case 1:
      return r.pick([0, -1, 1.5, 1e21, true, false, null]);
    case 2:
      return r.chance(0.5) ? "x" : word(r);
    case 3:
      return Array.from({ length: r.int(3) }, () => jsonValue(r, depth + 1));
    default:
      return Object.fromEntries(
        Array.from({ length: r.int(3) }, (_, i) => [`${word(r)}${i}`, jsonValue(r, depth + 1)]),
      );
  }
}

/** Lines between entries: sometimes a comment line (at any column) or an empty line. */
function between(r: Rng, indent: number): string[] {
  if (r.chance(0.08)) return [`${" ".repeat(r.int(indent + 3))}# comment line`];
  if (r.chance(0.06)) return [" ".repeat(r.int(3))];
  return [];
}

function mapLines(r: Rng, indent: number, depth: number): string[] {
  const n = 1 + r.int(3);
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    let key = r.chance(0.9)
      ? `${r.pick(["kind", "metadata", "name", "spec", "roles", "allow", "jwks", "k", "1k", "true_", "null-ish"])}${i}`
      : word(r);
    if (r.chance(0.1)) key = r.chance(0.5) ? `"${key}"` : `'${key}'`;
    lines.push(...valueLines(r, `${key}:`, indent, depth, false), ...between(r, indent));
  }
  return lines;
}

function seqLines(r: Rng, indent: number, depth: number): string[] {
  const n = 1 + r.int(3);
  const lines: string[] = [];
  for (let i = 0; i < n; i++)
    lines.push(...valueLines(r, "-", indent, depth, true), ...between(r, indent));
  return lines;
}

/** Small edits that push a text to (or over) the edges of the subset. */
const EDITS = [
  " ",
  "  ",
  "\n",
  "#",
  " #x",
  ":",
  ": ",
  "- ",
  "'",
  '"',
  "|",
  "|-",
  "|+",
  "[",
  "]",
  "{",
  "}",
  ",",
  "\t",
  "\r\n",
  "\r",
  "---\n",
  "? ",
  "&a ",
  "*a",
  "!t ",
  "%",
  "\\",
  "\ufeff",
  "...\n",
  "x",
  "0",
];

/**
 * A YAML text drawn from `seed`: one to three documents of block mappings and sequences, flow
 * collections, quoted, plain and block scalars, comments and blank lines, sometimes with CRLF,
 * a BOM, `---` variants and a few random edits that push it to or over the subset's edges.
 */
export function generatedYamlText(seed: number): string {
  const r = rngOf(seed);
  const docs = Array.from({ length: 1 + r.int(3) }, () => {
    if (r.chance(0.05)) return r.pick(["", "# empty\n", flow(r, 0) + "\n"]);
    if (r.chance(0.05)) return JSON.stringify(jsonValue(r, 0)) + "\n";
    const indent = r.chance(0.9) ? 0 : r.int(3);
    const lines = r.chance(0.8) ? mapLines(r, indent, 0) : seqLines(r, indent, 0);
    return lines.join("\n") + "\n";
  });
  const separators = ["---\n", "--- \n", "--- # doc\n", "\n---\n"];
  let text =
    (r.chance(0.3) ? r.pick(["---\n", "# head\n---\n"]) : "") +
    docs.map((d, i) => (i === 0 ? d : r.pick(separators) + d)).join("");
  if (r.chance(0.1)) text += r.pick(["---\n", "--- \n", "\n\n"]);
  if (r.chance(0.1)) text = text.replace(/\n$/, "");
  if (r.chance(0.15)) text = text.replaceAll("\n", "\r\n");
  if (r.chance(0.05)) text = "\ufeff" + text;
  return r.chance(0.25) ? edited(r, text, 1 + r.int(3)) : text;
}

function edited(r: Rng, text: string, edits: number): string {
  for (let i = 0; i < edits; i++) {
    const at = r.int(text.length + 1);
    if (r.chance(0.25)) text = text.slice(0, at) + text.slice(at + 1 + r.int(4));
    else text = text.slice(0, at) + r.pick(EDITS) + text.slice(at);
  }
  return text;
}

/**
 * `text` (a real file) with one or two small edits drawn from `seed`, at the start of a line
 * (indentation, `-`, `#`, `---`) or anywhere (quotes, `:`, brackets, line breaks, tabs).
 */
export function editedYamlText(seed: number, text: string): string {
  const r = rngOf(seed);
  if (r.chance(0.5)) return edited(r, text, 1 + r.int(2));
  const lines = text.split("\n");
  const i = r.int(lines.length);
  lines[i] = r.pick(["", " ", "  ", "- ", "# ", "---\n", "\t", "? ", "  - x\n"]) + lines[i];
  return lines.join("\n");
}
