import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ConfigError, JoinError } from "../src/errors.ts";
import { OidcKeySource, type OidcKeySourceOptions } from "../src/jwt/oidc.ts";
import { trustedCas } from "../src/jwt/oidc-fetch.ts";
import { verifyServiceAccountToken } from "../src/methods/kubernetes/service-account.ts";
import {
  createTestCa,
  HttpsIssuer,
  REDIRECT_BODY_CAP,
  type EndpointBehaviour,
  type TestCa,
} from "./support/https-issuer.ts";
import {
  generateClusterKey,
  mintServiceAccountToken,
  serviceAccountClaims,
  TEST_AUDIENCE,
  TEST_NOW_MS,
  type ClusterKey,
} from "./support/jwt.ts";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const COOLDOWN = 30 * SECOND;

let dir: string;
let ca: TestCa;
let caFile: string;
let key1: ClusterKey;
let key2: ClusterKey;
const issuers: HttpsIssuer[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "kube-join-oidc-"));
  ca = await createTestCa();
  caFile = join(dir, "issuer-ca.pem");
  writeFileSync(caFile, ca.certPem);
  key1 = generateClusterKey("ES256", { kid: "key-1" });
  key2 = generateClusterKey("RS256", { kid: "key-2" });
});

after(async () => {
  await Promise.all(issuers.map((i) => i.stop()));
  rmSync(dir, { recursive: true, force: true });
});

/** A started issuer serving `keys`, stopped after the file. */
async function startIssuer(
  keys: ClusterKey[],
  options: { path?: string; ca?: TestCa; plainHttp?: boolean } = {},
): Promise<HttpsIssuer> {
  const issuer = await HttpsIssuer.start({ ca, ...options });
  issuer.jwks = keys.map((k) => k.jwk);
  issuers.push(issuer);
  return issuer;
}

interface Fetch {
  readonly issuer: string;
  readonly ok: boolean;
  readonly error: string | undefined;
}

/** A key source trusting the test CA, on a clock the test moves, recording every fetch. */
function keySource(options: OidcKeySourceOptions = {}) {
  let clock = TEST_NOW_MS;
  const fetches: Fetch[] = [];
  const source = new OidcKeySource({
    extraCaFile: caFile,
    now: () => clock,
    onFetch: (issuer, ok, error) => fetches.push({ issuer, ok, error }),
    ...options,
  });
  return {
    source,
    fetches,
    now: () => clock,
    advance: (ms: number) => {
      clock += ms;
    },
  };
}

function tokenFor(key: ClusterKey, issuer: HttpsIssuer, issuedAtMs = TEST_NOW_MS): string {
  return mintServiceAccountToken(key, serviceAccountClaims({ issuer: issuer.issuer, issuedAtMs }));
}

function counts(issuer: HttpsIssuer): { discovery: number; keys: number } {
  return {
    discovery: issuer.requests(issuer.discoveryPath),
    keys: issuer.requests(issuer.keysPath),
  };
}

async function assertUnavailable(promise: Promise<unknown>, reason: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof JoinError, `expected JoinError, got ${String(err)}`);
    assert.equal(err.code, "keys_unavailable");
    assert.match(err.message, new RegExp(`\\(${reason}\\)`));
    assert.doesNotMatch(err.message, /127\.0\.0\.1|internal detail/);
    return true;
  });
}

