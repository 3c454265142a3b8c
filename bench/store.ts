/**
 * What recording bot instances costs a join: the same build serving with the in-memory store
 * (the store "off"), with SQLite (the default) and with PostgreSQL on this machine, driven in
 * alternating rounds so drift on this shared machine falls on all three alike. The targets are
 * ratios of kube-join's own CPU per join, measured side by side: SQLite within 1.15x of memory,
 * PostgreSQL within 1.3x. PostgreSQL's own CPU is reported beside it, not hidden in the ratio.
 *
 * The half-load p99s are read against a second in-memory server paced in the same alternation:
 * two identical servers differ by this run's noise. Each store's share of the latency is its
 * record wait, read from the server's own `kube_join_store_record_duration_seconds`.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateClusterKey } from "../test/support/jwt.ts";
import { join as instanceJoin } from "../test/support/bot-instance-store-contract.ts";
import { startPostgres, type PostgresCluster } from "../test/support/postgres.ts";
import {
  fire,
  joined,
  makeBodies,
  measureRound,
  median,
  newPaced,
  newTotal,
  pacedRound,
  pacedUnit,
  pool,
  roundP99s,
  startKubeJoin,
  type Pool,
  type Started,
} from "./http.ts";
import { PostgresStore } from "../src/store/postgres-store.ts";
import { DEFAULT_CHECKPOINT_INTERVAL_MS, SqliteStore } from "../src/store/sqlite-store.ts";
import type { Store } from "../src/store/store.ts";
import { round, type BenchRow } from "./measure.ts";
import { quantile } from "./paced-client.ts";
import { cpuSeconds, procStatFields } from "./processes.ts";

const ROUNDS = 5;
const ROUND_SECONDS = 2;
const WARM_UP_SECONDS = 2;
const PACED_ROUNDS = 3;

/** CPU of one PostgreSQL cluster: its main process and its children (one backend per connection). */
function clusterCpuSeconds(postmasterPid: number): number {
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = Number(procStatFields(`/proc/${entry}/stat`)[1]);
      if (Number(entry) === postmasterPid || ppid === postmasterPid) {
        total += cpuSeconds(Number(entry));
      }
    } catch {
      // a backend that exited meanwhile
    }
  }
  return total;
}

/** What a server's store metrics say so far. */
interface StoreReading {
  /** `kube_join_store_write_batch_joins`: writes, and the joins they carried. */
  readonly writes: number;
  readonly joins: number;
  /** `kube_join_store_record_duration_seconds{result="success"}`: cumulative bucket counts by `le`. */
  readonly waitBuckets: ReadonlyMap<number, number>;
  readonly waitSum: number;
  readonly waitCount: number;
}

