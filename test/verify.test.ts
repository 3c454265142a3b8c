import { createHmac } from "node:crypto";
import { describe, test } from "node:test";
import { strict as assert } from "node:assert";
import { JoinError, type ErrorCode } from "../src/errors.ts";
import { decodeJwtHeader, type ExpectedClaims } from "../src/jwt/verify.ts";
import { verifyServiceAccountToken } from "../src/methods/kubernetes/service-account.ts";
import { ALLOWED_ALGORITHMS, type JwsAlgorithm } from "../src/jwt/keys.ts";
import {
  TEST_AUDIENCE,
  TEST_ISSUER,
  TEST_NOW_MS,
  b64url,
  generateClusterKey,
  jwksOf,
  mintServiceAccountToken,
  parseJwksOrThrow,
  serviceAccountClaims,
  signCompact,
} from "./support/jwt.ts";

const NOW = Math.floor(TEST_NOW_MS / 1000);
const rsa = generateClusterKey("RS256");
const keySet = parseJwksOrThrow(rsa.jwks);
// Another key published under the same kid: what a forger would sign with.
const impostor = generateClusterKey("RS256", { kid: rsa.kid });
const expected: ExpectedClaims = { audience: TEST_AUDIENCE };

/** Runs the verifier and returns the JoinError it throws (fails the test if it returns). */
function rejection(
  jwt: string,
  options: { keys?: typeof keySet; expect?: ExpectedClaims; nowMs?: number; limit?: number } = {},
): JoinError {
  try {
    verifyServiceAccountToken(
      jwt,
      options.keys ?? keySet,
      options.expect ?? expected,
      options.nowMs ?? TEST_NOW_MS,
      options.limit === undefined ? {} : { maxKeysWithoutKid: options.limit },
    );
  } catch (err) {
    assert.ok(err instanceof JoinError, `expected a JoinError, got ${String(err)}`);
    return err;
  }
  assert.fail("the token was accepted");
}

/** No message may echo the token or any (non-trivial) part of it. */
function assertNoTokenInMessage(jwt: string, message: string): void {
  if (jwt.length >= 8) assert.ok(!message.includes(jwt), "message contains the token");
  for (const part of jwt.split(".")) {
    if (part.length >= 8) assert.ok(!message.includes(part), "message contains a token part");
  }
}

function assertRejected(
  jwt: string,
  code: ErrorCode,
  options: Parameters<typeof rejection>[1] & { message?: RegExp } = {},
): JoinError {
  const err = rejection(jwt, options);
  assert.equal(err.code, code, `code (message: ${err.message})`);
  if (options.message) assert.match(err.message, options.message);
  assertNoTokenInMessage(jwt, err.message);
  return err;
}

function claimsAt(issuedAt: number, ttlSeconds: number): Record<string, unknown> {
  return serviceAccountClaims({ issuedAtMs: issuedAt * 1000, ttlSeconds });
}

