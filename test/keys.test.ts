import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { strict as assert } from "node:assert";
import { parseJwks, type JwksParseResult } from "../src/jwt/keys.ts";
import { generateClusterKey, jwksOf, parseJwksOrThrow } from "./support/jwt.ts";

const rsa = generateClusterKey("RS256");
const ec = generateClusterKey("ES256");
const ed = generateClusterKey("EdDSA");

function problemsOf(result: JwksParseResult): readonly string[] {
  assert.equal(result.ok, false, "the JWKS was accepted");
  return result.ok ? [] : result.problems;
}

function realJwks(file: string): string {
  return readFileSync(new URL(`../fixtures/real-world/jwks/${file}`, import.meta.url), "utf8");
}

describe("parseJwks: rejected documents name every problem", () => {
  const rsaPrivate = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({
    format: "jwk",
  });
  const smallRsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey.export({
    format: "jwk",
  });
  const cases: ReadonlyArray<{ name: string; text: string; problem: RegExp }> = [
    { name: "not JSON", text: "{keys: []}", problem: /^not valid JSON/ },
    {
      name: "a '#' comment line left in the jwks block",
      text: `# paste the output of kubectl get --raw /openid/v1/jwks here\n${rsa.jwks}`,
      problem: /line starting with '#'.*not a YAML comment/,
    },
    { name: "a JSON array", text: "[]", problem: /"keys" array/ },
    { name: "keys not an array", text: '{"keys":{}}', problem: /"keys" array/ },
    {
      name: "an empty key set",
      text: '{"keys":[]}',
      problem: /no usable asymmetric public signing key/,
    },
    {
      name: "only an encryption key",
      text: jwksOf({ ...rsa.jwk, use: "enc" }),
      problem: /no usable asymmetric public signing key/,
    },
    {
      name: "a key that is not an object",
      text: '{"keys":["x"]}',
      problem: /keys\[0\]: must be a JSON object/,
    },
    {
      name: "more keys than any cluster publishes (refused before importing any)",
      text: JSON.stringify({
        keys: Array.from({ length: 101 }, (_, i) => ({ ...ec.jwk, kid: `k${i}` })),
      }),
      problem: /holds 101 keys; at most 100 are accepted/,
    },
    {
      name: "duplicate kid",
      text: jwksOf(rsa, { ...ec.jwk, kid: rsa.kid }),
      problem: /keys\[1\]\.kid: duplicate kid .*keys\[0\]/,
    },
    {
      name: "private key material",
      text: jwksOf({ ...rsaPrivate, kid: "k", use: "sig" }),
      problem: /keys\[0\]: contains private key material \(d, p, q, dp, dq, qi\)/,
    },
    {
      name: "an oct (symmetric) key",
      text: jwksOf({ kty: "oct", kid: "hmac" }),
      problem: /keys\[0\]\.kty: symmetric keys \("oct"\) are never accepted/,
    },
    {
      name: "an oct key with its secret",
      text: jwksOf({ kty: "oct", kid: "hmac", k: "c2VjcmV0" }),
      problem: /keys\[0\]: contains private key material \(k\)/,
    },
    {
      name: "an unsupported EC curve",
      text: jwksOf({ ...ec.jwk, crv: "secp256k1" }),
      problem: /keys\[0\]\.crv: unsupported EC curve "secp256k1"/,
    },
    {
      name: "a curve named like an Object.prototype member",
      text: jwksOf({ ...ec.jwk, crv: "constructor" }),
      problem: /keys\[0\]\.crv: unsupported EC curve "constructor"/,
    },
    {
      name: "an EC point not on the curve",
      text: jwksOf({ ...ec.jwk, y: ec.jwk["x"] }),
      problem: /keys\[0\]: not a valid EC public key/,
    },
    {
      name: "an Ed448 key",
      text: jwksOf({ kty: "OKP", crv: "Ed448", x: "AA" }),
      problem: /keys\[0\]\.crv: unsupported OKP curve "Ed448"/,
    },
    {
      name: "RSA < 2048 bits",
      text: jwksOf({ ...smallRsa, kid: "small" }),
      problem: /keys\[0\]: RSA key of 1024 bits is too small \(at least 2048\)/,
    },
    {
      name: "a JWK alg that does not fit the key",
      text: jwksOf({ ...rsa.jwk, alg: "ES256" }),
      problem: /keys\[0\]\.alg: "ES256" does not fit a RSA key/,
    },
    {
      name: "an HMAC alg on an RSA key",
      text: jwksOf({ ...rsa.jwk, alg: "HS256" }),
      problem: /keys\[0\]\.alg: "HS256" does not fit/,
    },
    {
      name: "a non-string kid",
      text: jwksOf({ ...rsa.jwk, kid: 1 }),
      problem: /keys\[0\]\.kid: must be a string/,
    },
    {
      name: "an unknown kty",
      text: jwksOf({ kty: "DSA" }),
      problem: /keys\[0\]\.kty: unsupported key type "DSA"/,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const problems = problemsOf(parseJwks(c.text));
      assert.ok(
        problems.some((p) => c.problem.test(p)),
        `no problem matches ${c.problem}: ${JSON.stringify(problems)}`,
      );
    });
  }

  test("every problem is reported, not just the first", () => {
    const problems = problemsOf(
      parseJwks(
        jwksOf(
          rsa,
          { ...ec.jwk, kid: rsa.kid },
          { kty: "oct", kid: "x" },
          { ...ed.jwk, crv: "X25519" },
        ),
      ),
    );
    assert.equal(problems.length, 3, JSON.stringify(problems));
  });

  test("a real 2046-bit signing key (spire's re-signed test token) is refused as too small", () => {
    const vector = JSON.parse(
      readFileSync(
        new URL("../fixtures/real-world/spire__vault_k8s_token_resigned.json", import.meta.url),
        "utf8",
      ),
    ) as { public_key_pem: string };
    const jwk = createPublicKey(vector.public_key_pem).export({ format: "jwk" });
    assert.match(
      problemsOf(parseJwks(jwksOf({ ...jwk, kid: "spire" })))[0] ?? "",
      /2046 bits is too small/,
    );
  });
});

