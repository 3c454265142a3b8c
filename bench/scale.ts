/**
 * The scale section of `npm run bench` (issue 15): generated bots and tokens in 100 files, and for
 * each size the time `kube-join check` takes, the time `serve` takes to become ready, the time of
 * a SIGHUP reload with the longest `/healthz` answer during it, and RSS after one and after ten
 * full reloads. Everything runs in a temporary directory that is removed afterwards.
 *
 * Tokens are what a platform team writes, one per namespace or workload of a few clusters: one
 * bot each, one or two RSA-2048 keys drawn from a pool (the clusters' keys), one to three allow
 * rules.
 */
import { spawn } from "node:child_process";
import { generateKeyPair } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { round, type BenchRow } from "./measure.ts";
import { freePort, rssMiB, spawnUntil } from "./processes.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const CLI = join(ROOT, "bin/kube-join.js");
const CLUSTER = "scale.example.com";
const KEY_POOL = 16;
const FILES = 100;
const RELOADS = 10;

/** Public JWKs of the pool's RSA-2048 keys, each with its kid. */
async function keyPool(size: number): Promise<string[]> {
  const generate = promisify(generateKeyPair);
  const keys = await Promise.all(
    Array.from({ length: size }, () => generate("rsa", { modulusLength: 2048 })),
  );
  return keys.map(({ publicKey }, i) => {
    const jwk = publicKey.export({ format: "jwk" });
    return JSON.stringify({ kty: "RSA", alg: "RS256", use: "sig", kid: `pool-${i}`, ...jwk });
  });
}

/** Writes `tokens` tokens (and their bots) into `FILES` files (fewer for small sets). */
export function writeScaleResources(dir: string, tokens: number, pool: readonly string[]): void {
  mkdirSync(dir, { recursive: true });
  const files = Math.min(FILES, tokens);
  const perFile = Math.ceil(tokens / files);
  for (let f = 0; f < files; f++) {
    const docs: string[] = [];
    for (let i = f * perFile; i < Math.min(tokens, (f + 1) * perFile); i++) {
      const keys = [pool[i % pool.length]!];
      if (i % 2 === 1) keys.push(pool[(i + 7) % pool.length]!);
      const rules = Array.from(
        { length: 1 + (i % 3) },
        (_, r) => `      - service_account: "ns-${i}:sa-${r}"`,
      );
      docs.push(
        [
          "kind: bot",
          "version: v1",
          `metadata: {name: bot-${i}}`,
          "spec:",
          "  roles: [access]",
          "  traits: [{name: logins, values: [root]}]",
          "---",
          "kind: token",
          "version: v2",
          `metadata: {name: token-${i}}`,
          "spec:",
          "  roles: [Bot]",
          `  bot_name: bot-${i}`,
          "  join_method: kubernetes",
          "  kubernetes:",
          "    type: static_jwks",
          "    static_jwks:",
          `      jwks: '{"keys":[${keys.join(",")}]}'`,
          "    allow:",
          ...rules,
        ].join("\n"),
      );
    }
    writeFileSync(
      join(dir, `tokens-${String(f).padStart(3, "0")}.yaml`),
      docs.join("\n---\n") + "\n",
    );
  }
}

/** Peak RSS (VmHWM) of a process in MiB, or 0 once it is gone. */
function peakRssMiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? "0") / 1024;
  } catch {
    return 0;
  }
}

/** Runs `kube-join check DIR`: wall seconds and the last peak RSS seen before it exited. */
async function timeCheck(dir: string): Promise<{ seconds: number; peakMiB: number }> {
  const started = process.hrtime.bigint();
  const child = spawn("node", [CLI, "check", dir], { stdio: ["ignore", "ignore", "pipe"] });
  let peak = 0;
  const sampler = setInterval(() => {
    if (child.pid !== undefined) peak = Math.max(peak, peakRssMiB(child.pid));
  }, 20);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
  clearInterval(sampler);
  if (code !== 0) throw new Error(`kube-join check ${dir} exited ${code}:\n${stderr}`);
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, peakMiB: peak };
}

/** Sequential GET /healthz, one every 5 ms, recording the longest answer. */
function probeHealth(diagUrl: string): { stop(): Promise<number> } {
  let longest = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const start = performance.now();
      await fetch(`${diagUrl}/healthz`).then((r) => r.arrayBuffer());
      longest = Math.max(longest, performance.now() - start);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return longest;
    },
  };
}