describe("verifyServiceAccountToken: Teleport's validator cases", () => {
  test("a valid projected token yields the identity", () => {
    const claims = serviceAccountClaims({ namespace: "ci", serviceAccount: "tbot-runner" });
    const identity = verifyServiceAccountToken(
      mintServiceAccountToken(rsa, claims),
      keySet,
      expected,
      TEST_NOW_MS,
    );
    const kube = claims["kubernetes.io"] as {
      pod: { name: string; uid: string };
      serviceaccount: { uid: string };
    };
    assert.deepEqual(identity, {
      subject: "system:serviceaccount:ci:tbot-runner",
      namespace: "ci",
      serviceAccount: "tbot-runner",
      serviceAccountUid: kube.serviceaccount.uid,
      podName: kube.pod.name,
      podUid: kube.pod.uid,
      nodeName: "node-1",
      issuer: TEST_ISSUER,
      jti: claims["jti"],
      issuedAt: NOW,
      expiresAt: NOW + 600,
    });
  });

  const rejections: ReadonlyArray<{
    name: string;
    jwt: () => string;
    code: ErrorCode;
    message?: RegExp;
  }> = [
    {
      name: "missing pod claim",
      jwt: () =>
        mintServiceAccountToken(rsa, {
          "kubernetes.io": { namespace: "default", serviceaccount: { name: "tbot", uid: "u" } },
        }),
      code: "jwt_not_pod_bound",
    },
    {
      name: "signed by another key under the same kid",
      jwt: () => mintServiceAccountToken(impostor),
      code: "jwt_signature_invalid",
    },
    {
      name: "wrong audience",
      jwt: () => mintServiceAccountToken(rsa, { aud: ["sts.amazonaws.com", "other"] }),
      code: "jwt_audience_mismatch",
      message: /"kube-join\.example\.com".*\["sts\.amazonaws\.com", "other"\]/,
    },
    {
      name: "no exp",
      jwt: () => mintServiceAccountToken(rsa, { exp: undefined }),
      code: "jwt_missing_claim",
      message: /\bexp\b/,
    },
    {
      name: "no iat",
      jwt: () => mintServiceAccountToken(rsa, { iat: undefined }),
      code: "jwt_missing_claim",
      message: /\biat\b/,
    },
    {
      name: "TTL of 10 h",
      jwt: () => mintServiceAccountToken(rsa, claimsAt(NOW, 10 * 3600)),
      code: "jwt_ttl_too_long",
      message: /10 h/,
    },
    {
      name: "expired",
      jwt: () => mintServiceAccountToken(rsa, claimsAt(NOW - 900, 600)),
      code: "jwt_expired",
    },
    {
      name: "not yet valid (iat and nbf in the future)",
      jwt: () => mintServiceAccountToken(rsa, claimsAt(NOW + 300, 600)),
      code: "jwt_not_yet_valid",
    },
  ];
  for (const c of rejections) {
    test(`rejects: ${c.name} -> ${c.code}`, () => {
      assertRejected(c.jwt(), c.code, c.message ? { message: c.message } : {});
    });
  }
});

describe("verifyServiceAccountToken: edges", () => {
  const cases: ReadonlyArray<{ name: string; claims: Record<string, unknown>; code?: ErrorCode }> =
    [
      { name: "exp 9 s ago passes", claims: claimsAt(NOW - 609, 600) },
      { name: "exp 10 s ago fails", claims: claimsAt(NOW - 610, 600), code: "jwt_expired" },
      { name: "exp 11 s ago fails", claims: claimsAt(NOW - 611, 600), code: "jwt_expired" },
      { name: "iat 10 s ahead passes", claims: claimsAt(NOW + 10, 600) },
      { name: "iat 11 s ahead fails", claims: claimsAt(NOW + 11, 600), code: "jwt_not_yet_valid" },
      {
        name: "nbf alone 11 s ahead fails",
        claims: { ...claimsAt(NOW, 600), nbf: NOW + 11 },
        code: "jwt_not_yet_valid",
      },
      { name: "nbf absent passes", claims: { nbf: undefined } },
      { name: "TTL of exactly 30 min passes", claims: claimsAt(NOW, 1800) },
      {
        name: "TTL of 30 min + 1 s fails",
        claims: claimsAt(NOW, 1801),
        code: "jwt_ttl_too_long",
      },
      {
        name: "audience list with extra entries passes",
        claims: { aud: ["https://kubernetes.default.svc", TEST_AUDIENCE, "vault"] },
      },
      { name: "audience as a plain string passes", claims: { aud: TEST_AUDIENCE } },
      { name: "empty audience list fails", claims: { aud: [] }, code: "jwt_audience_mismatch" },
      {
        name: "audience differing in case fails",
        claims: { aud: [TEST_AUDIENCE.toUpperCase()] },
        code: "jwt_audience_mismatch",
      },
      {
        name: "audience as a non-string fails",
        claims: { aud: { 0: TEST_AUDIENCE } },
        code: "jwt_audience_mismatch",
      },
    ];
  for (const c of cases) {
    test(c.name, () => {
      const jwt = mintServiceAccountToken(rsa, c.claims);
      if (c.code === undefined) {
        assert.equal(
          verifyServiceAccountToken(jwt, keySet, expected, TEST_NOW_MS).serviceAccount,
          "tbot",
        );
      } else {
        assertRejected(jwt, c.code);
      }
    });
  }
});