describe("parseJwks: accepted documents", () => {
  test("RSA, EC and Ed25519 keys import once, with their algorithms and SPKI hash", () => {
    const result = parseJwks(jwksOf(rsa, ec, ed));
    assert.ok(result.ok);
    const keySet = result.keySet;
    assert.deepEqual(
      keySet.keys.map((k) => [k.kid, k.kty, [...k.algorithms], k.spkiSha256 === k.kid]),
      [
        [rsa.kid, "RSA", ["RS256"], true],
        [ec.kid, "EC", ["ES256"], true],
        [ed.kid, "OKP", ["EdDSA"], true],
      ],
    );
    assert.equal(keySet.keys[0]?.key.type, "public");
  });

  test("an RSA JWK without alg may verify every RS and PS algorithm", () => {
    const keySet = parseJwksOrThrow(jwksOf({ ...rsa.jwk, alg: undefined }));
    assert.deepEqual([...(keySet.keys[0]?.algorithms ?? [])].sort(), [
      "PS256",
      "PS384",
      "PS512",
      "RS256",
      "RS384",
      "RS512",
    ]);
  });

  test("a JSON syntax error is located without quoting the text (no private members leak)", () => {
    const secret = "c2VjcmV0LXByaXZhdGUtZXhwb25lbnQ";
    // V8's own wording varies by version; what is reported is one of these, never the text.
    const located =
      /^not valid JSON \((syntax error at line \d+, column \d+|unexpected '.'|the text ends before the JSON does|syntax error)\)\.$/;
    for (const text of [
      `{"keys":[{"kty":"RSA","d":"${secret}" "n":"x"}]}`,
      `{"keys":[{"kty":"RSA","d":"${secret}","e":tru}]}`,
      `{"keys":[{"kty":"RSA","d":"${secret}"`,
      `{"keys":[{"kty":"RSA","d":"${secret}`,
    ]) {
      const problems = problemsOf(parseJwks(text));
      assert.equal(problems.length, 1);
      assert.match(problems[0] ?? "", located);
      assert.ok(!problems[0]?.includes(secret.slice(0, 6)), problems[0]);
    }
  });

  test("a key with use: enc is skipped with a warning, the others kept", () => {
    const result = parseJwks(jwksOf({ ...rsa.jwk, use: "enc" }, ec));
    assert.ok(result.ok);
    assert.deepEqual(
      result.keySet.keys.map((k) => k.kid),
      [ec.kid],
    );
    assert.deepEqual(result.warnings, ['keys[0]: skipped, "use" is "enc", not "sig"']);
  });

  test("candidates: by kid when named (filtered by alg), all fitting keys when kid is empty or absent", () => {
    const noKid = generateClusterKey("RS256");
    const keySet = parseJwksOrThrow(
      jwksOf(rsa, ec, { ...noKid.jwk, kid: undefined }, { ...ed.jwk, kid: "" }),
    );
    assert.deepEqual(
      keySet.candidates(rsa.kid, "RS256").map((k) => k.kid),
      [rsa.kid],
    );
    assert.deepEqual(keySet.candidates(rsa.kid, "ES256"), []);
    assert.deepEqual(keySet.candidates("unknown", "RS256"), []);
    assert.deepEqual(
      keySet.candidates("", "RS256").map((k) => k.kid),
      [rsa.kid, undefined],
    );
    assert.deepEqual(
      keySet.candidates(undefined, "EdDSA").map((k) => k.kid),
      [""],
    );
    assert.equal(keySet.hasKid(rsa.kid), true);
    assert.equal(keySet.hasKid(""), false);
    assert.equal(keySet.hasKid("__proto__"), false);
  });

  const realSets: ReadonlyArray<[string, number, boolean]> = [
    ["nats-k8s-oidc-callout__eks_eu-west-1_jwks.json", 13, false],
    ["kubernetes_kubernetes__openidmetadata_test_wantKeyset_rsa+ec.json", 2, true],
    ["BryanPersonal_devops-hackathons__openid_v1_jwks_rsa4096.json", 1, true],
    ["markszabo.github.io__minikube_openid_v1_jwks.json", 1, true],
    ["salrashid123_k8s_federation_with_gcp__minikube_openid_v1_jwks.json", 1, true],
    ["salrashid123_k8s_tokenreview__minikube_openid_v1_jwks.json", 1, true],
    ["unidentified-repo_homelab_gcp-wif__openid_v1_jwks.json", 1, true],
    ["bear-san_kubernetes-oidc-delegator__openid_v1_jwks.json", 1, true],
  ];
  for (const [file, count, kidIsSpkiHash] of realSets) {
    test(`real JWKS ${file}: ${count} key(s), kid ${kidIsSpkiHash ? "=" : "!="} SPKI hash`, () => {
      const keySet = parseJwksOrThrow(realJwks(file));
      assert.equal(keySet.keys.length, count);
      for (const k of keySet.keys) assert.equal(k.spkiSha256 === k.kid, kidIsSpkiHash);
    });
  }
});

describe("KeySet.revision", () => {
  const revision = (text: string): string => parseJwksOrThrow(text).revision;

  test("does not change with whitespace or key order", () => {
    const compact = jwksOf(rsa, ec);
    const pretty = JSON.stringify(JSON.parse(compact), null, 2);
    assert.equal(revision(pretty), revision(compact));
    assert.equal(revision(jwksOf(ec, rsa)), revision(compact));
  });

  test("changes when a key is added, removed, replaced or re-kidded, or its algorithms change", () => {
    const base = revision(jwksOf(rsa, ec));
    const other = generateClusterKey("ES256");
    for (const text of [
      jwksOf(rsa, ec, ed),
      jwksOf(rsa),
      jwksOf(rsa, other),
      jwksOf(rsa, { ...ec.jwk, kid: "rotated" }),
      jwksOf({ ...rsa.jwk, alg: undefined }, ec),
    ]) {
      assert.notEqual(revision(text), base);
    }
  });
});
