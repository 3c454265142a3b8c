import { strict as assert } from "node:assert";
import { generateKeyPairSync } from "node:crypto";
import { createWriteStream, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { Writable } from "node:stream";
import { openAuditTrail } from "../src/audit/audit.ts";
import { loadOrCreateAuthority, type CertificateAuthority } from "../src/ca/authority.ts";
import { JoinError, type ErrorCode } from "../src/errors.ts";
import type { JoinAttempt } from "../src/join/events.ts";
import { JoinService, type JoinRequest, type JoinSnapshot } from "../src/join/join.ts";
import type { ServiceAccountIdentity } from "../src/methods/kubernetes/service-account.ts";
import { VerifiedTokenCache } from "../src/methods/verified-token-cache.ts";
import { parseResources } from "../src/resources/load.ts";
import type { ResourceSet } from "../src/resources/types.ts";
import {
  TEST_AUDIENCE,
  TEST_NOW_MS,
  generateClusterKey,
  mintServiceAccountToken,
  parseJwksOrThrow,
  serviceAccountClaims,
  type ClusterKey,
} from "./support/jwt.ts";
import { ed25519AuthorizedKey } from "../src/ca/ssh.ts";

const OIDC_ISSUER = "https://oidc.example.com/cluster-1";

let clusterKey: ClusterKey;
let otherKey: ClusterKey;
let authority: CertificateAuthority;
let resources: ResourceSet;
let tlsPublicKey: string;
let sshPublicKey: string;

/** The guide's resources plus the tokens each rejection rule needs, with the test's JWKS. */
function resourcesYaml(jwks: string): string {
  const indented = jwks.replace(/^/gm, "        ");
  const token = (name: string, extra: string, spec = ""): string => `---
kind: token
version: v2
metadata:
  name: ${name}
${extra}spec:
  roles: [Bot]
  bot_name: example
  join_method: kubernetes
  kubernetes:
${
  spec ||
  `    type: static_jwks
    static_jwks:
      jwks: |
${indented}
`
}    allow:
      - service_account: "default:tbot"
`;
  return `kind: bot
version: v1
metadata:
  name: example
spec:
  roles: [access, editor]
  traits:
    - name: logins
      values: [root, ubuntu]
  max_session_ttl: 2h
${token("example-bot", "")}${token("expired-bot", "  expires: 2026-01-01T00:00:00Z\n")}${token(
    "oidc-bot",
    "",
    `    type: oidc
    oidc:
      issuer: ${OIDC_ISSUER}
`,
  )}---
kind: token
version: v2
metadata:
  name: iam-bot
spec:
  roles: [Bot]
  bot_name: example
  join_method: iam
`;
}

before(async () => {
  clusterKey = generateClusterKey("ES256");
  otherKey = generateClusterKey("ES256");
  authority = await loadOrCreateAuthority(
    { clusterName: TEST_AUDIENCE, dataDir: mkdtempSync(join(tmpdir(), "kube-join-join-")) },
    TEST_NOW_MS,
  );
  resources = parseResources([{ file: "resources.yaml", text: resourcesYaml(clusterKey.jwks) }]);
  tlsPublicKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
    type: "spki",
    format: "pem",
  }) as string;
  sshPublicKey = ed25519AuthorizedKey(generateKeyPairSync("ed25519").publicKey, "bot@test");
});

interface Harness {
  readonly service: JoinService;
  readonly events: JoinAttempt[];
  readonly internalErrors: unknown[];
  setSnapshot(snapshot: JoinSnapshot | undefined): void;
  setNow(ms: number): void;
}

function harness(
  options: {
    cache?: boolean;
    oidcKeys?: ConstructorParameters<typeof JoinService>[0]["oidcKeys"];
    auditTrail?: ConstructorParameters<typeof JoinService>[0]["auditTrail"];
  } = {},
): Harness {
  let snapshot: JoinSnapshot | undefined = { resources, authority };
  let now = TEST_NOW_MS;
  const events: JoinAttempt[] = [];
  const internalErrors: unknown[] = [];
  const service = new JoinService({
    clusterName: TEST_AUDIENCE,
    certs: { defaultTtlMs: 3_600_000, maxTtlMs: 86_400_000 },
    snapshot: () => snapshot,
    now: () => now,
    ...(options.cache === false
      ? {}
      : { cache: new VerifiedTokenCache({ maxEntries: 100, now: () => now }) }),
    ...(options.oidcKeys === undefined ? {} : { oidcKeys: options.oidcKeys }),
    ...(options.auditTrail === undefined ? {} : { auditTrail: options.auditTrail }),
    listeners: [(e) => events.push(e)],
    onInternalError: (err) => internalErrors.push(err),
  });
  return {
    service,
    events,
    internalErrors,
    setSnapshot: (s) => (snapshot = s),
    setNow: (ms) => (now = ms),
  };
}