describe("verifyServiceAccountToken: algorithms and keys", () => {
  const algorithms: readonly JwsAlgorithm[] = [
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
  ];
  test("the allowed list is exactly these ten (no none, no HS*)", () => {
    assert.deepEqual([...ALLOWED_ALGORITHMS], algorithms);
  });
  // One RSA key serves all RS and PS algorithms when its JWK does not pin `alg`.
  const rsaAny = generateClusterKey("RS256", { omitJwkAlg: true });
  for (const alg of algorithms) {
    test(`${alg} verifies`, () => {
      const key =
        alg.startsWith("RS") || alg.startsWith("PS") ? { ...rsaAny, alg } : generateClusterKey(alg);
      const identity = verifyServiceAccountToken(
        mintServiceAccountToken(key),
        parseJwksOrThrow(key.jwks),
        expected,
        TEST_NOW_MS,
      );
      assert.equal(identity.namespace, "default");
    });
  }

  const ec256 = generateClusterKey("ES256");
  const ed = generateClusterKey("EdDSA");
  const mixed = parseJwksOrThrow(jwksOf(ec256, ed, rsa));
  const noEd = parseJwksOrThrow(jwksOf(ec256, rsa));
  const second = generateClusterKey("RS256");
  const cases: ReadonlyArray<{
    name: string;
    jwt: () => string;
    code: ErrorCode;
    keys?: typeof mixed;
  }> = [
    {
      name: "ES256 header on an RSA key",
      jwt: () => mintServiceAccountToken(rsa, {}, { alg: "ES256" }),
      code: "jwt_algorithm_not_allowed",
    },
    {
      name: "ES384 header on a P-256 key",
      jwt: () => mintServiceAccountToken(ec256, {}, { alg: "ES384" }),
      code: "jwt_algorithm_not_allowed",
    },
    {
      name: "PS256 header on a key whose JWK pins RS256",
      jwt: () => mintServiceAccountToken(rsa, {}, { alg: "PS256" }),
      code: "jwt_algorithm_not_allowed",
    },
    {
      name: "EdDSA header, no kid, and no Ed25519 key in the set",
      jwt: () => mintServiceAccountToken(ed, {}, { kid: undefined }),
      code: "jwt_algorithm_not_allowed",
      keys: noEd,
    },
    {
      name: "a kid no trusted key has",
      jwt: () => mintServiceAccountToken(rsa, {}, { kid: "rotated-away" }),
      code: "jwt_signature_invalid",
    },
    {
      name: "empty kid, and no key verifies",
      jwt: () => mintServiceAccountToken(impostor, {}, { kid: "" }),
      code: "jwt_signature_invalid",
    },
    {
      name: "a valid signature for a different header (kid swapped after signing)",
      jwt: () => {
        const [, payload, signature] = mintServiceAccountToken(ec256).split(".");
        return `${b64url(JSON.stringify({ alg: "ES256", kid: ec256.kid, typ: "JWT" }))}.${payload}.${signature}`;
      },
      code: "jwt_signature_invalid",
    },
    {
      name: "an ES256 signature of the wrong length",
      jwt: () =>
        `${mintServiceAccountToken(ec256).split(".").slice(0, 2).join(".")}.${b64url("short")}`,
      code: "jwt_signature_invalid",
    },
    {
      name: "an RS256 token with an empty signature part",
      jwt: () => `${mintServiceAccountToken(rsa).split(".").slice(0, 2).join(".")}.`,
      code: "jwt_signature_invalid",
    },
  ];
  for (const c of cases) {
    test(`${c.name} -> ${c.code}`, () => {
      assertRejected(c.jwt(), c.code, { keys: c.keys ?? mixed });
    });
  }

  test("kid empty or absent: every key of the right type is tried", () => {
    const twoRsa = parseJwksOrThrow(jwksOf(rsa, ec256, second));
    for (const kid of ["", undefined]) {
      const identity = verifyServiceAccountToken(
        mintServiceAccountToken(second, {}, { kid }),
        twoRsa,
        expected,
        TEST_NOW_MS,
      );
      assert.equal(identity.serviceAccount, "tbot");
    }
  });

  test("kid absent: at most max_keys_without_kid keys are tried (default 4), in JWKS order", () => {
    const keys = Array.from({ length: 6 }, () => generateClusterKey("ES256"));
    const six = parseJwksOrThrow(jwksOf(...keys));
    const withoutKid = (key: (typeof keys)[number]) =>
      mintServiceAccountToken(key, {}, { kid: undefined });
    // Signed by the third key: within the four tried.
    assert.equal(
      verifyServiceAccountToken(withoutKid(keys[2]!), six, expected, TEST_NOW_MS).serviceAccount,
      "tbot",
    );
    // Signed by the sixth: past the bound, refused with a message that says why.
    const err = assertRejected(withoutKid(keys[5]!), "jwt_signature_invalid", { keys: six });
    assert.match(
      err.message,
      /names no key id \(kid\) and the JWKS has 6 ES256 keys, more than the 4 tried for a token without one/,
    );
    // The same token naming its kid costs one check and verifies; a raised bound lets it through.
    assert.equal(
      verifyServiceAccountToken(mintServiceAccountToken(keys[5]!), six, expected, TEST_NOW_MS)
        .serviceAccount,
      "tbot",
    );
    assert.equal(
      verifyServiceAccountToken(withoutKid(keys[5]!), six, expected, TEST_NOW_MS, {
        maxKeysWithoutKid: 6,
      }).serviceAccount,
      "tbot",
    );
    assert.match(
      assertRejected(withoutKid(keys[5]!), "jwt_signature_invalid", { keys: six, limit: 1 })
        .message,
      /more than the 1 tried/,
    );
  });

  test("a named kid never falls back to trying other keys", () => {
    const both = parseJwksOrThrow(jwksOf(rsa, second));
    // Signed by `second`, but naming rsa's kid: only rsa's key is tried.
    assertRejected(mintServiceAccountToken(second, {}, { kid: rsa.kid }), "jwt_signature_invalid", {
      keys: both,
    });
  });
});

