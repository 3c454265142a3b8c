/**
 * Tokens minted by real kube-apiservers (and two hand-made ones), with the keys that verify them:
 * fixtures/real-world/ (copied from ../shared/real-world-k8s/, source fields kept). Each runs at a
 * fixed clock inside its own lifetime, so the answer depends on the token alone.
 *
 * A rejection at step 4 or later proves the signature verified (step 3); each such vector is also
 * run against a decoy key published under the same kid, which must fail at step 3.
 */
import { createPublicKey } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { strict as assert } from "node:assert";
import { calculateJwkThumbprint, type JWK } from "jose";
import { JoinError, type ErrorCode } from "../src/errors.ts";
import type { JwsAlgorithm, KeySet } from "../src/jwt/keys.ts";
import type { ExpectedClaims } from "../src/jwt/verify.ts";
import { verifyServiceAccountToken } from "../src/methods/kubernetes/service-account.ts";
import { generateClusterKey, jwksOf, parseJwksOrThrow, spkiSha256 } from "./support/jwt.ts";

interface Vector {
  readonly source_repo: string;
  readonly source_path: string;
  readonly token: string;
  readonly jwks?: unknown;
  readonly public_key_pem?: string;
  readonly decoded_header: { alg: JwsAlgorithm; kid?: string };
  readonly decoded_payload: Record<string, unknown>;
}

function vector(name: string): Vector {
  const url = new URL(`../fixtures/real-world/${name}.json`, import.meta.url);
  const v = JSON.parse(readFileSync(url, "utf8")) as Vector;
  assert.ok(v.source_repo && v.source_path, `${name} keeps its source fields`);
  return v;
}

/** The key set an admin would paste: the published JWKS, or the PEM key published with `kid`. */
function keySetOf(v: Vector, kid?: string): KeySet {
  if (v.jwks !== undefined) return parseJwksOrThrow(JSON.stringify(v.jwks));
  const publicKey = createPublicKey(v.public_key_pem as string);
  return parseJwksOrThrow(
    jwksOf({
      ...publicKey.export({ format: "jwk" }),
      use: "sig",
      kid: kid ?? spkiSha256(publicKey),
    }),
  );
}

/** A different key of the same type, published under the token's own kid. */
function decoyKeySet(v: Vector): KeySet {
  const kid = v.decoded_header.kid;
  const decoy = generateClusterKey(v.decoded_header.alg, kid === undefined ? {} : { kid });
  return parseJwksOrThrow(jwksOf(kid === undefined ? { ...decoy.jwk, kid: undefined } : decoy));
}

/** One minute after `iat` (or after a fixed 2026 instant for tokens without `iat`). */
function clockFor(v: Vector): number {
  const iat = v.decoded_payload["iat"];
  return typeof iat === "number" ? (iat + 60) * 1000 : Date.UTC(2026, 0, 15);
}

function codeOf(v: Vector, keys: KeySet, expected: ExpectedClaims, nowMs = clockFor(v)): ErrorCode {
  try {
    verifyServiceAccountToken(v.token, keys, expected, nowMs);
  } catch (err) {
    assert.ok(err instanceof JoinError, String(err));
    assert.ok(!err.message.includes(v.token), "message contains the token");
    for (const part of v.token.split(".")) assert.ok(!err.message.includes(part));
    return err.code;
  }
  return "accepted" as ErrorCode;
}

