/**
 * `npm run bench`: one command, one run. Prints a table and writes bench/results.json. Every
 * target is a ratio of figures measured side by side in this run (the machine is shared and
 * noisy: never compare absolute times across runs).
 */
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { benchCertificates } from "./ca.ts";
import { floorRows, measureFloors } from "./floors.ts";
import { benchAmplification, benchSoak } from "./hostile.ts";
import { benchHttp } from "./http.ts";
import { round, type BenchRow } from "./measure.ts";
import { benchScale } from "./scale.ts";
import { benchStore } from "./store.ts";
import { benchVerification } from "./verify.ts";
import { benchYaml } from "./yaml.ts";

const ROOT = new URL("..", import.meta.url).pathname;

function memoryRows(): BenchRow[] {
  const out = execFileSync(
    "node",
    ["--expose-gc", "--import", "tsx", join(ROOT, "bench/fill-cache.ts"), "100000"],
    { encoding: "utf8" },
  );
  const { entries, rssMiB, heapMiB, baselineRssMiB } = JSON.parse(
    out.trim().split("\n").pop()!,
  ) as { entries: number; rssMiB: number; heapMiB: number; baselineRssMiB: number };
  return [
    {
      name: `mem: RSS with the verified-token cache full (${entries} entries; target < 256)`,
      value: round(rssMiB, 0),
      unit: "MiB",
    },
    {
      name: "mem:   of which the same process before filling",
      value: round(baselineRssMiB, 0),
      unit: "MiB",
    },
    { name: "mem:   JS heap in use with the cache full", value: round(heapMiB, 0), unit: "MiB" },
  ];
}

function print(rows: readonly BenchRow[]): void {
  const width = Math.max(...rows.map((r) => r.name.length));
  for (const row of rows)
    console.log(`${row.name.padEnd(width)}  ${String(row.value).padStart(10)} ${row.unit}`);
}

// `npm run bench -- http memory` runs only the named sections (floors, verification, ca, http,
// store, memory, yaml, scale, amplification, soak) and leaves bench/results.json alone; without names, everything runs and it is written.
const SECTIONS = [
  "floors",
  "verification",
  "ca",
  "http",
  "store",
  "memory",
  "yaml",
  "scale",
  "amplification",
  "soak",
] as const;
const only = process.argv.slice(2);
for (const name of only) {
  if (!(SECTIONS as readonly string[]).includes(name)) {
    console.error(`unknown section ${JSON.stringify(name)}; sections: ${SECTIONS.join(", ")}`);
    process.exit(2);
  }
}
const sections: BenchRow[] = [];
const step = async (
  section: (typeof SECTIONS)[number],
  title: string,
  run: () => Promise<BenchRow[]> | BenchRow[],
) => {
  if (only.length > 0 && !only.includes(section)) return;
  process.stderr.write(`bench: ${title}...\n`);
  const rows = await run();
  sections.push(...rows);
  print(rows);
  console.log();
};

const needsVerification =
  only.length === 0 || only.includes("floors") || only.includes("verification");
const verification = needsVerification ? await benchVerification() : undefined;
await step("floors", "floors of this machine", () =>
  floorRows(measureFloors(verification!.sampleJwt)),
);
await step("verification", "verification", () => verification!.rows);
await step("ca", "certificate issuance", () => benchCertificates());
await step("http", "HTTP end to end", () => benchHttp());
await step("store", "bot instances: in-memory vs SQLite vs PostgreSQL store", () => benchStore());
await step("memory", "memory", () => memoryRows());
await step("yaml", "YAML reader: yaml library vs subset parser, 10,000 tokens", () => benchYaml());
await step("scale", "10 to 10,000 tokens: check, start, reload, memory", () => benchScale());
await step("amplification", "CPU amplification by kid-less JWTs", () => benchAmplification());
await step("soak", "soak and refusals (hostile load)", () => benchSoak());
if (only.length > 0) process.exit(0);

writeFileSync(
  join(ROOT, "bench/results.json"),
  JSON.stringify(
    { measuredAt: new Date().toISOString(), node: process.version, rows: sections },
    null,
    2,
  ) + "\n",
);
console.log("written: bench/results.json");