describe("verifyServiceAccountToken: issuer, subject and claim consistency", () => {
  const base = serviceAccountClaims();
  const kube = base["kubernetes.io"] as Record<string, unknown>;
  const cases: ReadonlyArray<{
    name: string;
    claims: Record<string, unknown>;
    expect?: ExpectedClaims;
    code?: ErrorCode;
  }> = [
    {
      name: "issuer set and equal passes",
      claims: {},
      expect: { ...expected, issuer: TEST_ISSUER },
    },
    {
      name: "issuer set and different",
      claims: { iss: `${TEST_ISSUER}/` },
      expect: { ...expected, issuer: TEST_ISSUER },
      code: "jwt_issuer_mismatch",
    },
    {
      name: "issuer set and iss missing",
      claims: { iss: undefined },
      expect: { ...expected, issuer: TEST_ISSUER },
      code: "jwt_issuer_mismatch",
    },
    {
      name: "audience is checked before the issuer",
      claims: { aud: ["x"], iss: "y" },
      expect: { ...expected, issuer: TEST_ISSUER },
      code: "jwt_audience_mismatch",
    },
    { name: "sub missing", claims: { sub: undefined }, code: "jwt_not_service_account" },
    { name: "sub of a user", claims: { sub: "admin" }, code: "jwt_not_service_account" },
    {
      name: "sub without a name",
      claims: { sub: "system:serviceaccount:default" },
      code: "jwt_not_service_account",
    },
    {
      name: "sub with an extra part",
      claims: { sub: "system:serviceaccount:default:tbot:x" },
      code: "jwt_not_service_account",
    },
    {
      name: "sub with an empty namespace",
      claims: { sub: "system:serviceaccount::tbot" },
      code: "jwt_not_service_account",
    },
    {
      name: "sub with an invalid Kubernetes name",
      claims: {
        sub: "system:serviceaccount:Default:tbot",
        "kubernetes.io": { ...kube, namespace: "Default" },
      },
      code: "jwt_not_service_account",
    },
    ...["a..b", "a.-b", "a-.b"].map((name) => ({
      name: `service account name ${JSON.stringify(name)} is not a DNS subdomain`,
      claims: {
        sub: `system:serviceaccount:default:${name}`,
        "kubernetes.io": { ...kube, serviceaccount: { name, uid: "u" } },
      },
      code: "jwt_not_service_account" as const,
    })),
    {
      name: "kubernetes.io.namespace disagrees",
      claims: { "kubernetes.io": { ...kube, namespace: "kube-system" } },
      code: "jwt_claims_inconsistent",
    },
    {
      name: "kubernetes.io.serviceaccount.name disagrees",
      claims: { "kubernetes.io": { ...kube, serviceaccount: { name: "tbot2", uid: "u" } } },
      code: "jwt_claims_inconsistent",
    },
    {
      name: "kubernetes.io.serviceaccount missing",
      claims: { "kubernetes.io": { ...kube, serviceaccount: undefined } },
      code: "jwt_claims_inconsistent",
    },
    {
      name: "pod name empty",
      claims: { "kubernetes.io": { ...kube, pod: { name: "", uid: "u" } } },
      code: "jwt_not_pod_bound",
    },
    {
      name: "pod name not a Kubernetes name",
      claims: { "kubernetes.io": { ...kube, pod: { name: "pod\nforged: yes" } } },
      code: "jwt_not_pod_bound",
    },
    {
      name: "pod name with an empty label (p-.x)",
      claims: { "kubernetes.io": { ...kube, pod: { name: "p-.x", uid: "u" } } },
      code: "jwt_not_pod_bound",
    },
    {
      name: "kubernetes.io not an object",
      claims: { "kubernetes.io": "default/tbot" },
      code: "jwt_not_pod_bound",
    },
  ];
  for (const c of cases) {
    test(`${c.name}${c.code ? ` -> ${c.code}` : ""}`, () => {
      const jwt = mintServiceAccountToken(rsa, c.claims);
      const expect = c.expect ?? expected;
      if (c.code === undefined) {
        assert.equal(
          verifyServiceAccountToken(jwt, keySet, expect, TEST_NOW_MS).namespace,
          "default",
        );
      } else {
        assertRejected(jwt, c.code, { expect });
      }
    });
  }
});