describe("minikube v1.18.10, 10-minute projected token (kid = SPKI hash)", () => {
  const v = vector("vault-plugin-auth-kubernetes__projected_minikube_v1.18.10_expired");
  const keys = keySetOf(v);
  const expected = { audience: "kubernetes.default.svc" };

  test("is accepted within its lifetime as default:default, with every identity field", () => {
    assert.equal(keys.keys[0]?.kid, v.decoded_header.kid, "kid is base64url(sha256(SPKI))");
    const identity = verifyServiceAccountToken(
      v.token,
      keys,
      expected,
      Date.UTC(2020, 9, 30, 18, 45),
    );
    assert.deepEqual(identity, {
      subject: "system:serviceaccount:default:default",
      namespace: "default",
      serviceAccount: "default",
      serviceAccountUid: "77c81ad7-1bea-4d94-9ca5-f5d7f3632331",
      podName: "vault",
      podUid: "34be4d5f-66d3-4a29-beea-ce23e51f9fb8",
      nodeName: undefined,
      issuer: "kubernetes/serviceaccount",
      jti: undefined,
      issuedAt: 1604083286,
      expiresAt: 1604083886,
    });
  });

  const exp = 1604083886;
  const iat = 1604083286;
  const clocks: ReadonlyArray<[string, number, ErrorCode | "accepted"]> = [
    ["9 s after exp", exp + 9, "accepted"],
    ["11 s after exp", exp + 11, "jwt_expired"],
    ["in 2026", Date.UTC(2026, 0, 1) / 1000, "jwt_expired"],
    ["10 s before iat", iat - 10, "accepted"],
    ["11 s before iat", iat - 11, "jwt_not_yet_valid"],
  ];
  for (const [name, seconds, code] of clocks) {
    test(`${name}: ${code}`, () => {
      assert.equal(codeOf(v, keys, expected, seconds * 1000), code);
    });
  }

  test("for another cluster name: jwt_audience_mismatch", () => {
    assert.equal(codeOf(v, keys, { audience: "example.teleport.sh" }), "jwt_audience_mismatch");
  });

  test("with its claims edited (pod name) and the signature kept: jwt_signature_invalid", () => {
    const [h, p, s] = v.token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, "base64url").toString("utf8")) as {
      "kubernetes.io": { pod: { name: string } };
    };
    claims["kubernetes.io"].pod.name = "vault-2";
    const edited = Buffer.from(JSON.stringify(claims)).toString("base64url");
    assert.equal(
      codeOf({ ...v, token: `${h}.${edited}.${s}` }, keys, expected),
      "jwt_signature_invalid",
    );
  });
});

// Signature verified, then refused by a later rule: the code proves how far the token got.
const laterRejections: ReadonlyArray<{
  file: string;
  why: string;
  expected: ExpectedClaims;
  code: ErrorCode;
  keys?: () => KeySet;
}> = [
  {
    file: "vault-plugin-auth-kubernetes__projected_minikube_v1.18.10",
    why: "exp 2030, a 10-year lifetime",
    expected: { audience: "kubernetes.default.svc" },
    code: "jwt_ttl_too_long",
  },
  {
    file: "salrashid123_k8s_federation_with_gcp__minikube_projected_2021_a",
    why: "2 h projected token",
    expected: { audience: "gcp-sts-audience", issuer: "https://e782-72-83-67-174.ngrok.io" },
    code: "jwt_ttl_too_long",
  },
  {
    file: "salrashid123_k8s_federation_with_gcp__minikube_projected_2021_b",
    why: "2 h projected token",
    expected: { audience: "gcp-sts-audience" },
    code: "jwt_ttl_too_long",
  },
  {
    file: "salrashid123_k8s_tokenreview__minikube_projected_2024",
    why: "2 h projected token with node and jti",
    expected: { audience: "gcp-sts-audience", issuer: "https://some-address" },
    code: "jwt_ttl_too_long",
  },
  {
    file: "nats-k8s-oidc-callout__eks_projected_eu-west-1",
    why: "24 h EKS token, its key found among 13 by opaque kid",
    expected: { audience: "sts.amazonaws.com" },
    code: "jwt_ttl_too_long",
  },
  {
    file: "vault-plugin-auth-kubernetes__projected_minikube_v1.12.1",
    why: 'kid "" (kube < 1.16): found by trying each key; 2-year lifetime',
    expected: { audience: "kubernetes.default.svc" },
    code: "jwt_ttl_too_long",
  },
  {
    file: "vault-plugin-auth-kubernetes__projected_minikube_v1.12.1_expired",
    why: 'kid "", 2 h lifetime',
    expected: { audience: "kubernetes.default.svc" },
    code: "jwt_ttl_too_long",
  },
  {
    file: "vault-plugin-auth-kubernetes__legacy_jwtData",
    why: "legacy secret token (no kid, no aud, no exp, no pod): refused at the audience, the first rule it breaks",
    expected: { audience: "kubernetes.default.svc" },
    code: "jwt_audience_mismatch",
  },
  {
    file: "vault-plugin-auth-kubernetes__legacy_jwtBadServiceAccount",
    why: "legacy secret token",
    expected: { audience: "kubernetes.default.svc" },
    code: "jwt_audience_mismatch",
  },
  {
    file: "markszabo.github.io__minikube_legacy_with_kid",
    why: "legacy secret token with a kid, verified with the JWKS the cluster served",
    expected: { audience: "kubernetes.default.svc" },
    code: "jwt_audience_mismatch",
  },
];