interface ScaleFigures {
  readonly tokens: number;
  readonly checkSeconds: number;
  readonly checkPeakMiB: number;
  readonly readySeconds: number;
  readonly readyRssMiB: number;
  readonly reloadMs: number;
  readonly longestHealthzMs: number;
  readonly rssAfterFirstReloadMiB: number;
  readonly rssAfterReloadsMiB: number;
}

async function measureSize(tokens: number, pool: readonly string[]): Promise<ScaleFigures> {
  const dir = mkdtempSync(join(tmpdir(), `kube-join-bench-scale-${tokens}-`));
  try {
    const resources = join(dir, "resources");
    writeScaleResources(resources, tokens, pool);
    const check = await timeCheck(resources);

    const diagPort = await freePort();
    const configFile = join(dir, "config.yaml");
    writeFileSync(
      configFile,
      [
        `cluster_name: ${CLUSTER}`,
        "listen_addr: 127.0.0.1:0",
        `diag_addr: 127.0.0.1:${diagPort}`,
        "resources: [./resources]",
        "data_dir: ./data",
        "audit: {file: ./audit.log}",
        "log_level: info",
        "",
      ].join("\n"),
    );
    const diagUrl = `http://127.0.0.1:${diagPort}`;
    const started = process.hrtime.bigint();
    const serve = await spawnUntil(
      "node",
      [CLI, "serve", "--config", configFile],
      () => fetch(`${diagUrl}/readyz`).then((r) => r.ok),
      120_000,
    );
    try {
      const readySeconds = Number(process.hrtime.bigint() - started) / 1e9;
      const pid = serve.child.pid!;
      const readyRss = rssMiB(pid);
      let reloadMs = 0;
      let longestHealthzMs = 0;
      let rssAfterFirst = 0;
      for (let i = 0; i < RELOADS; i++) {
        const before = countReloads(serve.output());
        const probe = i === 0 ? probeHealth(diagUrl) : undefined;
        const t0 = performance.now();
        serve.child.kill("SIGHUP");
        await waitFor(() => countReloads(serve.output()) > before, 120_000);
        const elapsed = performance.now() - t0;
        if (probe !== undefined) longestHealthzMs = await probe.stop();
        if (i === 0) {
          reloadMs = elapsed;
          rssAfterFirst = rssMiB(pid);
        }
      }
      return {
        tokens,
        checkSeconds: check.seconds,
        checkPeakMiB: check.peakMiB,
        readySeconds,
        readyRssMiB: readyRss,
        reloadMs,
        longestHealthzMs,
        rssAfterFirstReloadMiB: rssAfterFirst,
        rssAfterReloadsMiB: rssMiB(pid),
      };
    } finally {
      await serve.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function countReloads(output: string): number {
  return output.split('"resources reloaded"').length - 1;
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not done within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The scale rows for 10, 1,000 and 10,000 tokens. */
export async function benchScale(
  sizes: readonly number[] = [10, 1000, 10_000],
): Promise<BenchRow[]> {
  const pool = await keyPool(KEY_POOL);
  const rows: BenchRow[] = [];
  for (const tokens of sizes) {
    const f = await measureSize(tokens, pool);
    const at = `scale ${tokens} tokens:`;
    rows.push(
      { name: `${at} kube-join check`, value: round(f.checkSeconds, 2), unit: "s" },
      { name: `${at} kube-join check, peak RSS`, value: round(f.checkPeakMiB, 0), unit: "MiB" },
      { name: `${at} serve ready after start`, value: round(f.readySeconds, 2), unit: "s" },
      { name: `${at} RSS when ready`, value: round(f.readyRssMiB, 0), unit: "MiB" },
      { name: `${at} one SIGHUP reload`, value: round(f.reloadMs, 0), unit: "ms" },
      { name: `${at} longest /healthz during it`, value: round(f.longestHealthzMs, 0), unit: "ms" },
      { name: `${at} RSS after 1 reload`, value: round(f.rssAfterFirstReloadMiB, 0), unit: "MiB" },
      {
        name: `${at} RSS after ${RELOADS} reloads`,
        value: round(f.rssAfterReloadsMiB, 0),
        unit: "MiB",
      },
    );
  }
  return rows;
}