describe("verifyServiceAccountToken: checks run in the documented order", () => {
  const noPod = { "kubernetes.io": { namespace: "default" } };
  const cases: ReadonlyArray<{ name: string; jwt: () => string; code: ErrorCode }> = [
    {
      name: "forged + wrong audience: the signature comes first",
      jwt: () => mintServiceAccountToken(impostor, { aud: ["x"] }),
      code: "jwt_signature_invalid",
    },
    {
      name: "wrong audience + expired: the audience comes first",
      jwt: () => mintServiceAccountToken(rsa, { ...claimsAt(NOW - 3600, 600), aud: ["x"] }),
      code: "jwt_audience_mismatch",
    },
    {
      name: "expired + no pod + TTL 10 h",
      jwt: () => mintServiceAccountToken(rsa, { ...claimsAt(NOW - 11 * 3600, 36000), ...noPod }),
      code: "jwt_expired",
    },
    {
      name: "no exp + no pod",
      jwt: () => mintServiceAccountToken(rsa, { exp: undefined, ...noPod }),
      code: "jwt_missing_claim",
    },
    {
      name: "iat in the future + no exp",
      jwt: () => mintServiceAccountToken(rsa, { iat: NOW + 60, exp: undefined }),
      code: "jwt_not_yet_valid",
    },
    {
      name: "no pod + TTL 10 h",
      jwt: () => mintServiceAccountToken(rsa, { ...claimsAt(NOW, 36000), ...noPod }),
      code: "jwt_not_pod_bound",
    },
    {
      name: "TTL 10 h + not a service account",
      jwt: () => mintServiceAccountToken(rsa, { ...claimsAt(NOW, 36000), sub: "admin" }),
      code: "jwt_ttl_too_long",
    },
  ];
  for (const c of cases) {
    test(`${c.name} -> ${c.code}`, () => {
      assertRejected(c.jwt(), c.code);
    });
  }
});

