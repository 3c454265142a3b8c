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
import { benchHttp } from "./http.ts";
import { round, type BenchRow } from "./measure.ts";
import { benchVerification } from "./verify.ts";

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

const sections: BenchRow[] = [];
const step = async (title: string, run: () => Promise<BenchRow[]> | BenchRow[]) => {
  process.stderr.write(`bench: ${title}...\n`);
  const rows = await run();
  sections.push(...rows);
  print(rows);
  console.log();
};

const verification = await benchVerification();
const floors = measureFloors(verification.sampleJwt);
await step("floors of this machine", () => floorRows(floors));
await step("verification", () => verification.rows);
await step("certificate issuance", () => benchCertificates());
await step("HTTP end to end", () => benchHttp());
await step("memory", () => memoryRows());

writeFileSync(
  join(ROOT, "bench/results.json"),
  JSON.stringify(
    { measuredAt: new Date().toISOString(), node: process.version, rows: sections },
    null,
    2,
  ) + "\n",
);
console.log("written: bench/results.json");
