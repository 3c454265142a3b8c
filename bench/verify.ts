import { createLocalJWKSet, jwtVerify } from "jose";
import { parseJwks } from "../src/jwt/keys.ts";
import type { AuthenticateContext, VerifiedProof } from "../src/methods/join-method.ts";
import { KubernetesJoin } from "../src/methods/kubernetes/method.ts";
import { verifyServiceAccountToken } from "../src/methods/kubernetes/service-account.ts";
import { VerifiedTokenCache } from "../src/methods/verified-token-cache.ts";
import {
  generateClusterKey,
  mintServiceAccountToken,
  parseJwksOrThrow,
  serviceAccountClaims,
} from "../test/support/jwt.ts";
import { measureInterleaved, round, type BenchRow } from "./measure.ts";

const AUDIENCE = "bench.example.com";

/**
 * Verification per call, the three paths side by side: naive (parse and import the JWKS on every
 * call, as Teleport's static_jwks validator does), keys imported once at load, and the
 * verified-token cache hit the join pipeline takes for a JWT it has seen. jose's `jwtVerify` with a
 * local JWKS is printed for reference.
 */
export async function benchVerification(): Promise<{ rows: BenchRow[]; sampleJwt: string }> {
  const key = generateClusterKey("RS256");
  const keySet = parseJwksOrThrow(key.jwks);
  const now = Date.now();
  const jwt = mintServiceAccountToken(
    key,
    serviceAccountClaims({ audience: AUDIENCE, issuedAtMs: now }),
  );
  const cache = new VerifiedTokenCache({ maxEntries: 100_000, now: () => Date.now() });
  cache.set(
    VerifiedTokenCache.keyOf(jwt, keySet.revision, AUDIENCE, undefined),
    verifyServiceAccountToken(jwt, keySet, { audience: AUDIENCE }, now),
  );

  const naive = () => {
    const parsed = parseJwks(key.jwks);
    if (!parsed.ok) throw new Error("bench JWKS did not parse");
    verifyServiceAccountToken(jwt, parsed.keySet, { audience: AUDIENCE }, Date.now());
  };
  const keysCached = () =>
    verifyServiceAccountToken(jwt, keySet, { audience: AUDIENCE }, Date.now());
  const cacheHit = () => {
    const hit = cache.get(VerifiedTokenCache.keyOf(jwt, keySet.revision, AUDIENCE, undefined));
    if (hit === undefined) throw new Error("bench cache missed");
  };
  const us = measureInterleaved({ naive, keysCached, cacheHit });

  // The join path's own step: the kubernetes method's authenticate (cache lookup or verification,
  // allow rules, the attributes rendered once), asynchronous, so measured in interleaved async
  // rounds beside the bare cache lookup and the bare verification.
  const join = new KubernetesJoin({
    type: "static_jwks",
    keySet,
    allow: [
      { kind: "glob", namespaceGlob: "team-*", nameGlob: "*" },
      { kind: "exact", namespace: "default", name: "tbot" },
    ],
  });
  const methodCache = new VerifiedTokenCache<VerifiedProof>({
    maxEntries: 100_000,
    now: () => Date.now(),
  });
  const context = (cached: boolean): AuthenticateContext => ({
    audience: AUDIENCE,
    nowMs: Date.now(),
    cache: cached ? methodCache : undefined,
    oidcKeys: undefined,
    onInternalError: undefined,
  });
  const trace = () => ({ cache: undefined, attributes: undefined });
  await join.authenticate(jwt, context(true), trace()); // fills the method's cache
  const methodUs = await measureInterleavedAsync({
    methodHit: () => join.authenticate(jwt, context(true), trace()),
    methodNoCache: () => join.authenticate(jwt, context(false), trace()),
    bareHit: async () => {
      cacheHit();
    },
    bareVerify: async () => {
      keysCached();
    },
  });

  // jose is asynchronous: measured on its own, right after, for scale only.
  const joseKeys = createLocalJWKSet(JSON.parse(key.jwks));
  const joseRuns = 2000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < joseRuns; i++) await jwtVerify(jwt, joseKeys, { audience: AUDIENCE });
  const joseUs = Number(process.hrtime.bigint() - start) / 1000 / joseRuns;

  return {
    sampleJwt: jwt,
    rows: [
      {
        name: "verify: naive (JWKS parsed + imported per call)",
        value: round(us["naive"]!),
        unit: "us/op",
      },
      {
        name: "verify: keys cached (imported once)",
        value: round(us["keysCached"]!),
        unit: "us/op",
      },
      { name: "verify: verified-token cache hit", value: round(us["cacheHit"]!, 3), unit: "us/op" },
      {
        name: "verify: jose jwtVerify, local JWKS (reference)",
        value: round(joseUs),
        unit: "us/op",
      },
      {
        name: "verify: kubernetes method authenticate, cache hit (lookup + rules + attributes)",
        value: round(methodUs["methodHit"]!, 3),
        unit: "us/op",
      },
      {
        name: "verify: kubernetes method authenticate, no cache (verify + rules + render)",
        value: round(methodUs["methodNoCache"]!),
        unit: "us/op",
      },
      {
        name: "ratio: method hit / bare cache hit, both awaited (the method's overhead)",
        value: round(methodUs["methodHit"]! / methodUs["bareHit"]!, 2),
        unit: "x",
      },
      {
        name: "ratio: method no cache / bare verification, both awaited",
        value: round(methodUs["methodNoCache"]! / methodUs["bareVerify"]!, 2),
        unit: "x",
      },
      {
        name: "ratio: naive / keys cached",
        value: round(us["naive"]! / us["keysCached"]!),
        unit: "x",
      },
      {
        name: "ratio: keys cached / cache hit (target >= 20)",
        value: round(us["keysCached"]! / us["cacheHit"]!, 1),
        unit: "x",
      },
    ],
  };
}

/**
 * `measureInterleaved` for asynchronous operations: rounds of about `sliceMs` per operation, each
 * call awaited, until each has run about `ms` in all. Microseconds per call by name.
 */
async function measureInterleavedAsync(
  fns: Readonly<Record<string, () => Promise<unknown>>>,
  ms = 1000,
  sliceMs = 5,
): Promise<Record<string, number>> {
  const entries = Object.entries(fns);
  for (const [, fn] of entries) for (let i = 0; i < 2000; i++) await fn(); // warm-up
  const spent = entries.map(() => 0);
  const calls = entries.map(() => 0);
  while (spent.some((t) => t < ms)) {
    for (const [i, [, fn]] of entries.entries()) {
      const start = performance.now();
      let n = 0;
      while (performance.now() - start < sliceMs) {
        for (let j = 0; j < 64; j++) await fn();
        n += 64;
      }
      spent[i]! += performance.now() - start;
      calls[i]! += n;
    }
  }
  return Object.fromEntries(entries.map(([name], i) => [name, (spent[i]! * 1000) / calls[i]!]));
}