describe("verifyServiceAccountToken: hostile input", () => {
  const header = b64url(JSON.stringify({ alg: "RS256", kid: rsa.kid }));
  const valid = mintServiceAccountToken(rsa);
  const [, validPayload, validSignature] = valid.split(".") as [string, string, string];
  const claimsJson = JSON.stringify(serviceAccountClaims());
  const hmac = (secret: string | Buffer, alg = "HS256"): string => {
    const input = `${b64url(JSON.stringify({ alg, kid: rsa.kid }))}.${validPayload}`;
    return `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`;
  };
  const signedClaims = (json: string): string =>
    signCompact(rsa, JSON.stringify({ alg: "RS256", kid: rsa.kid }), json);
  const withClaim = (raw: string): string => signedClaims(`${claimsJson.slice(0, -1)},${raw}}`);
  const sized = (length: number): string => {
    // A token of exactly `length` characters: a filler claim plus (for lengths base64url cannot
    // reach with the payload alone) a filler header member.
    for (let h = 0; h < 4; h++) {
      const headerJson = JSON.stringify({ alg: "RS256", kid: rsa.kid, x: "h".repeat(h) });
      const bare = signCompact(rsa, headerJson, claimsJson).length;
      for (let n = Math.max(0, Math.floor(((length - bare) * 3) / 4) - 20); n < length; n++) {
        const jwt = signCompact(
          rsa,
          headerJson,
          `${claimsJson.slice(0, -1)},"pad":"${"p".repeat(n)}"}`,
        );
        if (jwt.length === length) return jwt;
        if (jwt.length > length) break;
      }
    }
    throw new Error(`cannot build a token of ${length} characters`);
  };

  const cases: ReadonlyArray<{ name: string; jwt: () => string; code: ErrorCode }> = [
    { name: "empty string", jwt: () => "", code: "jwt_malformed" },
    { name: "'..'", jwt: () => "..", code: "jwt_malformed" },
    { name: "two parts", jwt: () => `${header}.${validPayload}`, code: "jwt_malformed" },
    { name: "four parts", jwt: () => `${valid}.${validSignature}`, code: "jwt_malformed" },
    { name: "JWE-shaped (five parts)", jwt: () => `${header}....`, code: "jwt_malformed" },
    {
      name: "non-base64 header",
      jwt: () => `${header}!.${validPayload}.${validSignature}`,
      code: "jwt_malformed",
    },
    {
      name: "standard base64 (+ and /) in the signature",
      jwt: () =>
        `${header}.${validPayload}.${validSignature.replace(/-/g, "+").replace(/_/g, "/")}+/`,
      code: "jwt_malformed",
    },
    {
      name: "'=' padding",
      jwt: () => `${header}.${validPayload}.${validSignature}==`,
      code: "jwt_malformed",
    },
    {
      name: "non-canonical base64url (stray bits in the last character)",
      jwt: () => `${b64url('{"alg":"RS256"}').slice(0, -1)}v.${validPayload}.${validSignature}`,
      code: "jwt_malformed",
    },
    { name: "whitespace around the token", jwt: () => ` ${valid}\n`, code: "jwt_malformed" },
    {
      name: "header not JSON",
      jwt: () => `${b64url("not json")}.${validPayload}.${validSignature}`,
      code: "jwt_malformed",
    },
    {
      name: "header a JSON array",
      jwt: () => `${b64url('["RS256"]')}.${validPayload}.${validSignature}`,
      code: "jwt_malformed",
    },
    {
      name: "header JSON null",
      jwt: () => `${b64url("null")}.${validPayload}.${validSignature}`,
      code: "jwt_malformed",
    },
    {
      name: "header invalid UTF-8",
      jwt: () => `${b64url(Buffer.from([0x7b, 0xff, 0x7d]))}.${validPayload}.${validSignature}`,
      code: "jwt_malformed",
    },
    {
      name: "header without alg",
      jwt: () => `${b64url(JSON.stringify({ kid: rsa.kid }))}.${validPayload}.${validSignature}`,
      code: "jwt_malformed",
    },
    {
      name: "alg not a string",
      jwt: () => `${b64url('{"alg":["RS256"]}')}.${validPayload}.${validSignature}`,
      code: "jwt_malformed",
    },
    {
      name: "kid not a string",
      jwt: () => `${b64url('{"alg":"RS256","kid":7}')}.${validPayload}.${validSignature}`,
      code: "jwt_malformed",
    },
    {
      name: "crit header",
      jwt: () =>
        signCompact(
          rsa,
          JSON.stringify({ alg: "RS256", kid: rsa.kid, crit: ["exp"], exp: 1 }),
          claimsJson,
        ),
      code: "jwt_malformed",
    },
    {
      name: "claims not JSON (signed)",
      jwt: () => signedClaims("{not json"),
      code: "jwt_malformed",
    },
    {
      name: "claims a JSON array (signed)",
      jwt: () => signedClaims("[1,2]"),
      code: "jwt_malformed",
    },
    {
      name: "claims a JSON string (signed)",
      jwt: () => signedClaims('"x"'),
      code: "jwt_malformed",
    },
    {
      name: "alg none, empty signature",
      jwt: () => `${b64url('{"alg":"none"}')}.${validPayload}.`,
      code: "jwt_algorithm_not_allowed",
    },
    {
      name: "alg none, with a signature",
      jwt: () => `${b64url('{"alg":"none"}')}.${validPayload}.${validSignature}`,
      code: "jwt_algorithm_not_allowed",
    },
    {
      name: "alg None",
      jwt: () => `${b64url('{"alg":"None"}')}.${validPayload}.`,
      code: "jwt_algorithm_not_allowed",
    },
    {
      name: "alg rs256 (wrong case)",
      jwt: () => `${b64url('{"alg":"rs256"}')}.${validPayload}.${validSignature}`,
      code: "jwt_algorithm_not_allowed",
    },
    {
      name: "HS256 keyed with the public key PEM",
      jwt: () => hmac(rsa.publicKey.export({ type: "spki", format: "pem" })),
      code: "jwt_algorithm_not_allowed",
    },
    {
      name: "HS256 keyed with the public key DER",
      jwt: () => hmac(rsa.publicKey.export({ type: "spki", format: "der" })),
      code: "jwt_algorithm_not_allowed",
    },
    {
      name: "HS256 keyed with the JWKS text",
      jwt: () => hmac(rsa.jwks),
      code: "jwt_algorithm_not_allowed",
    },
    {
      name: "HMAC signature under an RS256 header",
      jwt: () => hmac(rsa.jwks, "RS256"),
      code: "jwt_signature_invalid",
    },
    {
      name: "exp as a string",
      jwt: () => mintServiceAccountToken(rsa, { exp: String(NOW + 600) }),
      code: "jwt_missing_claim",
    },
    {
      name: "iat as a string",
      jwt: () => mintServiceAccountToken(rsa, { iat: String(NOW) }),
      code: "jwt_missing_claim",
    },
    {
      name: "exp null",
      jwt: () => mintServiceAccountToken(rsa, { exp: null }),
      code: "jwt_missing_claim",
    },
    {
      name: "exp Infinity (1e999)",
      jwt: () => withClaim('"exp":1e999'),
      code: "jwt_missing_claim",
    },
    {
      name: "iat -Infinity (-1e999)",
      jwt: () => withClaim('"iat":-1e999'),
      code: "jwt_missing_claim",
    },
    {
      name: "nbf as a string",
      jwt: () => mintServiceAccountToken(rsa, { nbf: "now" }),
      code: "jwt_missing_claim",
    },
    {
      name: "a 1 MiB token",
      jwt: () => `${header}.${"A".repeat(1024 * 1024)}.${validSignature}`,
      code: "jwt_malformed",
    },
    { name: "a token of 16 KiB + 1", jwt: () => sized(16 * 1024 + 1), code: "jwt_malformed" },
    {
      name: "pod name only under __proto__ of kubernetes.io",
      jwt: () =>
        withClaim(
          '"kubernetes.io":{"namespace":"default","__proto__":{"pod":{"name":"p"}},"serviceaccount":{"name":"tbot"}}',
        ),
      code: "jwt_not_pod_bound",
    },
  ];
  for (const c of cases) {
    test(`${c.name} -> ${c.code}`, () => {
      assertRejected(c.jwt(), c.code);
    });
  }

  test("a token of exactly 16 KiB is still verified", () => {
    const jwt = sized(16 * 1024);
    assert.equal(jwt.length, 16384);
    assert.equal(
      verifyServiceAccountToken(jwt, keySet, expected, TEST_NOW_MS).namespace,
      "default",
    );
  });

  test("__proto__ and constructor claims and header members pollute nothing", () => {
    const jwt = signCompact(
      rsa,
      `{"alg":"RS256","kid":${JSON.stringify(rsa.kid)},"__proto__":{"kid":"x","crit":["b64"]}}`,
      `${claimsJson.slice(0, -1)},"__proto__":{"polluted":true,"exp":1},"constructor":{"prototype":{"polluted":true}}}`,
    );
    const identity = verifyServiceAccountToken(jwt, keySet, expected, TEST_NOW_MS);
    assert.equal(identity.serviceAccount, "tbot");
    assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
    assert.equal(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted"), false);
  });

  test("duplicate claim names: the last one wins, as in JSON.parse (and in kube's Go decoder)", () => {
    const jwt = withClaim(`"exp":${NOW - 3600}`);
    assertRejected(jwt, "jwt_expired");
  });
});

describe("decodeJwtHeader", () => {
  test("returns alg and kid without verifying", () => {
    assert.deepEqual(decodeJwtHeader(mintServiceAccountToken(impostor)), {
      alg: "RS256",
      kid: rsa.kid,
    });
    assert.deepEqual(decodeJwtHeader(mintServiceAccountToken(rsa, {}, { kid: undefined })), {
      alg: "RS256",
      kid: undefined,
    });
    // Not its job to judge the algorithm.
    assert.equal(decodeJwtHeader(`${b64url('{"alg":"none"}')}.${b64url("{}")}.`).alg, "none");
  });

  for (const [name, jwt] of [
    ["empty", ""],
    ["two parts", `${b64url('{"alg":"RS256"}')}.x`],
    ["header not JSON", `${b64url("nope")}.${b64url("{}")}.`],
    ["crit", `${b64url('{"alg":"RS256","crit":["x"]}')}.${b64url("{}")}.`],
    ["payload not base64url", `${b64url('{"alg":"RS256"}')}.a=b.`],
    ["too large", `${b64url('{"alg":"RS256"}')}.${"A".repeat(20000)}.`],
  ] as const) {
    test(`throws jwt_malformed: ${name}`, () => {
      assert.throws(
        () => decodeJwtHeader(jwt),
        (err: unknown) => err instanceof JoinError && err.code === "jwt_malformed",
      );
    });
  }
});

describe("verifyServiceAccountToken: programmer errors", () => {
  test("an empty expected audience is a TypeError, never a match for aud ['']", () => {
    const jwt = mintServiceAccountToken(rsa, { aud: [""] });
    assert.throws(
      () => verifyServiceAccountToken(jwt, keySet, { audience: "" }, TEST_NOW_MS),
      TypeError,
    );
  });

  test("a non-finite clock is a TypeError", () => {
    const jwt = mintServiceAccountToken(rsa);
    assert.throws(() => verifyServiceAccountToken(jwt, keySet, expected, Number.NaN), TypeError);
  });
});
