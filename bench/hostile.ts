/**
 * Hostile load (issue 16): a soak at half of capacity with distinct tokens, then a run of
 * refusals, watching the server's RSS; each figure measured in this run, on this machine.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import {
  generateClusterKey,
  jwksOf,
  mintServiceAccountToken,
  serviceAccountClaims,
} from "../test/support/jwt.ts";
import { joinRequestBody, newBotPublicKeys } from "../test/support/join-request.ts";
import { makeBodies, startKubeJoin } from "./http.ts";
import { round, type BenchRow } from "./measure.ts";
import { cpuSeconds, rssMiB } from "./processes.ts";

const SOAK_SECONDS = 40;
const REFUSAL_SECONDS = 40;
const SAMPLE_MS = 2_000;
const CONNECTIONS = 16;

interface Phase {
  readonly ok: number;
  readonly byStatus: Readonly<Record<string, number>>;
  readonly errors: number;
  readonly rss: readonly number[];
  readonly cpuSeconds: number;
}

/** Sends `bodies` in order at `rate` per second for `seconds`, sampling the server's RSS. */
async function phase(
  url: string,
  pid: number,
  bodies: readonly string[],
  rate: number,
  seconds: number,
): Promise<Phase> {
  let next = 0;
  const rss: number[] = [];
  const sampler = setInterval(() => rss.push(rssMiB(pid)), SAMPLE_MS);
  const cpuBefore = cpuSeconds(pid);
  const result = await autocannon({
    url: `${url}/v1/join`,
    connections: CONNECTIONS,
    overallRate: rate,
    duration: seconds,
    timeout: 10,
    requests: [
      {
        method: "POST",
        path: "/v1/join",
        headers: { "content-type": "application/json" },
        setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length]! }),
      },
    ],
  });
  clearInterval(sampler);
  const byStatus: Record<string, number> = {};
  for (const [status, stat] of Object.entries(result.statusCodeStats ?? {})) {
    byStatus[status] = stat.count;
  }
  return {
    ok: result["2xx"],
    byStatus,
    errors: result.errors + result.timeouts,
    rss,
    cpuSeconds: cpuSeconds(pid) - cpuBefore,
  };
}

/** Mean of the last five samples (10 s) against the five before them. */
function plateau(rss: readonly number[]): { last: number; before: number; change: number } {
  const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const last = mean(rss.slice(-5));
  const before = mean(rss.slice(-10, -5));
  return { last, before, change: (last - before) / before };
}

/** A body whose JWT signature is broken (one character of the signature changed). */
function badSignature(body: string): string {
  const parsed = JSON.parse(body) as { id_token: string };
  const token = parsed.id_token;
  const at = token.length - 5;
  const swapped = token[at] === "A" ? "B" : "A";
  return JSON.stringify({
    ...parsed,
    id_token: token.slice(0, at) + swapped + token.slice(at + 1),
  });
}