describe("real tokens refused after their signature verified", () => {
  for (const c of laterRejections) {
    const v = vector(c.file);
    test(`${c.file} (${c.why}): ${c.code}`, () => {
      assert.equal(codeOf(v, keySetOf(v), c.expected), c.code);
    });
    test(`${c.file} against a decoy key under the same kid: jwt_signature_invalid`, () => {
      assert.equal(codeOf(v, decoyKeySet(v), c.expected), "jwt_signature_invalid");
    });
  }

  test("legacy tokens: the audience message says it is a legacy secret-based token", () => {
    const v = vector("vault-plugin-auth-kubernetes__legacy_jwtData");
    assert.throws(
      () =>
        verifyServiceAccountToken(
          v.token,
          keySetOf(v),
          { audience: "kubernetes.default.svc" },
          clockFor(v),
        ),
      (err: unknown) =>
        err instanceof JoinError && /carries none.*legacy secret-based token/.test(err.message),
    );
  });

  test("EKS: the token's opaque kid selects exactly one of the 13 keys", () => {
    const v = vector("nats-k8s-oidc-callout__eks_projected_eu-west-1");
    const keys = keySetOf(v);
    assert.equal(keys.keys.length, 13);
    const kid = v.decoded_header.kid as string;
    assert.match(kid, /^[0-9a-f]{40}$/);
    const candidates = keys.candidates(kid, "RS256");
    assert.equal(candidates.length, 1);
    assert.notEqual(candidates[0]?.spkiSha256, kid);
  });

  test('v1.12.1 (kid ""): found by trying each key, after a decoy that does not verify', () => {
    const v = vector("vault-plugin-auth-kubernetes__projected_minikube_v1.12.1");
    assert.equal(v.decoded_header.kid, "");
    const decoy = generateClusterKey("RS256");
    const minikube = createPublicKey(v.public_key_pem as string).export({ format: "jwk" });
    const keys = parseJwksOrThrow(
      jwksOf(decoy, { ...minikube, kid: spkiSha256(createPublicKey(v.public_key_pem as string)) }),
    );
    assert.equal(codeOf(v, keys, { audience: "kubernetes.default.svc" }), "jwt_ttl_too_long");
  });
});

describe("hand-crafted ES384 token (vault-plugin-auth-kubernetes)", () => {
  const v = vector("vault-plugin-auth-kubernetes__handcrafted_ES384");

  test("its kid is the RFC 7638 thumbprint, not kube's SPKI hash", async () => {
    const jwk = createPublicKey(v.public_key_pem as string).export({ format: "jwk" }) as JWK;
    assert.equal(await calculateJwkThumbprint(jwk, "sha256"), v.decoded_header.kid);
    assert.notEqual(spkiSha256(createPublicKey(v.public_key_pem as string)), v.decoded_header.kid);
  });

  test("published under that kid, its ES384 signature verifies; the legacy shape is refused at the audience", () => {
    const keys = keySetOf(v, v.decoded_header.kid);
    assert.equal(codeOf(v, keys, { audience: "kubernetes.default.svc" }), "jwt_audience_mismatch");
    assert.equal(
      codeOf(v, decoyKeySet(v), { audience: "kubernetes.default.svc" }),
      "jwt_signature_invalid",
    );
  });

  test("published under kube's SPKI-hash kid, the token's kid is unknown: jwt_signature_invalid", () => {
    assert.equal(
      codeOf(v, keySetOf(v), { audience: "kubernetes.default.svc" }),
      "jwt_signature_invalid",
    );
  });
});