async function reading(server: Started): Promise<StoreReading> {
  const text = await (await fetch(`${server.diagUrl}/metrics`)).text();
  const value = (name: string): number =>
    Number(new RegExp(`^${name} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
  const waitBuckets = new Map<number, number>();
  const bucket =
    /^kube_join_store_record_duration_seconds_bucket\{le="([^"]+)",result="success"\} (\S+)$/gm;
  for (const m of text.matchAll(bucket)) waitBuckets.set(Number(m[1]), Number(m[2]));
  const wait = (suffix: string): number =>
    value(`kube_join_store_record_duration_seconds_${suffix}\\{result="success"\\}`);
  return {
    writes: value("kube_join_store_write_batch_joins_count"),
    joins: value("kube_join_store_write_batch_joins_sum"),
    waitBuckets,
    waitSum: wait("sum"),
    waitCount: wait("count"),
  };
}

/** Mean joins per write between two readings. */
function perWrite(before: StoreReading, after: StoreReading): number {
  const writes = after.writes - before.writes;
  return writes === 0 ? 0 : (after.joins - before.joins) / writes;
}

/**
 * The joins' wait for their records between two readings: the mean, and the p99 as the histogram
 * can give it (the upper bound of the bucket it falls in).
 */
function recordWait(
  before: StoreReading,
  after: StoreReading,
): { readonly meanMs: number; readonly p99Ms: number } {
  const count = after.waitCount - before.waitCount;
  const meanMs = count === 0 ? 0 : ((after.waitSum - before.waitSum) * 1000) / count;
  for (const [le, cumulative] of [...after.waitBuckets].sort(([a], [b]) => a - b)) {
    if (cumulative - (before.waitBuckets.get(le) ?? 0) >= 0.99 * count) {
      return { meanMs, p99Ms: le * 1000 };
    }
  }
  return { meanMs, p99Ms: Number.POSITIVE_INFINITY };
}

/** Records written by the store alone, in this process: no HTTP, no JWT, no signing. */
const ALONE_SECONDS = 3;
const ALONE_ROUNDS = 3;

/** Latencies (ms) of one store's records, paced, from each `recordJoin` call to its commit. */
async function recordAlone(store: Store, rate: number, seconds: number, tag: string) {
  const count = Math.round(rate * seconds);
  const latencies = new Float64Array(count);
  const started = performance.now();
  let sent = 0;
  const writes: Promise<void>[] = [];
  while (sent < count) {
    const due = Math.min(count, Math.floor(((performance.now() - started) * rate) / 1000) + 1);
    for (; sent < due; sent++) {
      const i = sent;
      const called = performance.now();
      writes.push(
        store.recordJoin(instanceJoin({ podUid: `${tag}-${i}`, jti: `${tag}-${i}` })).then(() => {
          latencies[i] = performance.now() - called;
        }),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  await Promise.all(writes);
  return latencies;
}

/**
 * The record wait of each engine alone, alternating: SQLite as `serve` runs it, PostgreSQL with
 * durable commits (its default), and PostgreSQL with `synchronous_commit = off` (the operator's
 * trade, docs/store.md), each in a database of its own.
 */
async function benchRecordAlone(
  cluster: PostgresCluster,
  dir: string,
  rate: number,
): Promise<BenchRow[]> {
  // A database default: every connection of the store's pool has it.
  const asyncUrl = await cluster.createDatabase("kube_join_bench_async", {
    synchronous_commit: "off",
  });
  const stores = {
    sqlite: await SqliteStore.open({
      path: join(dir, "alone.db"),
      checkpointIntervalMs: DEFAULT_CHECKPOINT_INTERVAL_MS,
    }),
    "postgres (synchronous_commit on)": await PostgresStore.open({
      url: await cluster.createDatabase("kube_join_bench_sync"),
    }),
    "postgres (synchronous_commit off)": await PostgresStore.open({ url: asyncUrl }),
  };
  type Name = keyof typeof stores;
  const names = Object.keys(stores) as Name[];
  const rounds = new Map<Name, Float64Array[]>(names.map((n) => [n, []]));
  try {
    for (const name of names) await recordAlone(stores[name], rate, 1, "warm");
    for (let r = 0; r < ALONE_ROUNDS; r++) {
      for (const name of names) {
        rounds.get(name)!.push(await recordAlone(stores[name], rate, ALONE_SECONDS, `r${r}`));
      }
    }
  } finally {
    for (const store of Object.values(stores)) await store.close();
  }
  return names.map((name) => {
    const p99s = rounds.get(name)!.map((latencies) => quantile(latencies, 0.99));
    const all = joined(rounds.get(name)!);
    return {
      name: `store: a record alone at ${rate}/s (no HTTP), ${name}: p99`,
      value: round(median(p99s), 2),
      unit: `ms (median of ${ALONE_ROUNDS} rounds of ${ALONE_SECONDS} s; p50 ${round(quantile(all, 0.5), 2)}, p99.9 ${round(quantile(all, 0.999), 1)}, max ${round(
        all.reduce((m, v) => Math.max(m, v), 0),
        1,
      )} ms)`,
    };
  });
}

export async function benchStore(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-bench-store-"));
  let cluster: PostgresCluster | undefined;
  const servers: Started[] = [];
  try {
    // fsync on: PostgreSQL as it would run in production, durable commits included.
    cluster = await startPostgres({ fsync: true });
    const url = await cluster.createDatabase("kube_join_bench");
    // As a deployment gives it: the URL with its password in a file (a Secret), not the config.
    writeFileSync(join(dir, "store-url"), url);
    const key = generateClusterKey("RS256");
    process.stderr.write("bench: minting distinct JWTs and key pairs for the store rounds...\n");
    // Each server gets every body once (their stores are apart), so one pool serves all three.
    const bodies = await makeBodies(key, 60_000, false);
    const start = async (name: string, line: string): Promise<Started> => {
      const server = await startKubeJoin(dir, key, false, { name, lines: [line] });
      servers.push(server);
      return server;
    };
    const memory = await start("-memory", "store: {engine: memory}");
    const sqlite = await start(
      "-sqlite",
      "store: {engine: sqlite, sqlite: {path: ./data/bench-store.db}}",
    );
    const postgres = await start(
      "-postgres",
      "store: {engine: postgres, postgres: {url_file: ./store-url}}",
    );
    // A second in-memory server, paced like the others: how far two identical servers differ in
    // this run is the noise the stores' p99s are read against.
    const memoryAgain = await start("-memory-again", "store: {engine: memory}");
    const pools: Record<"memory" | "sqlite" | "postgres", Pool> = {
      memory: pool(bodies),
      sqlite: pool(bodies),
      postgres: pool(bodies),
    };
    const targets = { memory, sqlite, postgres } as const;
    const names = ["memory", "sqlite", "postgres"] as const;
    for (const name of names) {
      await fire(targets[name].url, pools[name], { duration: WARM_UP_SECONDS });
    }
    const againPool = pool(bodies);
    await fire(memoryAgain.url, againPool, { duration: WARM_UP_SECONDS });
    const totals = { memory: newTotal(), sqlite: newTotal(), postgres: newTotal() };
    const loadedFrom = { sqlite: await reading(sqlite), postgres: await reading(postgres) };
    let pgCpu = 0;
    const pgPid = cluster.postmasterPid();
    for (let r = 0; r < ROUNDS; r++) {
      for (const name of names) {
        const pid = targets[name].process.child.pid!;
        const pgBefore = name === "postgres" ? clusterCpuSeconds(pgPid) : 0;
        await measureRound(totals[name], pid, () =>
          fire(targets[name].url, pools[name], { duration: ROUND_SECONDS }),
        );
        if (name === "postgres") pgCpu += clusterCpuSeconds(pgPid) - pgBefore;
      }
    }
    const cpuMs = (name: (typeof names)[number]) =>
      (totals[name].cpuSeconds * 1000) / Math.max(1, totals[name].ok);
    const rate = (name: (typeof names)[number]) => totals[name].ok / totals[name].seconds;

    const loadedTo = { sqlite: await reading(sqlite), postgres: await reading(postgres) };

    // p99 at half of the in-memory store's maximum, evenly paced, alternating; the second
    // in-memory server takes its turn after the three stores.
    const halfRate = Math.max(1, Math.floor(rate("memory") / 2));
    const paced = { memory: newPaced(), sqlite: newPaced(), postgres: newPaced() };
    const pacedAgain = newPaced();
    for (let r = 0; r < PACED_ROUNDS; r++) {
      for (const name of names) {
        await pacedRound(paced[name], targets[name].url, pools[name], halfRate, dir);
      }
      await pacedRound(pacedAgain, memoryAgain.url, againPool, halfRate, dir);
    }
    const pacedTo = { sqlite: await reading(sqlite), postgres: await reading(postgres) };
    const p99 = (total: typeof pacedAgain): number => median(roundP99s(total));
    const wrapped = names.filter((n) => pools[n].next > bodies.length);
    if (wrapped.length > 0) {
      process.stderr.write(
        `bench: warning: the store pool wrapped for ${wrapped.join(", ")}: repeated JWTs hit the cache\n`,
      );
    }
    // Last, with the servers idle: the stores alone, at the same rate.
    const alone = await benchRecordAlone(cluster, dir, halfRate);
    const failed =
      names.reduce((n, name) => n + totals[name].failed + paced[name].failed, 0) +
      pacedAgain.failed;
    return [
      {
        name: "store: server CPU per join, in-memory store (store off)",
        value: round(cpuMs("memory"), 3),
        unit: `ms (${round(rate("memory"), 0)} joins/s, distinct pods: each join a new instance)`,
      },
      {
        name: "store: server CPU per join, SQLite (default)",
        value: round(cpuMs("sqlite"), 3),
        unit: `ms (${round(rate("sqlite"), 0)} joins/s)`,
      },
      {
        name: "store:   SQLite / in-memory CPU per join (target <= 1.15)",
        value: round(cpuMs("sqlite") / cpuMs("memory"), 2),
        unit: "x",
      },
      {
        name: "store: server CPU per join, PostgreSQL (same machine, fsync on)",
        value: round(cpuMs("postgres"), 3),
        unit: `ms (${round(rate("postgres"), 0)} joins/s; PostgreSQL's own CPU ${round((pgCpu * 1000) / Math.max(1, totals.postgres.ok), 3)} ms/join)`,
      },
      {
        name: "store:   PostgreSQL / in-memory CPU per join (target <= 1.3)",
        value: round(cpuMs("postgres") / cpuMs("memory"), 2),
        unit: "x",
      },
      ...(["sqlite", "postgres"] as const).map((name) => ({
        name: `store:   joins per write at full load, ${name} (group commit / one statement)`,
        value: round(perWrite(loadedFrom[name], loadedTo[name]), 2),
        unit: "joins",
      })),
      ...names.map((name) => ({
        name: `store: p99 at ${halfRate}/s evenly paced, ${name}`,
        value: round(p99(paced[name]), 1),
        unit: pacedUnit(paced[name]),
      })),
      {
        name: `store: p99 at ${halfRate}/s evenly paced, memory again (a second in-memory server)`,
        value: round(p99(pacedAgain), 1),
        unit: pacedUnit(pacedAgain),
      },
      {
        name: "store:   p99 / in-memory's: memory again (this run's noise), sqlite, postgres",
        value: round(p99(pacedAgain) / p99(paced.memory), 2),
        unit: `x, ${round(p99(paced.sqlite) / p99(paced.memory), 2)}x, ${round(p99(paced.postgres) / p99(paced.memory), 2)}x`,
      },
      ...(["sqlite", "postgres"] as const).map((name) => ({
        name: `store:   joins per write at ${halfRate}/s evenly paced, ${name}`,
        value: round(perWrite(loadedTo[name], pacedTo[name]), 2),
        unit: "joins",
      })),
      ...(["sqlite", "postgres"] as const).map((name) => {
        const wait = recordWait(loadedTo[name], pacedTo[name]);
        return {
          name: `store:   a join's wait for its record at ${halfRate}/s, ${name}: p99 (bucket bound)`,
          value: round(wait.p99Ms, 2),
          unit: `ms (mean ${round(wait.meanMs, 2)} ms; kube_join_store_record_duration_seconds)`,
        };
      }),
      ...alone,
      { name: "store: failed requests in these rounds", value: failed, unit: "(target 0)" },
    ];
  } finally {
    for (const server of servers) await server.process.stop();
    await cluster?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