export async function benchSoak(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-bench-soak-"));
  const cluster = generateClusterKey("ES256");
  const server = await startKubeJoin(dir, cluster, false);
  try {
    const pid = server.process.child.pid!;
    // Capacity: distinct joins as fast as the server takes them, briefly.
    process.stderr.write("bench: soak: minting distinct JWTs and key pairs...\n");
    const probeBodies = await makeBodies(cluster, 6_000, false);
    const probe = await autocannon({
      url: `${server.url}/v1/join`,
      connections: CONNECTIONS,
      duration: 3,
      requests: [
        {
          method: "POST",
          path: "/v1/join",
          headers: { "content-type": "application/json" },
          setupRequest: (req) => ({ ...req, body: probeBodies.pop() ?? probeBodies[0]! }),
        },
      ],
    });
    const capacity = probe["2xx"] / 3;
    const rate = Math.max(10, Math.floor(capacity / 2));
    const bodies = await makeBodies(cluster, Math.ceil(rate * SOAK_SECONDS * 1.05), false);
    const refusals = bodies.map((b, i) =>
      i % 2 === 0 ? badSignature(b) : b.replace('"token":"bench-bot"', '"token":"no-such-bot"'),
    );
    process.stderr.write(`bench: soak: ${SOAK_SECONDS} s at ${rate} joins/s...\n`);
    const soak = await phase(server.url, pid, bodies, rate, SOAK_SECONDS);
    process.stderr.write(`bench: soak: ${REFUSAL_SECONDS} s of refusals at ${rate}/s...\n`);
    const refused = await phase(server.url, pid, refusals, rate, REFUSAL_SECONDS);
    const soakPlateau = plateau(soak.rss);
    const refusedPlateau = plateau(refused.rss);
    const soakErrors =
      soak.errors +
      Object.entries(soak.byStatus)
        .filter(([s]) => !s.startsWith("2"))
        .reduce((n, [, c]) => n + c, 0);
    const refusalErrors =
      refused.errors +
      Object.entries(refused.byStatus)
        .filter(([s]) => s !== "401" && s !== "403")
        .reduce((n, [, c]) => n + c, 0);
    const verdict = (p: { change: number }) =>
      Math.abs(p.change) <= 0.05 ? "plateaued" : "NOT plateaued";
    return [
      { name: "soak: capacity (3 s, distinct JWTs)", value: round(capacity, 0), unit: "joins/s" },
      {
        name: `soak: ${SOAK_SECONDS} s at half capacity, distinct JWTs: joins answered 200`,
        value: soak.ok,
        unit: `at ${rate}/s`,
      },
      {
        name: "soak:   RSS, last 10 s against the 10 s before (target within 5%)",
        value: round(soakPlateau.change * 100, 1),
        unit: `% (${verdict(soakPlateau)}: ${round(soakPlateau.before, 0)} -> ${round(soakPlateau.last, 0)} MiB; samples ${soak.rss.map((r) => round(r, 0)).join(" ")})`,
      },
      {
        name: "soak:   errors (non-2xx, resets, timeouts; target 0)",
        value: soakErrors,
        unit: "count",
      },
      {
        name: `soak: ${REFUSAL_SECONDS} s of refusals (bad signature, unknown token)`,
        value: Object.values(refused.byStatus).reduce((a, b) => a + b, 0),
        unit: `answered (${JSON.stringify(refused.byStatus)})`,
      },
      {
        name: "soak:   RSS, last 10 s against the 10 s before (target within 5%)",
        value: round(refusedPlateau.change * 100, 1),
        unit: `% (${verdict(refusedPlateau)}: ${round(refusedPlateau.before, 0)} -> ${round(refusedPlateau.last, 0)} MiB; samples ${refused.rss.map((r) => round(r, 0)).join(" ")})`,
      },
      {
        name: "soak:   errors (other than 401/403, resets, timeouts; target 0)",
        value: refusalErrors,
        unit: "count",
      },
      {
        name: "soak:   server CPU per refusal / per join",
        value: round(
          refused.cpuSeconds /
            Math.max(1, refused.ok + Object.values(refused.byStatus).reduce((a, b) => a + b, 0)) /
            (soak.cpuSeconds / Math.max(1, soak.ok)),
          2,
        ),
        unit: "x",
      },
    ];
  } finally {
    await server.process.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const JWKS_KEYS = 50;
const AMPLIFICATION_ROUNDS = 5;
const AMPLIFICATION_ROUND_SECONDS = 2;

/**
 * CPU per request of a JWT with a bad signature against a token whose JWKS holds 50 RSA keys: one
 * that names no kid (kube < 1.16; every key of its type may be tried, up to the bound) next to one
 * that names its kid (one key tried), in alternating rounds against one server.
 */
export async function benchAmplification(): Promise<BenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-bench-amp-"));
  process.stderr.write(`bench: amplification: generating ${JWKS_KEYS} RSA keys...\n`);
  const keys = Array.from({ length: JWKS_KEYS }, () => generateClusterKey("RS256"));
  const signer = keys[JWKS_KEYS - 1]!;
  const server = await startKubeJoin(dir, { ...signer, jwks: jwksOf(...keys) }, false);
  try {
    const pid = server.process.child.pid!;
    const bot = await newBotPublicKeys();
    const body = (kid: boolean): string => {
      const jwt = mintServiceAccountToken(
        signer,
        serviceAccountClaims({ audience: "bench.example.com", issuedAtMs: Date.now() }),
        kid ? {} : { kid: undefined },
      );
      // Break the signature (its last full byte), not the structure.
      const at = jwt.length - 3;
      const broken = jwt.slice(0, at) + (jwt[at] === "A" ? "B" : "A") + jwt.slice(at + 1);
      return joinRequestBody({ token: "bench-bot", role: "Bot", idToken: broken, keys: bot });
    };
    const kidless = Array.from({ length: 4000 }, () => body(false));
    const named = Array.from({ length: 4000 }, () => body(true));
    const totals = { kidless: { cpu: 0, n: 0, other: 0 }, named: { cpu: 0, n: 0, other: 0 } };
    const fireRound = async (bodies: readonly string[], total: typeof totals.named) => {
      let next = 0;
      const before = cpuSeconds(pid);
      const result = await autocannon({
        url: `${server.url}/v1/join`,
        connections: CONNECTIONS,
        duration: AMPLIFICATION_ROUND_SECONDS,
        requests: [
          {
            method: "POST",
            path: "/v1/join",
            headers: { "content-type": "application/json" },
            setupRequest: (req) => ({ ...req, body: bodies[next++ % bodies.length]! }),
          },
        ],
      });
      total.cpu += cpuSeconds(pid) - before;
      const codes = result.statusCodeStats ?? {};
      total.n += codes["401"]?.count ?? 0;
      total.other +=
        result["2xx"] +
        result.errors +
        result.timeouts +
        Object.entries(codes)
          .filter(([s]) => s !== "401")
          .reduce((n, [, c]) => n + c.count, 0);
    };
    await fireRound(kidless, { cpu: 0, n: 0, other: 0 }); // warm-up
    await fireRound(named, { cpu: 0, n: 0, other: 0 });
    for (let round = 0; round < AMPLIFICATION_ROUNDS; round++) {
      await fireRound(kidless, totals.kidless);
      await fireRound(named, totals.named);
    }
    const perRequest = (t: { cpu: number; n: number }) => (t.cpu * 1000) / Math.max(1, t.n);
    return [
      {
        name: `amplification: CPU per bad-signature JWT, no kid, ${JWKS_KEYS}-key JWKS`,
        value: round(perRequest(totals.kidless), 3),
        unit: "ms",
      },
      {
        name: `amplification:   the same JWT naming its kid`,
        value: round(perRequest(totals.named), 3),
        unit: "ms",
      },
      {
        name: "ratio: no kid / kid (target within 1.5)",
        value: round(perRequest(totals.kidless) / perRequest(totals.named)),
        unit: "x",
      },
      {
        name: "amplification:   answers other than 401 (expect 0)",
        value: totals.kidless.other + totals.named.other,
        unit: "count",
      },
    ];
  } finally {
    await server.process.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
