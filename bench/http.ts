import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import type { Result } from "autocannon";
import {
  generateClusterKey,
  mintServiceAccountToken,
  serviceAccountClaims,
  type ClusterKey,
} from "../test/support/jwt.ts";
import { writeLoopbackServerCertificate } from "../test/support/tls.ts";
import { joinRequestBody, newBotPublicKeys } from "../test/support/join-request.ts";
import { round, type BenchRow } from "./measure.ts";
import { quantile, type PacedOptions, type PacedResultJson } from "./paced-client.ts";
import { cpuSeconds, freePort, rssMiB, run, spawnUntil, type Spawned } from "./processes.ts";

export const CLUSTER = "bench.example.com";
const ROOT = new URL("..", import.meta.url).pathname;
const CONNECTIONS = 16;
/** Many keep-alive clients each joining now and then, as a fleet of bots would. */
const PACED_CONNECTIONS = 16;
const WARM_UP_SECONDS = 4;

/** A join request body, ready to send. */
export type Body = string;

/**
 * Join bodies: each with its own JWT (distinct pod uid and jti) and its own TLS and SSH public
 * keys, or all sharing one JWT (`repeatJwt`) so the verified-token cache answers.
 */
export async function makeBodies(
  cluster: ClusterKey,
  count: number,
  repeatJwt: boolean,
): Promise<Body[]> {
  const now = Date.now();
  const claims = () =>
    serviceAccountClaims({ audience: CLUSTER, issuedAtMs: now, ttlSeconds: 1800 });
  const shared = mintServiceAccountToken(cluster, claims());
  const bodies: Body[] = [];
  // Key pairs come from the thread pool, a batch at a time (see newBotPublicKeys for why).
  const BATCH = 64;
  for (let start = 0; start < count; start += BATCH) {
    const keys = await Promise.all(
      Array.from({ length: Math.min(BATCH, count - start) }, () => newBotPublicKeys()),
    );
    for (const k of keys) {
      bodies.push(
        joinRequestBody({
          token: "bench-bot",
          role: "Bot",
          idToken: repeatJwt ? shared : mintServiceAccountToken(cluster, claims()),
          keys: k,
        }),
      );
    }
  }
  return bodies;
}

/** An autocannon result with the wall time it took (autocannon's own `duration` is whole seconds). */
type Run = Result & { readonly seconds: number };

/**
 * Request bodies and the position of the next one. Runs that share a pool never send a body
 * twice (until the pool wraps, which `makePool` sizes against).
 */
export interface Pool {
  readonly bodies: readonly Body[];
  next: number;
}

export function pool(bodies: readonly Body[]): Pool {
  return { bodies, next: 0 };
}

/** The next `count` bodies of a pool (wrapping), as a run that is not autocannon's would take. */
function takeBodies(from: Pool, count: number): Body[] {
  const taken: Body[] = [];
  for (let i = 0; i < count; i++) taken.push(from.bodies[from.next++ % from.bodies.length]!);
  return taken;
}