function request(overrides: Partial<JoinRequest> = {}): JoinRequest {
  return {
    tokenName: "example-bot",
    role: "Bot",
    idToken: mintServiceAccountToken(clusterKey),
    publicTlsKey: tlsPublicKey,
    publicSshKey: sshPublicKey,
    expiresAtMs: undefined,
    remoteAddr: "10.1.2.3",
    ...overrides,
  };
}

async function rejection(promise: Promise<unknown>): Promise<JoinError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof JoinError, `expected JoinError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the join to be refused");
}

test("a join issues both certificates and reports one successful attempt", async () => {
  const h = harness();
  const jwt = mintServiceAccountToken(clusterKey);
  const result = await h.service.join(request({ idToken: jwt }));
  assert.equal(result.botName, "example");
  assert.equal(result.user, "bot-example");
  assert.equal(result.expires.getTime(), TEST_NOW_MS + 3_600_000);
  assert.match(result.tlsCert, /^-----BEGIN CERTIFICATE-----/);
  assert.match(result.sshCert, /^ssh-ed25519-cert-v01@openssh\.com /);
  assert.deepEqual(result.tlsCaCerts, authority.trusted().tlsCaCerts);
  assert.deepEqual(result.sshCaKeys, authority.trusted().sshCaKeys);
  assert.deepEqual(result.attributes.response, {
    kubernetes: {
      subject: "system:serviceaccount:default:tbot",
      namespace: "default",
      service_account: "tbot",
      pod: "tbot-6d4cf56db6-x7k2p",
    },
  });

  assert.equal(h.events.length, 1);
  const event = h.events[0] as JoinAttempt;
  assert.equal(event.tokenName, "example-bot");
  assert.equal(event.botName, "example");
  assert.equal(event.remoteAddr, "10.1.2.3");
  assert.equal(event.cache, "miss");
  assert.equal(event.joinMethod, "kubernetes");
  assert.deepEqual(event.attrs?.audit, {
    namespace: "default",
    service_account: "tbot",
    pod: "tbot-6d4cf56db6-x7k2p",
  });
  assert.equal(event.attrs, result.attributes, "rendered once: the event and result share it");
  assert.deepEqual(event.outcome, {
    ok: true,
    tlsSerial: result.tlsSerial,
    sshSerial: result.sshSerial,
    expires: result.expires,
  });
  assert.ok(event.durationSeconds >= 0);
  assert.equal(JSON.stringify(h.events).includes(jwt), false, "the JWT is never in an event");
});

test("a requested expiry is honoured up to the bot's max_session_ttl", async () => {
  const h = harness();
  const asked = await h.service.join(request({ expiresAtMs: TEST_NOW_MS + 30 * 60_000 }));
  assert.equal(asked.expires.getTime(), TEST_NOW_MS + 30 * 60_000);
  const capped = await h.service.join(request({ expiresAtMs: TEST_NOW_MS + 20 * 3_600_000 }));
  assert.equal(capped.expires.getTime(), TEST_NOW_MS + 2 * 3_600_000);
});

test("the role may be written in any case", async () => {
  const h = harness();
  const result = await h.service.join(request({ role: "bot" }));
  assert.equal(result.botName, "example");
});

test("each rejection rule has its code, and every attempt is reported once", async (t) => {
  const cases: ReadonlyArray<{
    name: string;
    request: () => Partial<JoinRequest>;
    code: ErrorCode;
    message?: RegExp;
    verified: boolean;
  }> = [
    {
      name: "unknown token",
      request: () => ({ tokenName: "nope" }),
      code: "token_not_found",
      verified: false,
    },
    {
      name: "expired token",
      request: () => ({ tokenName: "expired-bot" }),
      code: "token_expired",
      // Before the JWT proves anything, the token's own settings stay out of the answer.
      message: /^the join token has expired$/,
      verified: false,
    },
    {
      name: "join method other than kubernetes",
      request: () => ({ tokenName: "iam-bot" }),
      code: "join_method_mismatch",
      message: /^the join token does not use the "kubernetes" join method$/,
      verified: false,
    },
    {
      name: "role other than Bot",
      request: () => ({ role: "Node" }),
      code: "role_mismatch",
      verified: false,
    },
    {
      name: "garbage JWT",
      request: () => ({ idToken: "not.a.jwt" }),
      code: "jwt_malformed",
      verified: false,
    },
    {
      name: "JWT signed by another key",
      request: () => ({ idToken: mintServiceAccountToken(otherKey) }),
      code: "jwt_signature_invalid",
      verified: false,
    },
    {
      name: "JWT for another audience",
      request: () => ({
        idToken: mintServiceAccountToken(
          clusterKey,
          serviceAccountClaims({ audience: "other.example.com" }),
        ),
      }),
      code: "jwt_audience_mismatch",
      message: /kube-join\.example\.com/,
      verified: false,
    },
    {
      name: "expired JWT",
      request: () => ({
        idToken: mintServiceAccountToken(
          clusterKey,
          serviceAccountClaims({ issuedAtMs: TEST_NOW_MS - 3_600_000 }),
        ),
      }),
      code: "jwt_expired",
      verified: false,
    },
    {
      name: "service account no rule allows",
      request: () => ({
        idToken: mintServiceAccountToken(
          clusterKey,
          serviceAccountClaims({ namespace: "default", serviceAccount: "tbot2" }),
        ),
      }),
      code: "no_matching_allow_rule",
      message: /default:tbot2/,
      verified: true,
    },
    {
      name: "TLS public key that is not one",
      request: () => ({
        publicTlsKey: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----",
      }),
      code: "invalid_public_key",
      verified: true,
    },
    {
      name: "SSH public key that is not one",
      request: () => ({ publicSshKey: "ssh-ed25519 AAAA" }),
      code: "invalid_public_key",
      verified: true,
    },
    {
      name: "expiry in the past",
      request: () => ({ expiresAtMs: TEST_NOW_MS - 1000 }),
      code: "invalid_ttl",
      verified: true,
    },
    {
      name: "expiry under a minute away",
      request: () => ({ expiresAtMs: TEST_NOW_MS + 30_000 }),
      code: "invalid_ttl",
      verified: true,
    },
    {
      name: "oidc token without a key source",
      request: () => ({ tokenName: "oidc-bot" }),
      code: "keys_unavailable",
      verified: false,
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const h = harness();
      const req = request(c.request());
      const err = await rejection(h.service.join(req));
      assert.equal(err.code, c.code, err.message);
      if (c.message !== undefined) assert.match(err.message, c.message);
      assert.equal(h.events.length, 1);
      const event = h.events[0] as JoinAttempt;
      assert.deepEqual(event.outcome, { ok: false, code: c.code, message: err.message });
      assert.equal(event.attrs !== undefined, c.verified, "attrs present once the JWT verified");
      assert.equal(JSON.stringify(event).includes(req.idToken), false);
      assert.equal(err.message.includes(req.idToken), false);
      assert.deepEqual(h.internalErrors, []);
    });
  }
});

test("before resources and CA are loaded, joins get not_ready", async () => {
  const h = harness();
  h.setSnapshot(undefined);
  const err = await rejection(h.service.join(request()));
  assert.equal(err.code, "not_ready");
  assert.equal(h.events.length, 1);
});

test("an unexpected error becomes internal with a generic message; details go to the log hook", async () => {
  const h = harness();
  // A snapshot whose token names a bot that is not loaded: resource validation never lets this
  // happen, so the pipeline treats it as a bug.
  h.setSnapshot({
    resources: { ...resources, bots: new Map() },
    authority,
  });
  const err = await rejection(h.service.join(request()));
  assert.equal(err.code, "internal");
  assert.equal(err.message, "internal error; the details are in the server log");
  assert.equal(h.internalErrors.length, 1);
  assert.match(String(h.internalErrors[0]), /names bot example, which is not loaded/);
});

test("a throwing listener never fails the join", async () => {
  const h = harness();
  h.service.onAttempt(() => {
    throw new Error("disk full");
  });
  const result = await h.service.join(request());
  assert.equal(result.botName, "example");
  assert.equal(h.internalErrors.length, 1);
});

test("no certificate leaves without its audit line: audit_unavailable, reported as a failure", async () => {
  // /dev/full refuses every write with ENOSPC: a real sink that cannot take the line.
  const stream = createWriteStream("/dev/full");
  const auditTrail = await openAuditTrail({
    stream,
    logger: { error: () => {}, warn: () => {}, info: () => {} },
  });
  const h = harness({ auditTrail });
  const err = await rejection(h.service.join(request()));
  assert.equal(err.code, "audit_unavailable");
  assert.equal(h.events.length, 1);
  assert.deepEqual(h.events[0]?.outcome, {
    ok: false,
    code: "audit_unavailable",
    message: err.message,
  });
  // A refusal does not wait for its line, and is still refused with its own code.
  assert.equal(
    (await rejection(h.service.join(request({ tokenName: "nope" })))).code,
    "token_not_found",
  );
  await auditTrail.close();
  stream.destroy();

  const lines: string[] = [];
  const ok = await openAuditTrail({
    stream: new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString("utf8"));
        cb();
      },
    }),
  });
  const good = harness({ auditTrail: ok });
  const result = await good.service.join(request());
  assert.match(lines.join(""), new RegExp(`"tls_serial":"${result.tlsSerial}"`));
  await ok.close();
});

test("oidc tokens verify against the injected key source, issuer checked", async () => {
  const seen: Array<[string, string | undefined, boolean]> = [];
  const h = harness({
    oidcKeys: async (issuer, kid) => {
      seen.push([issuer.issuer, kid, issuer.allowHttp]);
      return parseJwksOrThrow(clusterKey.jwks);
    },
  });
  const jwt = mintServiceAccountToken(clusterKey, serviceAccountClaims({ issuer: OIDC_ISSUER }));
  const result = await h.service.join(request({ tokenName: "oidc-bot", idToken: jwt }));
  assert.deepEqual(result.attributes.audit, {
    namespace: "default",
    service_account: "tbot",
    pod: "tbot-6d4cf56db6-x7k2p",
  });
  assert.deepEqual(seen, [[OIDC_ISSUER, clusterKey.kid, false]]);

  const wrongIssuer = mintServiceAccountToken(clusterKey); // iss: the in-cluster issuer
  const err = await rejection(
    h.service.join(request({ tokenName: "oidc-bot", idToken: wrongIssuer })),
  );
  assert.equal(err.code, "jwt_issuer_mismatch");
});

test("a key source failing unexpectedly gives keys_unavailable, not internal", async () => {
  const h = harness({
    oidcKeys: async () => {
      throw new Error("socket hang up at 10.0.0.7");
    },
  });
  const jwt = mintServiceAccountToken(clusterKey, serviceAccountClaims({ issuer: OIDC_ISSUER }));
  const err = await rejection(h.service.join(request({ tokenName: "oidc-bot", idToken: jwt })));
  assert.equal(err.code, "keys_unavailable");
  assert.doesNotMatch(err.message, /10\.0\.0\.7/);
  assert.equal(h.internalErrors.length, 1);
});

test("a join in flight finishes under the snapshot it started with", async () => {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let started: () => void = () => undefined;
  const waiting = new Promise<void>((resolve) => (started = resolve));
  const h = harness({
    oidcKeys: async () => {
      started();
      await gate;
      return parseJwksOrThrow(clusterKey.jwks);
    },
  });
  const jwt = mintServiceAccountToken(clusterKey, serviceAccountClaims({ issuer: OIDC_ISSUER }));
  const inFlight = h.service.join(request({ tokenName: "oidc-bot", idToken: jwt }));
  await waiting;
  // A reload removes every token while the join waits for keys.
  h.setSnapshot({ resources: { ...resources, tokens: new Map(), bots: new Map() }, authority });
  release();
  const result = await inFlight;
  assert.equal(result.botName, "example");
  // The next join sees the new set.
  const err = await rejection(h.service.join(request({ tokenName: "oidc-bot", idToken: jwt })));
  assert.equal(err.code, "token_not_found");
});

test("verified-token cache: a repeated JWT is a hit; rules are still checked on every join", async () => {
  const h = harness();
  const jwt = mintServiceAccountToken(clusterKey);
  await h.service.join(request({ idToken: jwt }));
  await h.service.join(request({ idToken: jwt }));
  assert.deepEqual(
    h.events.map((e) => e.cache),
    ["miss", "hit"],
  );
  // A reload that drops the allow rule's match refuses the cached identity too.
  const stricter = parseResources([
    {
      file: "resources.yaml",
      text: resourcesYaml(clusterKey.jwks).replaceAll('"default:tbot"', '"default:other"'),
    },
  ]);
  h.setSnapshot({ resources: stricter, authority });
  const err = await rejection(h.service.join(request({ idToken: jwt })));
  assert.equal(err.code, "no_matching_allow_rule");
  assert.equal(h.events[2]?.cache, "hit");
});

test("verified-token cache: failures are not cached", async () => {
  const h = harness();
  const jwt = mintServiceAccountToken(otherKey);
  await rejection(h.service.join(request({ idToken: jwt })));
  await rejection(h.service.join(request({ idToken: jwt })));
  // Both looked up and missed: the first failure left nothing behind.
  assert.deepEqual(
    h.events.map((e) => e.cache),
    ["miss", "miss"],
  );
});

test("verified-token cache: expiry is honoured (exp plus leeway, on the injected clock)", async () => {
  const h = harness();
  const jwt = mintServiceAccountToken(clusterKey); // exp = now + 600 s
  await h.service.join(request({ idToken: jwt }));
  h.setNow(TEST_NOW_MS + 609_000);
  await h.service.join(request({ idToken: jwt }));
  assert.equal(h.events[1]?.cache, "hit");
  h.setNow(TEST_NOW_MS + 610_000);
  const err = await rejection(h.service.join(request({ idToken: jwt })));
  assert.equal(err.code, "jwt_expired");
  assert.equal(h.events[2]?.cache, "miss");
});

test("verified-token cache: a reload that changes the token's keys makes old entries unreachable", async () => {
  const h = harness();
  const jwt = mintServiceAccountToken(clusterKey);
  await h.service.join(request({ idToken: jwt }));
  const rotated = parseResources([{ file: "resources.yaml", text: resourcesYaml(otherKey.jwks) }]);
  h.setSnapshot({ resources: rotated, authority });
  const err = await rejection(h.service.join(request({ idToken: jwt })));
  assert.equal(err.code, "jwt_signature_invalid");
  assert.equal(h.events[1]?.cache, "miss");
});

test("verified-token cache: the entry bound holds", () => {
  let now = TEST_NOW_MS;
  const cache = new VerifiedTokenCache<ServiceAccountIdentity>({ maxEntries: 3, now: () => now });
  const identity = (n: number): ServiceAccountIdentity => ({
    subject: `system:serviceaccount:default:sa${n}`,
    namespace: "default",
    serviceAccount: `sa${n}`,
    serviceAccountUid: undefined,
    podName: "pod",
    podUid: undefined,
    nodeName: undefined,
    issuer: undefined,
    jti: undefined,
    issuedAt: TEST_NOW_MS / 1000,
    expiresAt: TEST_NOW_MS / 1000 + 600,
  });
  const keys = [0, 1, 2, 3, 4].map((n) =>
    VerifiedTokenCache.keyOf(`jwt-${n}`, "rev", "aud", undefined),
  );
  keys.forEach((key, n) => cache.set(key, identity(n)));
  assert.equal(cache.size, 3);
  assert.equal(cache.get(keys[0] as string), undefined, "the least recently used went first");
  assert.equal(cache.get(keys[4] as string)?.serviceAccount, "sa4");
  // The key never holds the JWT itself.
  assert.equal((keys[0] as string).includes("jwt-0"), false);
  // An identity already past exp + leeway is not stored at all.
  now = TEST_NOW_MS + 3_600_000;
  cache.clear();
  cache.set(keys[0] as string, identity(0));
  assert.equal(cache.size, 0);
  assert.throws(() => new VerifiedTokenCache({ maxEntries: 0, now: () => now }), TypeError);
});

test("verified-token cache: keys differ by key revision, audience and issuer", () => {
  const base = VerifiedTokenCache.keyOf("a.b.c", "r1", "aud", undefined);
  assert.notEqual(base, VerifiedTokenCache.keyOf("a.b.c", "r2", "aud", undefined));
  assert.notEqual(base, VerifiedTokenCache.keyOf("a.b.c", "r1", "aud2", undefined));
  assert.notEqual(base, VerifiedTokenCache.keyOf("a.b.c", "r1", "aud", "https://i"));
  assert.notEqual(base, VerifiedTokenCache.keyOf("a.b.d", "r1", "aud", undefined));
});
