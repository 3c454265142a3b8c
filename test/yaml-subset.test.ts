/**
 * The subset parser (`src/yaml/subset-parser.ts`) against the `yaml` library, differentially: for
 * every YAML file of the repository, the YAML examples of the docs, the resources the scale bench
 * generates and thousands of generated documents at the edges of the subset, the subset parser
 * either declines (and `parseYamlDocuments` uses `yaml`) or gives the same documents, the same
 * values and the same position for every path, existing or missing. Generated cases are seeded
 * (`FUZZ_SEED=N` replays a run); a failure prints the text.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import fc from "fast-check";
import { writeScaleResources } from "../bench/scale.ts";
import { parseYamlSubset } from "../src/yaml/subset-parser.ts";
import { parseWithLibrary, parseYamlDocuments, type FieldPath } from "../src/yaml/yaml-source.ts";
import type { ClusterKey } from "./support/jwt.ts";
import { editedYamlText, generatedYamlText } from "./support/yaml-edge-documents.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SEED = Number(process.env["FUZZ_SEED"] ?? 20261202);

/** Every path of `value` (the root, each key and index, recursively). */
function pathsOf(value: unknown, prefix: FieldPath = [], out: FieldPath[] = []): FieldPath[] {
  out.push(prefix);
  if (Array.isArray(value)) value.forEach((v, i) => pathsOf(v, [...prefix, i], out));
  else if (value !== null && typeof value === "object")
    for (const [k, v] of Object.entries(value)) pathsOf(v, [...prefix, k], out);
  return out;
}

/**
 * Asserts that the subset parser declines `text` or agrees with `yaml` on it; returns whether it
 * took it. Compared: problems and warnings (none), document count and indexes, values (deep and
 * strict: -0, NaN, prototypes), and `positionOf` for every existing path and, below each, a
 * missing key, a missing index and index 0.
 */
function agrees(text: string): boolean {
  const subset = parseYamlSubset(text);
  if (subset === undefined) return false;
  const expected = parseWithLibrary("f.yaml", text);
  const actual = parseYamlDocuments("f.yaml", text);
  const where = `subset parser took ${JSON.stringify(text)}`;
  assert.deepEqual(expected.problems, [], `${where}, but yaml reports problems`);
  assert.deepEqual(expected.warnings, [], `${where}, but yaml warns`);
  assert.deepEqual(actual.problems, []);
  assert.equal(actual.documents.length, expected.documents.length, `${where}: document count`);
  expected.documents.forEach((doc, i) => {
    const mine = actual.documents[i]!;
    assert.equal(mine.index, doc.index, `${where}: index`);
    assert.equal(mine.file, doc.file);
    assert.deepStrictEqual(mine.value, doc.value, `${where}: value of document ${i}`);
    for (const path of pathsOf(doc.value)) {
      for (const probe of [path, [...path, "missing"], [...path, 7], [...path, 0]]) {
        assert.deepEqual(
          mine.positionOf(probe),
          doc.positionOf(probe),
          `${where}: positionOf(${JSON.stringify(probe)}) in document ${i}`,
        );
        assert.equal(mine.problem(probe, "m"), doc.problem(probe, "m"));
      }
    }
  });
  return true;
}

/** The YAML files tracked in the repository, and the ```yaml blocks of its Markdown files. */
function repositoryTexts(): { name: string; text: string }[] {
  const tracked = execFileSync("git", ["ls-files"], { cwd: ROOT, encoding: "utf8" })
    .split("\n")
    .filter((f) => f !== "");
  const out: { name: string; text: string }[] = [];
  for (const file of tracked) {
    if (/\.ya?ml$/.test(file))
      out.push({ name: file, text: readFileSync(join(ROOT, file), "utf8") });
    if (/\.md$/.test(file)) {
      const md = readFileSync(join(ROOT, file), "utf8");
      let n = 0;
      for (const m of md.matchAll(/^```ya?ml\n([\s\S]*?)^```$/gm))
        out.push({ name: `${file} (yaml block ${++n})`, text: m[1]! });
    }
  }
  return out;
}