describe("OidcKeySource against a real HTTPS issuer", () => {
  test("a token verifies with keys found through discovery (issuer with a path)", async () => {
    const issuer = await startIssuer([key1], { path: "/id/EXAMPLED539D4633E53DE1B71" });
    const { source, fetches, advance } = keySource();
    const jwt = tokenFor(key1, issuer);

    const keySet = await source.keysFor(issuer.issuer, key1.kid, false);
    const identity = verifyServiceAccountToken(
      jwt,
      keySet,
      { audience: TEST_AUDIENCE, issuer: issuer.issuer },
      TEST_NOW_MS,
    );

    assert.equal(identity.namespace, "default");
    assert.deepEqual(counts(issuer), { discovery: 1, keys: 1 });
    assert.deepEqual(fetches, [{ issuer: issuer.issuer, ok: true, error: undefined }]);
    assert.equal(source.keySetAgeSeconds(issuer.issuer), 0);
    advance(90 * SECOND);
    assert.equal(source.keySetAgeSeconds(issuer.issuer), 90);
    assert.equal(source.keySetAgeSeconds("https://never.example"), undefined);
  });

  test("a rotated key (new kid) costs one refetch; the removed key is refused after it", async () => {
    const issuer = await startIssuer([key1]);
    const { source, advance } = keySource();
    const expected = { audience: TEST_AUDIENCE, issuer: issuer.issuer };
    await source.keysFor(issuer.issuer, key1.kid, false);

    issuer.jwks = [key2.jwk];
    advance(COOLDOWN);
    const jwt2 = tokenFor(key2, issuer, TEST_NOW_MS + COOLDOWN);
    const rotated = await source.keysFor(issuer.issuer, key2.kid, false);
    assert.equal(
      verifyServiceAccountToken(jwt2, rotated, expected, TEST_NOW_MS + COOLDOWN).serviceAccount,
      "tbot",
    );
    assert.deepEqual(counts(issuer), { discovery: 1, keys: 2 });

    const jwt1 = tokenFor(key1, issuer, TEST_NOW_MS + COOLDOWN);
    const after = await source.keysFor(issuer.issuer, key1.kid, false);
    assert.throws(
      () => verifyServiceAccountToken(jwt1, after, expected, TEST_NOW_MS + COOLDOWN),
      (err: unknown) => err instanceof JoinError && err.code === "jwt_signature_invalid",
    );
    assert.deepEqual(counts(issuer), { discovery: 1, keys: 2 }, "within the cooldown: no fetch");
  });

  test("500 unknown kids inside the cooldown cause one fetch, sequential or concurrent", async () => {
    const issuer = await startIssuer([key1]);
    const { source, advance } = keySource();
    const first = await source.keysFor(issuer.issuer, key1.kid, false);

    advance(COOLDOWN);
    for (let i = 0; i < 500; i++) {
      assert.equal(await source.keysFor(issuer.issuer, `unknown-${i}`, false), first);
    }
    assert.deepEqual(counts(issuer), { discovery: 1, keys: 2 });

    advance(COOLDOWN);
    const all = await Promise.all(
      Array.from({ length: 500 }, (_, i) => source.keysFor(issuer.issuer, `other-${i}`, false)),
    );
    assert.ok(
      all.every((k) => k === first),
      "an unchanged key set keeps its identity",
    );
    assert.deepEqual(counts(issuer), { discovery: 1, keys: 3 });

    const forged = mintServiceAccountToken(key2, serviceAccountClaims({ issuer: issuer.issuer }), {
      kid: "unknown-7",
    });
    assert.throws(
      () => verifyServiceAccountToken(forged, first, { audience: TEST_AUDIENCE }, TEST_NOW_MS),
      (err: unknown) => err instanceof JoinError && err.code === "jwt_signature_invalid",
    );
  });

  test("concurrent first calls share one discovery and one JWKS fetch", async () => {
    const issuer = await startIssuer([key1, key2]);
    const { source, fetches } = keySource();
    const sets = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        source.keysFor(issuer.issuer, i % 2 === 0 ? key1.kid : key2.kid, false),
      ),
    );
    assert.ok(sets.every((s) => s === sets[0]));
    assert.deepEqual(counts(issuer), { discovery: 1, keys: 1 });
    assert.equal(fetches.length, 1);
  });

  test("discovery is reused for 1 h, keys refreshed after 24 h, known kids fetch nothing", async () => {
    const issuer = await startIssuer([key1]);
    const { source, advance } = keySource();
    await source.keysFor(issuer.issuer, key1.kid, false);
    const steps: Array<[string, number, string, { discovery: number; keys: number }]> = [
      ["known kid, 10 min later", 10 * MINUTE, key1.kid, { discovery: 1, keys: 1 }],
      ["unknown kid, 30 min: JWKS only", 20 * MINUTE, "new", { discovery: 1, keys: 2 }],
      ["unknown kid, 1 h 30: discovery again", HOUR, "newer", { discovery: 2, keys: 3 }],
      [
        "known kid, 25 h 29: not yet 24 h since the last keys",
        24 * HOUR - MINUTE,
        key1.kid,
        { discovery: 2, keys: 3 },
      ],
      ["known kid, 25 h 31: scheduled refresh", 2 * MINUTE, key1.kid, { discovery: 3, keys: 4 }],
      ["known kid, 25 h 32", MINUTE, key1.kid, { discovery: 3, keys: 4 }],
    ];
    for (const [name, advanceBy, kid, expected] of steps) {
      advance(advanceBy);
      await source.keysFor(issuer.issuer, kid, false);
      assert.deepEqual(counts(issuer), expected, name);
    }
  });

  test("empty or absent kid (kube < 1.16) fetches only when keys are missing or old", async () => {
    const issuer = await startIssuer([key1]);
    const { source, advance } = keySource();
    await source.keysFor(issuer.issuer, undefined, false);
    advance(HOUR);
    await source.keysFor(issuer.issuer, "", false);
    await source.keysFor(issuer.issuer, undefined, false);
    assert.deepEqual(counts(issuer), { discovery: 1, keys: 1 });
  });

  test("the server goes away: cached keys keep serving, failures are reported", async () => {
    const issuer = await startIssuer([key1]);
    const { source, fetches, advance, now } = keySource();
    const expected = { audience: TEST_AUDIENCE, issuer: issuer.issuer };
    const cached = await source.keysFor(issuer.issuer, key1.kid, false);
    await issuer.stop();

    advance(25 * HOUR);
    const stale = await source.keysFor(issuer.issuer, key1.kid, false);
    assert.equal(stale, cached);
    assert.equal(
      verifyServiceAccountToken(tokenFor(key1, issuer, now()), stale, expected, now()).podName,
      "tbot-6d4cf56db6-x7k2p",
    );
    advance(COOLDOWN);
    assert.equal(await source.keysFor(issuer.issuer, "rotated-while-down", false), cached);

    assert.deepEqual(
      fetches.map((f) => f.ok),
      [true, false, false],
    );
    assert.match(fetches[1]?.error ?? "", /ECONNREFUSED/);
    assert.equal(
      source.keySetAgeSeconds(issuer.issuer),
      25 * 3600 + 30,
      "age counts from the last success",
    );
  });

  test("a failing issuer is asked once per cooldown, not once per join", async () => {
    const issuer = await startIssuer([key1]);
    issuer.discovery = "http_500";
    const { source, fetches, advance } = keySource();
    for (let i = 0; i < 100; i++) {
      await assertUnavailable(source.keysFor(issuer.issuer, key1.kid, false), "issuer unreachable");
    }
    assert.equal(issuer.requests(issuer.discoveryPath), 1);
    issuer.discovery = "ok";
    advance(COOLDOWN);
    await source.keysFor(issuer.issuer, key1.kid, false);
    assert.deepEqual(counts(issuer), { discovery: 2, keys: 1 });
    assert.deepEqual(
      fetches.map((f) => f.ok),
      [false, true],
    );
  });

  test("a good redirect to the JWKS is followed", async () => {
    const issuer = await startIssuer([key1]);
    issuer.keys = "redirect";
    const { source } = keySource();
    const keySet = await source.keysFor(issuer.issuer, key1.kid, false);
    assert.ok(keySet.hasKid(key1.kid));
    assert.equal(issuer.requests("/keys-moved"), 1);
  });

  test("a redirect's body is not read: its connection is closed before the next hop", async () => {
    const issuer = await startIssuer([key1]);
    issuer.keys = "redirect_streaming";
    const { source } = keySource({ maxBytes: 1024 });
    const keySet = await source.keysFor(issuer.issuer, key1.kid, false);
    assert.ok(keySet.hasKid(key1.kid));
    assert.equal(issuer.requests("/keys-moved"), 1);
    assert.equal(issuer.redirectBodies.length, 1);
    // Resolves when the redirect's connection closed: at once when the client hangs up, only
    // after the whole cap when it drains the body instead.
    const sent = await issuer.redirectBodies[0];
    assert.ok(
      sent !== undefined && sent < 1024 * 1024,
      `the server sent ${sent} of up to ${REDIRECT_BODY_CAP} body bytes after the 302`,
    );
  });

  test("keys fetched with allowHttp (http jwks_uri) never serve an https-only lookup", async () => {
    const plain = await startIssuer([key2], { plainHttp: true });
    const issuer = await startIssuer([key1]);
    issuer.jwksUri = `${plain.issuer}/keys`;
    const { source, fetches, advance } = keySource();

    const insecure = await source.keysFor(issuer.issuer, key2.kid, true);
    assert.ok(insecure.hasKid(key2.kid));
    assert.equal(plain.requests(plain.keysPath), 1);

    // Same issuer, same kid, inside the cooldown: an https-only lookup must fetch for itself,
    // and its own discovery names an http:// jwks_uri, which it refuses.
    await assertUnavailable(
      source.keysFor(issuer.issuer, key2.kid, false),
      "invalid discovery document",
    );
    assert.match(fetches.at(-1)?.error ?? "", /jwks_uri refused: .*http:\/\/ is not allowed/);
    assert.equal(plain.requests(plain.keysPath), 1);
    // Its failure does not disturb the allowHttp key set, nor its cooldown.
    assert.equal(await source.keysFor(issuer.issuer, key2.kid, true), insecure);
    assert.equal(issuer.requests(issuer.discoveryPath), 2);

    // The age gauge keeps one series per issuer URL: the freshest set's age.
    advance(COOLDOWN);
    assert.deepEqual(source.keySetAges(), [[issuer.issuer, COOLDOWN / SECOND]]);
    assert.equal(source.keySetAgeSeconds(issuer.issuer), COOLDOWN / SECOND);
  });

  const failures: Array<{
    name: string;
    endpoint: "discovery" | "keys";
    behaviour: EndpointBehaviour;
    reason: string;
    detail: RegExp;
  }> = [
    {
      name: "discovery naming a different issuer",
      endpoint: "discovery",
      behaviour: "wrong_issuer",
      reason: "invalid discovery document",
      detail: /issuer "https:\/\/127\.0\.0\.1:\d+\/other" does not equal the configured issuer/,
    },
    {
      name: "discovery that is not JSON",
      endpoint: "discovery",
      behaviour: "malformed_json",
      reason: "invalid discovery document",
      detail: /openid-configuration: not valid JSON/,
    },
    {
      name: "a JWKS that is not JSON",
      endpoint: "keys",
      behaviour: "malformed_json",
      reason: "invalid key set",
      detail: /\/keys: not valid JSON/,
    },
    {
      name: "discovery over 1 MiB, streamed without Content-Length",
      endpoint: "discovery",
      behaviour: "oversized_chunked",
      reason: "issuer unreachable",
      detail: /response exceeds the limit of 1048576 bytes/,
    },
    {
      name: "a JWKS over 1 MiB, declared in Content-Length",
      endpoint: "keys",
      behaviour: "oversized_declared",
      reason: "issuer unreachable",
      detail: /response of \d+ bytes exceeds the limit of 1048576/,
    },
    {
      name: "discovery that never answers",
      endpoint: "discovery",
      behaviour: "stall_headers",
      reason: "issuer unreachable",
      detail: /no complete response within 300 ms/,
    },
    {
      name: "a JWKS body that stops half way",
      endpoint: "keys",
      behaviour: "stall_body",
      reason: "issuer unreachable",
      detail: /no complete response within 300 ms/,
    },
    {
      name: "a server error (its body never reaches the caller)",
      endpoint: "keys",
      behaviour: "http_500",
      reason: "issuer unreachable",
      detail: /HTTP status 500$/,
    },
    {
      name: "a redirect loop",
      endpoint: "keys",
      behaviour: "redirect_loop",
      reason: "issuer unreachable",
      detail: /more than 3 redirects/,
    },
    {
      name: "a redirect from https to http",
      endpoint: "keys",
      behaviour: "redirect_http",
      reason: "issuer unreachable",
      detail: /http:\/\/ is not allowed/,
    },
  ];
  for (const { name, endpoint, behaviour, reason, detail } of failures) {
    test(`${name}: keys_unavailable (${reason}), detail only to onFetch, then recovers`, async () => {
      const issuer = await startIssuer([key1]);
      issuer[endpoint] = behaviour;
      const { source, fetches, advance } = keySource({ timeoutMs: 300 });

      await assertUnavailable(source.keysFor(issuer.issuer, key1.kid, false), reason);
      assert.equal(fetches.length, 1);
      assert.equal(fetches[0]?.ok, false);
      assert.match(fetches[0]?.error ?? "", detail);

      issuer[endpoint] = "ok";
      advance(COOLDOWN);
      assert.ok((await source.keysFor(issuer.issuer, key1.kid, false)).hasKid(key1.kid));
    });
  }

  test("a failed refresh keeps the previous keys (invalid JWKS after rotation)", async () => {
    const issuer = await startIssuer([key1]);
    const { source, fetches, advance } = keySource();
    const cached = await source.keysFor(issuer.issuer, key1.kid, false);
    issuer.jwks = [{ kty: "oct", k: "c2VjcmV0", kid: "hmac" }];
    advance(COOLDOWN);
    assert.equal(await source.keysFor(issuer.issuer, "hmac", false), cached);
    assert.match(fetches[1]?.error ?? "", /contains private key material/);
  });

  test("a certificate from a CA outside the trusted set is refused", async () => {
    const issuer = await startIssuer([key1], { ca: await createTestCa("untrusted CA") });
    const { source, fetches } = keySource();
    await assertUnavailable(source.keysFor(issuer.issuer, key1.kid, false), "issuer unreachable");
    assert.match(fetches[0]?.error ?? "", /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    assert.equal(issuer.requests(issuer.discoveryPath), 0);
  });

  test("without the extra CA file the test CA is not trusted (Node's roots only)", async () => {
    const issuer = await startIssuer([key1]);
    const { source } = keySource({ extraCaFile: undefined });
    await assertUnavailable(source.keysFor(issuer.issuer, key1.kid, false), "issuer unreachable");
  });

  test("http:// only when the token allows it", async () => {
    const issuer = await startIssuer([key1], { plainHttp: true });
    const { source, fetches } = keySource();
    await assertUnavailable(
      source.keysFor(issuer.issuer, key1.kid, false),
      "issuer URL not usable",
    );
    assert.match(fetches[0]?.error ?? "", /insecure_allow_http_issuer/);
    assert.equal(issuer.requests(issuer.discoveryPath), 0);
    assert.ok((await source.keysFor(issuer.issuer, key1.kid, true)).hasKid(key1.kid));
  });

  test("issuer URLs that cannot be fetched are refused without a request", async () => {
    const { source } = keySource();
    for (const issuer of [
      "not a url",
      "ftp://127.0.0.1/",
      "https://u:p@127.0.0.1/",
      "https://127.0.0.1/?q=1",
    ]) {
      await assertUnavailable(source.keysFor(issuer, "kid", true), "issuer URL not usable");
    }
  });

  test("a throwing onFetch hook does not break fetching", async () => {
    const issuer = await startIssuer([key1]);
    const source = new OidcKeySource({
      extraCaFile: caFile,
      onFetch: () => {
        throw new Error("metrics broke");
      },
    });
    assert.ok((await source.keysFor(issuer.issuer, key1.kid, false)).hasKid(key1.kid));
  });
});

describe("OidcKeySource options", () => {
  test("the extra CA file must exist and hold valid certificates", () => {
    const empty = join(dir, "empty.pem");
    writeFileSync(empty, "# nothing here\n");
    const broken = join(dir, "broken.pem");
    writeFileSync(broken, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    const cases: Array<[string, RegExp]> = [
      [join(dir, "missing.pem"), /cannot read the extra CA file for OIDC issuers \(ENOENT\)/],
      [empty, /holds no PEM certificate/],
      [broken, /certificate 1: not a valid X\.509 certificate/],
    ];
    for (const [file, message] of cases) {
      assert.throws(
        () => new OidcKeySource({ extraCaFile: file }),
        (err: unknown) => err instanceof ConfigError && message.test(err.problems[0] ?? ""),
        file,
      );
    }
    assert.equal(trustedCas(caFile).at(-1), ca.certPem.trim());
  });

  test("limits must be positive numbers", () => {
    for (const bad of [{ cooldownMs: -1 }, { maxBytes: 0 }, { timeoutMs: Number.NaN }]) {
      assert.throws(() => new OidcKeySource(bad), TypeError, JSON.stringify(bad));
    }
  });
});
