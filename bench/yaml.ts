/**
 * The YAML reader's two paths side by side (docs/scale.md, docs/architecture.md): the `yaml`
 * library alone and `parseYamlDocuments` (the subset parser, falling back to `yaml`), on the
 * 10,000-token set the scale section generates (100 files). CPU time (process.cpuUsage) of whole
 * passes over the files, rounds alternated so the machine's other load falls on both alike; the
 * minimum of the rounds is printed, with the ratio.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseYamlSubset } from "../src/yaml/subset-parser.ts";
import { parseWithLibrary, parseYamlDocuments, type YamlStream } from "../src/yaml/yaml-source.ts";
import { round, type BenchRow } from "./measure.ts";
import { keyPool, writeScaleResources } from "./scale.ts";

const TOKENS = 10_000;
const ROUNDS = 3;

/** CPU milliseconds of one pass over `texts`, asking each document for its position once. */
function cpuMs(
  texts: readonly string[],
  parse: (file: string, text: string) => YamlStream,
): number {
  const start = process.cpuUsage();
  let documents = 0;
  for (const text of texts) {
    for (const doc of parse("f.yaml", text).documents) {
      doc.positionOf([]);
      documents++;
    }
  }
  const spent = process.cpuUsage(start);
  if (documents !== 2 * TOKENS) throw new Error(`parsed ${documents} documents`);
  return (spent.user + spent.system) / 1000;
}

export async function benchYaml(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-bench-yaml-"));
  try {
    writeScaleResources(dir, TOKENS, await keyPool(16));
    const texts = readdirSync(dir).map((f) => readFileSync(join(dir, f), "utf8"));
    const taken = texts.filter((t) => parseYamlSubset(t) !== undefined).length;
    let library = Infinity;
    let subset = Infinity;
    for (let r = 0; r < ROUNDS; r++) {
      library = Math.min(library, cpuMs(texts, parseWithLibrary));
      subset = Math.min(subset, cpuMs(texts, parseYamlDocuments));
    }
    const at = `yaml: parse ${TOKENS.toLocaleString("en")} tokens (${texts.length} files, 20,000 documents)`;
    return [
      { name: `${at}, yaml library`, value: round(library, 0), unit: "ms CPU" },
      { name: `${at}, parseYamlDocuments`, value: round(subset, 0), unit: "ms CPU" },
      {
        name: "yaml:   yaml library / parseYamlDocuments",
        value: round(library / subset, 1),
        unit: "x",
      },
      {
        name: "yaml:   files read by the subset parser",
        value: taken,
        unit: `of ${texts.length} (the rest fall back to yaml)`,
      },
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