export async function fire(
  url: string,
  bodies: Pool,
  options: { amount?: number; duration?: number; ca?: string },
): Promise<Run> {
  const started = process.hrtime.bigint();
  const result = await autocannon({
    url: `${url}/v1/join`,
    connections: CONNECTIONS,
    timeout: 10,
    ...(options.amount !== undefined ? { amount: options.amount } : {}),
    ...(options.duration !== undefined ? { duration: options.duration } : {}),
    ...(options.ca !== undefined ? { tlsOptions: { ca: options.ca } } : {}),
    requests: [
      {
        method: "POST",
        path: "/v1/join",
        headers: { "content-type": "application/json" },
        setupRequest: (req) => ({
          ...req,
          body: bodies.bodies[bodies.next++ % bodies.bodies.length]!,
        }),
      },
    ],
  });
  return { ...result, seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

export interface Started {
  readonly process: Spawned;
  readonly url: string;
  /** The diag listener (`/metrics`, `/readyz`). */
  readonly diagUrl: string;
}

/** `serve` on the bench's bot and token; `extraConfig` lines go into its config (`store: ...`). */
export async function startKubeJoin(
  dir: string,
  cluster: ClusterKey,
  tls: boolean,
  extraConfig: { readonly name: string; readonly lines: readonly string[] } = {
    name: "",
    lines: [],
  },
): Promise<Started> {
  writeFileSync(
    join(dir, "resources.yaml"),
    [
      "kind: bot",
      "version: v1",
      "metadata: {name: bench}",
      "spec:",
      "  roles: [access]",
      "  traits: [{name: logins, values: [root]}]",
      "---",
      "kind: token",
      "version: v2",
      "metadata: {name: bench-bot}",
      "spec:",
      "  roles: [Bot]",
      "  bot_name: bench",
      "  join_method: kubernetes",
      "  kubernetes:",
      "    type: static_jwks",
      `    static_jwks: {jwks: '${cluster.jwks}'}`,
      '    allow: [{service_account: "default:tbot"}]',
      "",
    ].join("\n"),
  );
  const configFile = join(dir, `config${extraConfig.name}${tls ? "-tls" : ""}.yaml`);
  const port = await freePort();
  const diag = await freePort();
  writeFileSync(
    configFile,
    [
      `cluster_name: ${CLUSTER}`,
      `listen_addr: 127.0.0.1:${port}`,
      `diag_addr: 127.0.0.1:${diag}`,
      "resources: [./resources.yaml]",
      `data_dir: ./data`,
      // The bench is one client address: lift the per-IP limit out of the way.
      "rate_limit: {average: 100000000, period: 1s, burst: 100000000}",
      "audit: {file: ./audit.log}",
      "log_level: warn",
      ...(tls ? ["tls: {cert_file: ./server.crt, key_file: ./server.key}"] : []),
      ...extraConfig.lines,
      "",
    ].join("\n"),
  );
  // Ready once the diag listener answers /readyz (resources and CA loaded).
  const process = await spawnUntil(
    "node",
    [join(ROOT, "bin/kube-join.js"), "serve", "--config", configFile],
    () => fetch(`http://127.0.0.1:${diag}/readyz`).then((r) => r.ok),
  );
  return {
    process,
    url: `${tls ? "https" : "http"}://127.0.0.1:${port}`,
    diagUrl: `http://127.0.0.1:${diag}`,
  };
}

const ROUNDS = 5;
const ROUND_SECONDS = 2;
/*
 * No step-ca ratio here: step-ca is not run by this bench, and a ratio of our CPU per join of one
 * day to a peer's figure of another day (on another machine, or the same machine under other
 * load) measures the days as much as the services. The README quotes step-ca's figures with the
 * date and machine they came from.
 */
const PACED_ROUNDS = 5;
const PACED_ROUND_SECONDS = 2;
/** Paced before each round's counted seconds, not counted (bench/paced-client.ts says why). */
export const PACED_WARMUP_SECONDS = 0.5;

/** The paced rounds against one server. */
export interface Paced {
  readonly rounds: Float64Array[];
  readonly fromWrite: Float64Array[];
  failed: number;
}

export function newPaced(): Paced {
  return { rounds: [], fromWrite: [], failed: 0 };
}

/** One paced round, from a process of its own (bench/paced-client.ts says why). */
export async function pacedRound(
  total: Paced,
  url: string,
  bodies: Pool,
  rate: number,
  dir: string,
): Promise<void> {
  const options: PacedOptions = {
    port: Number(new URL(url).port),
    path: "/v1/join",
    rate,
    seconds: PACED_ROUND_SECONDS,
    warmupSeconds: PACED_WARMUP_SECONDS,
    connections: PACED_CONNECTIONS,
    bodies: takeBodies(bodies, Math.ceil(rate * (PACED_WARMUP_SECONDS + PACED_ROUND_SECONDS))),
  };
  const file = join(dir, "paced-round.json");
  writeFileSync(file, JSON.stringify(options));
  const { stdout } = await run(
    "node",
    ["--import", "tsx", join(ROOT, "bench/paced-client.ts"), file],
    (PACED_WARMUP_SECONDS + PACED_ROUND_SECONDS + 30) * 1000,
  );
  const result = JSON.parse(stdout) as PacedResultJson;
  total.rounds.push(Float64Array.from(result.latenciesMs));
  total.fromWrite.push(Float64Array.from(result.fromWriteMs));
  total.failed += result.failed;
}

/** The rounds' latencies as one array. */
export function joined(rounds: readonly Float64Array[]): Float64Array {
  const all = new Float64Array(rounds.reduce((n, r) => n + r.length, 0));
  let at = 0;
  for (const round of rounds) {
    all.set(round, at);
    at += round.length;
  }
  return all;
}

/**
 * The median of the rounds' p99s: a round in which this shared machine was busy elsewhere (the
 * echo controls have shown a 15 ms p99 in such a round) moves it less than it moves a p99 over all
 * rounds together, which the unit column shows next to the range.
 */
export function roundP99s(total: Paced): number[] {
  return total.rounds.map((r) => quantile(r, 0.99));
}

export function pacedUnit(total: Paced): string {
  const p99s = roundP99s(total);
  const all = joined(total.rounds);
  return (
    `ms (median of rounds; rounds ${round(Math.min(...p99s), 1)}-${round(Math.max(...p99s), 1)}, ` +
    `all rounds together ${round(quantile(all, 0.99), 1)}, ` +
    `from write ${round(quantile(joined(total.fromWrite), 0.99), 1)}; ` +
    `p50 ${round(quantile(all, 0.5), 1)} ms)`
  );
}

/** Sums over the alternating rounds of one kind of run. */
export interface Total {
  ok: number;
  failed: number;
  seconds: number;
  cpuSeconds: number;
  p50s: number[];
  p99Max: number;
}

export function newTotal(): Total {
  return { ok: 0, failed: 0, seconds: 0, cpuSeconds: 0, p50s: [], p99Max: 0 };
}

export async function measureRound(
  total: Total,
  pid: number,
  run: () => Promise<Run>,
): Promise<void> {
  const cpuBefore = cpuSeconds(pid);
  const result = await run();
  total.cpuSeconds += cpuSeconds(pid) - cpuBefore;
  total.ok += result["2xx"];
  total.failed += result.non2xx + result.errors;
  total.seconds += result.seconds;
  total.p50s.push(result.latency.p50);
  total.p99Max = Math.max(total.p99Max, result.latency.p99);
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

/**
 * End-to-end HTTP figures, all in one run on this machine: a real `kube-join serve` process
 * driven by autocannon from this (separate) process, next to a bare express JSON echo.
 */
export async function benchHttp(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-bench-http-"));
  const processes: Spawned[] = [];
  try {
    const cluster = generateClusterKey("RS256");
    const ca = writeLoopbackServerCertificate("openssl", dir);
    process.stderr.write("bench: minting distinct JWTs and key pairs...\n");
    // Sized for a quiet run: about 2.2k joins/s through both warm-ups and the five 2 s rounds of
    // plain and TLS joins, then five 2 s paced rounds at half that.
    const distinct = pool(await makeBodies(cluster, 64_000, false));
    const repeated = pool(await makeBodies(cluster, 2_000, true));
    // The echo gets the same bodies through a cursor of its own: it may repeat them freely.
    const echoBodies = pool(distinct.bodies);

    const echo = await spawnUntil(
      "node",
      ["--import", "tsx", join(ROOT, "bench/echo-server.ts")],
      /listening \d+/,
    );
    processes.push(echo);
    const echoPort = /listening (\d+)/.exec(echo.output())![1];
    const echoUrl = `http://127.0.0.1:${echoPort}`;

    const nodeEcho = await spawnUntil(
      "node",
      ["--import", "tsx", join(ROOT, "bench/node-echo-server.ts")],
      /listening \d+/,
    );
    processes.push(nodeEcho);
    const nodeEchoUrl = `http://127.0.0.1:${/listening (\d+)/.exec(nodeEcho.output())![1]}`;

    const plain = await startKubeJoin(dir, cluster, false);
    processes.push(plain.process);
    const tls = await startKubeJoin(dir, cluster, true);
    processes.push(tls.process);

    // Warm-up for every server (JIT, connection setup), not measured: long enough for V8 to finish
    // optimising the join path (after 1 s the first 2 s round still cost about 40% more CPU per
    // join than the later ones), on both kinds of body so neither measured kind is the first.
    await fire(echoUrl, echoBodies, { duration: WARM_UP_SECONDS });
    await fire(nodeEchoUrl, echoBodies, { duration: 1 });
    await fire(plain.url, distinct, { duration: WARM_UP_SECONDS / 2 });
    await fire(plain.url, repeated, { duration: WARM_UP_SECONDS / 2 });
    await fire(tls.url, distinct, { duration: WARM_UP_SECONDS / 2, ca });
    await fire(tls.url, repeated, { duration: WARM_UP_SECONDS / 2, ca });

    // The four throughput figures are taken in alternating short rounds, so drift in what else
    // this shared machine is doing falls on each of them alike; CPU is read from /proc around
    // each round.
    // No-cache joins over TLS are the fourth kind of round: the shape of step-ca's figures (it
    // verifies every JWT, over TLS), for comparison only with a step-ca measured in the same run.
    const echoPid = echo.child.pid!;
    const pid = plain.process.child.pid!;
    const tlsPid = tls.process.child.pid!;
    const totals = { echo: newTotal(), noCache: newTotal(), cached: newTotal(), tls: newTotal() };
    for (let round = 0; round < ROUNDS; round++) {
      await measureRound(totals.echo, echoPid, () =>
        fire(echoUrl, echoBodies, { duration: ROUND_SECONDS }),
      );
      await measureRound(totals.noCache, pid, () =>
        fire(plain.url, distinct, { duration: ROUND_SECONDS }),
      );
      await measureRound(totals.cached, pid, () =>
        fire(plain.url, repeated, { duration: ROUND_SECONDS }),
      );
      await measureRound(totals.tls, tlsPid, () =>
        fire(tls.url, distinct, { duration: ROUND_SECONDS, ca }),
      );
    }
    const echoRate = totals.echo.ok / totals.echo.seconds;
    const noCacheRate = totals.noCache.ok / totals.noCache.seconds;
    const cachedRate = totals.cached.ok / totals.cached.seconds;
    const tlsRate = totals.tls.ok / totals.tls.seconds;
    const tlsCpuPerJoinMs = (totals.tls.cpuSeconds * 1000) / totals.tls.ok;
    // Latency at half the maximum: evenly paced load (bench/paced-client.ts says why not
    // autocannon's) against kube-join and, as controls for what this machine's client, loopback
    // and scheduler add, against the express echo and a bare node:http echo; in alternating rounds,
    // so drift on this shared machine falls on all three alike (roundP99s says what is reported).
    const halfRate = Math.max(1, Math.floor(noCacheRate / 2));
    const paced = { join: newPaced(), echo: newPaced(), nodeEcho: newPaced() };
    for (let round = 0; round < PACED_ROUNDS; round++) {
      await pacedRound(paced.join, plain.url, distinct, halfRate, dir);
      await pacedRound(paced.echo, echoUrl, echoBodies, halfRate, dir);
      await pacedRound(paced.nodeEcho, nodeEchoUrl, echoBodies, halfRate, dir);
    }
    if (distinct.next > distinct.bodies.length) {
      process.stderr.write("bench: warning: the distinct pool wrapped; some JWTs were repeated\n");
    }
    const serverRss = rssMiB(pid);

    const failures =
      totals.noCache.failed + totals.cached.failed + totals.tls.failed + paced.join.failed;
    const latency = (t: Total) =>
      `ms / ${round(t.p99Max, 1)} ms (median of rounds' p50 / worst round's p99)`;
    return [
      { name: "http: bare express JSON echo", value: round(echoRate, 0), unit: "req/s" },
      {
        name: "http: joins, distinct JWT + keys (no cache help)",
        value: round(noCacheRate, 0),
        unit: "joins/s",
      },
      {
        name: "http:   p50 / p99",
        value: median(totals.noCache.p50s),
        unit: latency(totals.noCache),
      },
      {
        name: "http: joins, repeated JWT (cache hits)",
        value: round(cachedRate, 0),
        unit: "joins/s",
      },
      {
        name: "http:   p50 / p99",
        value: median(totals.cached.p50s),
        unit: latency(totals.cached),
      },
      {
        name: "http: joins over TLS, distinct JWT + keys (no cache help)",
        value: round(tlsRate, 0),
        unit: "joins/s",
      },
      {
        name: "http:   p50 / p99",
        value: median(totals.tls.p50s),
        unit: latency(totals.tls),
      },
      {
        name: `http: p99 at half max (${halfRate}/s evenly paced, distinct JWTs; target < 10)`,
        value: round(median(roundP99s(paced.join)), 1),
        unit: pacedUnit(paced.join),
      },
      {
        name: `http:   control: express echo p99 at the same pace`,
        value: round(median(roundP99s(paced.echo)), 1),
        unit: pacedUnit(paced.echo),
      },
      {
        name: `http:   control: node:http echo (no framework) p99 at the same pace`,
        value: round(median(roundP99s(paced.nodeEcho)), 1),
        unit: pacedUnit(paced.nodeEcho),
      },
      {
        name: "ratio: joins no-cache / echo (target >= 0.4)",
        value: round(noCacheRate / echoRate),
        unit: "x",
      },
      {
        name: "ratio: joins cache-hit / echo (target >= 0.55)",
        value: round(cachedRate / echoRate),
        unit: "x",
      },
      {
        name: "cpu: echo server CPU per request (same bodies)",
        value: round((totals.echo.cpuSeconds * 1000) / totals.echo.ok, 3),
        unit: "ms",
      },
      {
        name: "cpu: server CPU per successful join, no cache help",
        value: round((totals.noCache.cpuSeconds * 1000) / totals.noCache.ok, 3),
        unit: "ms",
      },
      {
        name: "cpu: server CPU per successful join, cache hits",
        value: round((totals.cached.cpuSeconds * 1000) / totals.cached.ok, 3),
        unit: "ms",
      },
      {
        name: "cpu: server CPU per successful join over TLS, no cache help",
        value: round(tlsCpuPerJoinMs, 3),
        unit: "ms",
      },
      { name: "mem: server RSS after the HTTP runs", value: round(serverRss, 0), unit: "MiB" },
      { name: "http: failed requests in measured runs (expect 0)", value: failures, unit: "count" },
    ];
  } finally {
    await Promise.all(processes.map((p) => p.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
}
