import { createLocalJWKSet, jwtVerify } from "jose";
import { parseJwks } from "../src/jwt/keys.ts";
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