test("yaml-subset: every YAML file and Markdown example of the repository agrees or is declined", (t) => {
  const texts = repositoryTexts();
  assert.ok(texts.length >= 20, `found only ${texts.length} YAML texts`);
  const declined: string[] = [];
  for (const { name, text } of texts) if (!agrees(text)) declined.push(name);
  t.diagnostic(
    `${texts.length - declined.length} of ${texts.length} texts took the subset parser; ` +
      `declined: ${declined.join(", ")}`,
  );
  // What kube-join itself reads must take the fast path: resources, configs, the guide's files.
  const mustTake = declined.filter((n) =>
    /^fixtures\/|^deploy\/kubernetes\/kube-join\.yaml$/.test(n),
  );
  assert.deepEqual(mustTake, []);
  assert.ok(declined.length <= texts.length / 4, `declined ${declined.length} of ${texts.length}`);
});

test("yaml-subset: the scale bench's generated resources take the subset parser and agree", () => {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-subset-"));
  try {
    const pool: ClusterKey[] = Array.from({ length: 2 }, (_, i) => {
      const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
      const jwk = {
        kty: "RSA",
        alg: "RS256",
        use: "sig",
        kid: `k${i}`,
        ...publicKey.export({ format: "jwk" }),
      };
      return {
        alg: "RS256",
        privateKey,
        publicKey,
        kid: `k${i}`,
        jwk,
        jwks: JSON.stringify({ keys: [jwk] }),
      };
    });
    writeScaleResources(dir, 40, pool);
    const files = readdirSync(dir);
    assert.equal(files.length, 40);
    for (const f of files) {
      const text = readFileSync(join(dir, f), "utf8");
      assert.ok(agrees(text), `${f} was declined`);
      assert.equal(parseYamlDocuments(f, text).documents.length, 2);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Texts at the edges of the subset, each either taken (and checked) or declined as expected. */
const TAKEN: readonly string[] = [
  "",
  "# only a comment\n",
  "\n\n",
  "---\n",
  "--- \n",
  "---  # c\n",
  "a: 1\n---\n",
  "a: 1\n---\n---\nb: 2\n",
  "# c\n---\na: 1\n",
  "\ufeff# c\na: 1\n",
  "\ufeff---\na: 1\n",
  "a: 1\r\nb: |\r\n  x\r\n\r\n  y\r\nc: [d, 'e']\r\n",
  "a:\n- 1\n- b: 2\n  c: 3\nd: x\n",
  "- - a\n  - b\n- c\n",
  "a: |-\n  x\n\n\nb: |+\n  y\n\n\nc: |\n\n  z\n",
  "a: |\n    x\n  # a comment, less indented: ends the scalar\nb: 1\n",
  'a: "\\x41\\u00e9\\t\\"\\\\\\/\\ \\N\\_\\L\\P\\0\\a\\b\\e\\f\\v\\r\\n"\n',
  "a: 'it''s # not a comment'\nb: c#d\ne: f # comment\n",
  "a: [b, {c: d, e: [f, 'g']}, \"h\"]\nk: {}\nl: [ ]\n",
  "n: ~\no: null\np: True\nq: 0o17\nr: 0x1F\ns: -0\nt: 1e3\nu: .5\nv: -.Inf\nw: .NaN\nx: 007\ny: 1_000\nz: 2026-01-01\n",
  '"quoted key": 1\n\'single\': 2\n"1": 3\n',
  "command:\n  - sh\n  - -c\n  - --flag=value\n",
  "url: http://example.com:8080/x?y=z\n",
  "a: b]\nc: d}\n",
  "[a, b]\n",
  '{"apiVersion":"v1","clusters":[{"name":"k","cluster":{"server":"https://x:6443"}}],"n":-1,"t":true,"z":null}\n',
  'user: {"token":"t", "a": 1}\n',
  "- \n- a\n-\n- # c\n",
  "  a: 1\n  b: 2\n",
  "a: 1",
];

const DECLINED: readonly string[] = [
  "a: 1\na: 2\n", // duplicate key (an error in yaml)
  "a: &x 1\nb: *x\n", // anchors and aliases
  "a: !tag x\n",
  "%YAML 1.2\n---\na: 1\n",
  "a: 1\n...\n",
  "a:\tb\n",
  "a: >\n  folded\n",
  "a: |2\n   x\n",
  "a: b\n  c\n", // a multi-line plain scalar
  'a: "b\n  c"\n',
  "? a\n: b\n",
  "a: b: c\n",
  "a: [b,\n  c]\n",
  "a: [b, ]\n",
  '{"a" :1}\n', // a space before a JSON key's `:`
  "plain scalar document\n",
  "1: a\n", // a key that is not a string
  "__proto__: x\n",
  "a: 1\r",
  "\ufeff- a\n- b\n", // yaml counts the BOM as a column
  "a: \u2028\n",
  "a: \u0001\n",
  "a: \u00a0b\n",
  `${"[".repeat(20000)}${"]".repeat(20000)}\n`, // deeper than the subset parser's stack
  "a: |\n   \n  x\n", // a more-indented leading empty line (an error in yaml)
  "a: |\n  no final line break",
];

test("yaml-subset: texts at the edges of the subset are taken and agree, or are declined", () => {
  for (const text of TAKEN) assert.ok(agrees(text), `declined ${JSON.stringify(text)}`);
  for (const text of DECLINED) {
    assert.equal(parseYamlSubset(text), undefined, `took ${JSON.stringify(text)}`);
    // Declined texts read exactly as the library reads them, problems included.
    const actual = parseYamlDocuments("f.yaml", text);
    const expected = parseWithLibrary("f.yaml", text);
    if (expected.problems.some((p) => p.includes("Maximum call stack size exceeded"))) {
      // Where the library runs out of stack depends on how deep the stack already was (one
      // frame more through parseYamlDocuments, and each Node version's frame sizes): the same
      // problem, at a column that moves. Both must report it, and nothing else.
      const overflow = (p: string) =>
        /^f\.yaml:\d+:\d+: YAML syntax: Maximum call stack size exceeded$/.test(p);
      assert.ok(
        actual.problems.length > 0 && actual.problems.every(overflow),
        actual.problems.join("\n"),
      );
      assert.ok(expected.problems.every(overflow), expected.problems.join("\n"));
      assert.deepEqual(actual.documents, []);
      continue;
    }
    assert.deepEqual(actual.problems, expected.problems);
    assert.deepEqual(actual.warnings, expected.warnings);
    assert.deepEqual(
      actual.documents.map((d) => [d.index, d.value, d.positionOf([])]),
      expected.documents.map((d) => [d.index, d.value, d.positionOf([])]),
    );
  }
});

test("yaml-subset: generated documents at the edges of the subset agree or are declined", (t) => {
  let taken = 0;
  let runs = 0;
  const details = fc.check(
    fc.property(fc.integer(), (seed) => {
      runs++;
      if (agrees(generatedYamlText(seed))) taken++;
    }),
    { seed: SEED, numRuns: 4000 },
  );
  if (details.failed) {
    const cause = details.errorInstance instanceof Error ? details.errorInstance.message : "";
    assert.fail(`seed ${SEED}, case ${JSON.stringify(details.counterexample)}: ${cause}`);
  }
  t.diagnostic(`${taken} of ${runs} generated texts took the subset parser (seed ${SEED})`);
  // Not vacuous: a good share of the generated texts must exercise the subset parser.
  assert.ok(taken >= runs / 5, `only ${taken} of ${runs} taken`);
});

test("yaml-subset: real resource files with small edits agree or are declined", (t) => {
  const files = [
    "fixtures/guide/bot-token.yaml",
    "fixtures/guide/bot.yaml",
    "fixtures/resources/valid/tokens.yaml",
    "fixtures/resources/broken/tokens.yaml",
    "fixtures/demo/config.yaml",
    "deploy/kubernetes/kube-join.yaml",
  ];
  let taken = 0;
  let runs = 0;
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), "utf8");
    for (let i = 0; i < 300; i++) {
      runs++;
      if (agrees(editedYamlText(SEED + i, text))) taken++;
    }
  }
  t.diagnostic(`${taken} of ${runs} edited files took the subset parser (seed ${SEED})`);
  assert.ok(taken >= runs / 10, `only ${taken} of ${runs} taken`);
});
