import { strict as assert } from "node:assert";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { createServer, request as httpRequest } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { before, test } from "node:test";
import request from "supertest";
import { loadOrCreateAuthority, type CertificateAuthority } from "../src/ca/authority.ts";
import { statusOf, type ErrorCode } from "../src/errors.ts";
import { createJoinApp, MAX_BODY_BYTES, type JoinAppDeps } from "../src/http/app.ts";
import { RateLimiter } from "../src/http/rate-limit.ts";
import type { JoinAttempt } from "../src/join/events.ts";
import { JoinService, type JoinSnapshot } from "../src/join/join.ts";
import { exampleResources } from "./support/example-resources.ts";
import type { ResourceSet } from "../src/resources/types.ts";
import {
  TEST_AUDIENCE,
  TEST_NOW_MS,
  generateClusterKey,
  mintServiceAccountToken,
  type ClusterKey,
} from "./support/jwt.ts";
import { ed25519AuthorizedKey } from "../src/ca/ssh.ts";

let clusterKey: ClusterKey;
let authority: CertificateAuthority;
let resources: ResourceSet;
let tlsPublicKey: string;
let sshPublicKey: string;

before(async () => {
  clusterKey = generateClusterKey("ES256");
  authority = await loadOrCreateAuthority(
    { clusterName: TEST_AUDIENCE, dataDir: mkdtempSync(join(tmpdir(), "kube-join-http-")) },
    TEST_NOW_MS,
  );
  const jwks = clusterKey.jwks;
  resources = exampleResources(jwks, { logins: ["root"] });
  tlsPublicKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
    type: "spki",
    format: "pem",
  }) as string;
  sshPublicKey = ed25519AuthorizedKey(generateKeyPairSync("ed25519").publicKey);
});

interface AppHarness {
  readonly app: ReturnType<typeof createJoinApp>;
  readonly events: JoinAttempt[];
  readonly internalErrors: unknown[];
  rateLimited: number;
}

function makeApp(
  overrides: Partial<JoinAppDeps> & { snapshot?: () => JoinSnapshot | undefined } = {},
): AppHarness {
  const events: JoinAttempt[] = [];
  const internalErrors: unknown[] = [];
  const joins = new JoinService({
    clusterName: TEST_AUDIENCE,
    certs: { defaultTtlMs: 3_600_000, maxTtlMs: 86_400_000 },
    snapshot: overrides.snapshot ?? (() => ({ resources, authority })),
    now: () => TEST_NOW_MS,
    listeners: [(e) => events.push(e)],
    onInternalError: (err) => internalErrors.push(err),
  });
  const h: AppHarness = {
    app: undefined as never,
    events,
    internalErrors,
    rateLimited: 0,
  };
  const app = createJoinApp({
    joins,
    trusted: () => authority.trusted(),
    onInternalError: (err) => internalErrors.push(err),
    onRateLimited: () => h.rateLimited++,
    ...overrides,
  });
  return Object.assign(h, { app });
}

function body(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    token: "example-bot",
    role: "Bot",
    id_token: mintServiceAccountToken(clusterKey),
    public_tls_key: tlsPublicKey,
    public_ssh_key: sshPublicKey,
    ...overrides,
  };
}

/** Asserts the registry's status and the one error shape, and returns the message. */
function assertError(res: request.Response, code: ErrorCode): string {
  assert.equal(res.status, statusOf(code), `${code}: ${JSON.stringify(res.body)}`);
  assert.match(String(res.headers["content-type"]), /^application\/json/);
  assert.deepEqual(Object.keys(res.body as object), ["error"]);
  const error = (res.body as { error: { code: string; message: string } }).error;
  assert.deepEqual(Object.keys(error), ["code", "message"]);
  assert.equal(error.code, code);
  assert.equal(typeof error.message, "string");
  return error.message;
}

test("POST /v1/join returns the certificates in Teleport's shape", async () => {
  const { app, events } = makeApp();
  const res = await request(app)
    .post("/v1/join")
    .send(body({ role: undefined }))
    .expect(200);
  assert.equal(res.headers["x-powered-by"], undefined);
  assert.equal(res.headers["cache-control"], "no-store");
  assert.deepEqual(Object.keys(res.body as object).sort(), [
    "bot_name",
    "expires",
    "join_attrs",
    "ssh_ca_keys",
    "ssh_cert",
    "tls_ca_certs",
    "tls_cert",
    "user",
  ]);
  assert.equal(res.body.bot_name, "example");
  assert.equal(res.body.user, "bot-example");
  assert.equal(res.body.expires, new Date(TEST_NOW_MS + 3_600_000).toISOString());
  assert.match(res.body.tls_cert, /^-----BEGIN CERTIFICATE-----/);
  assert.match(res.body.ssh_cert, /^ssh-ed25519-cert-v01@openssh\.com /);
  assert.deepEqual(res.body.tls_ca_certs, authority.trusted().tlsCaCerts);
  assert.deepEqual(res.body.ssh_ca_keys, authority.trusted().sshCaKeys);
  assert.deepEqual(res.body.join_attrs, {
    kubernetes: {
      subject: "system:serviceaccount:default:tbot",
      namespace: "default",
      service_account: "tbot",
      pod: "tbot-6d4cf56db6-x7k2p",
    },
  });
  assert.equal(events.length, 1);
  assert.match(events[0]?.remoteAddr ?? "", /127\.0\.0\.1/);
});

test("POST /v1/join honours an RFC 3339 expiry and ignores fields it does not know", async () => {
  const { app } = makeApp();
  const expires = new Date(TEST_NOW_MS + 30 * 60_000).toISOString().replace(".000Z", "+00:00");
  const res = await request(app)
    .post("/v1/join")
    .send(body({ expires, host_id: "ignored", dns_names: ["x"] }))
    .expect(200);
  assert.equal(res.body.expires, new Date(TEST_NOW_MS + 30 * 60_000).toISOString());
});

test("GET /v1/ca exports the trusted CAs (HEAD too)", async () => {
  const { app } = makeApp();
  const res = await request(app).get("/v1/ca").expect(200);
  assert.deepEqual(res.body, {
    tls_ca_certs: authority.trusted().tlsCaCerts,
    ssh_ca_keys: authority.trusted().sshCaKeys,
  });
  await request(app).head("/v1/ca").expect(200);
});

test("malformed and hostile requests get bad_request", async (t) => {
  const cases: ReadonlyArray<{ name: string; raw?: string; json?: unknown; message?: RegExp }> = [
    { name: "not JSON", raw: "{token: example-bot", message: /not valid JSON/ },
    { name: "empty body", raw: "" },
    { name: "a JSON string (strict parser)", raw: '"example-bot"' },
    { name: "a JSON number", raw: "42" },
    { name: "null", raw: "null" },
    { name: "an array instead of an object", json: [body()], message: /JSON object/ },
    { name: "missing token", json: body({ token: undefined }), message: /"token" is required/ },
    {
      name: "missing id_token",
      json: body({ id_token: undefined }),
      message: /"id_token" is required/,
    },
    { name: "missing public_tls_key", json: body({ public_tls_key: undefined }) },
    { name: "missing public_ssh_key", json: body({ public_ssh_key: undefined }) },
    { name: "token as a number", json: body({ token: 5 }), message: /"token" must be a string/ },
    { name: "token as null", json: body({ token: null }) },
    { name: "id_token as an object", json: body({ id_token: { jwt: "x" } }) },
    { name: "id_token as a list", json: body({ id_token: ["a.b.c"] }) },
    { name: "role as a boolean", json: body({ role: true }) },
    { name: "empty token", json: body({ token: "" }), message: /must not be empty/ },
    { name: "expires as a number", json: body({ expires: 1_900_000_000 }) },
    { name: "expires not RFC 3339", json: body({ expires: "tomorrow" }), message: /RFC 3339/ },
    { name: "expires without a zone", json: body({ expires: "2026-01-15T13:00:00" }) },
    { name: "expires with a bad month", json: body({ expires: "2026-13-15T13:00:00Z" }) },
    {
      name: "expires on a day the month does not have",
      json: body({ expires: "2026-02-30T00:00:00Z" }),
    },
    { name: "expires at hour 24", json: body({ expires: "2026-02-01T24:00:00Z" }) },
    {
      name: "fields hidden under __proto__",
      raw: JSON.stringify(body()).replace(/^\{/, '{"__proto__":').concat("}").replace(/^/, "{"),
    },
    {
      name: "every field under __proto__ only",
      raw: `{"__proto__": ${JSON.stringify(body())}}`,
      message: /"token" is required/,
    },
    {
      name: "constructor.prototype pollution attempt",
      raw: '{"constructor": {"prototype": {"token": "example-bot"}}}',
    },
  ];
  const { app, events } = makeApp();
  for (const c of cases) {
    await t.test(c.name, async () => {
      const req = request(app).post("/v1/join").set("Content-Type", "application/json");
      const res = await req.send(c.raw ?? JSON.stringify(c.json));
      const message = assertError(res, "bad_request");
      if (c.message !== undefined) assert.match(message, c.message);
      assert.equal(({} as Record<string, unknown>)["token"], undefined, "no prototype pollution");
      // Refused before the pipeline, but still one reported attempt.
      const event = events.at(-1);
      assert.deepEqual(event?.outcome, { ok: false, code: "bad_request", message });
    });
  }
  assert.equal(events.length, cases.length);
});

test("a __proto__ member next to valid fields neither pollutes nor breaks the join", async () => {
  const { app } = makeApp();
  const raw = JSON.stringify(body()).replace(/^\{/, '{"__proto__": {"polluted": true}, ');
  await request(app).post("/v1/join").set("Content-Type", "application/json").send(raw).expect(200);
  assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
});

test("content types other than JSON get unsupported_media_type", async (t) => {
  const { app, events } = makeApp();
  const json = JSON.stringify(body());
  const cases: ReadonlyArray<[string, string | undefined]> = [
    ["text/plain", "text/plain"],
    ["form", "application/x-www-form-urlencoded"],
    ["multipart", "multipart/form-data; boundary=x"],
    ["no content type", undefined],
    ["JSON in a charset other than UTF-8", "application/json; charset=latin1"],
    ["JSON in a quoted UTF-16 charset", 'application/json; charset="utf-16le"'],
    ["a JSON suffix type", "application/merge-patch+json"],
    ["JSON as a prefix only", "application/jsonx"],
  ];
  for (const [name, type] of cases) {
    await t.test(name, async () => {
      const req = request(app).post("/v1/join");
      if (type !== undefined) req.set("Content-Type", type);
      else req.unset("Content-Type");
      assertError(await req.send(Buffer.from(json)), "unsupported_media_type");
    });
  }
  assert.deepEqual(
    events.map((e) => [e.tokenName, e.outcome.ok ? "ok" : e.outcome.code]),
    cases.map(() => [undefined, "unsupported_media_type"]),
  );
  await t.test(
    "application/json with a UTF-8 charset is fine, in any case and quoting",
    async () => {
      for (const type of [
        "application/json; charset=utf-8",
        'Application/JSON; Charset="UTF-8"',
        "application/json;charset=utf-8; foo=bar",
      ]) {
        await request(app).post("/v1/join").set("Content-Type", type).send(json).expect(200);
      }
    },
  );
  await t.test("a compressed body gets unsupported_media_type, before it is read", async () => {
    const message = assertError(
      await request(app)
        .post("/v1/join")
        .set("Content-Type", "application/json")
        .set("Content-Encoding", "gzip")
        .send(gzipSync(json)),
      "unsupported_media_type",
    );
    assert.match(message, /Content-Encoding/);
  });
});

test("the join path is exactly /v1/join; a query string is ignored", async () => {
  const { app } = makeApp();
  await request(app).post("/v1/join?debug=1").send(body()).expect(200);
  assertError(await request(app).post("/v1/join/").send(body()), "not_found");
  assertError(await request(app).post("/V1/JOIN").send(body()), "not_found");
  assertError(await request(app).put("/v1/join").send(body()), "method_not_allowed");
  // An absolute-form target is not the join route; it is told so rather than "use POST".
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, "127.0.0.1");
      let text = "";
      socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
      socket.end(
        `POST http://127.0.0.1:${port}/v1/join HTTP/1.1\r\nHost: x\r\nConnection: close\r\n` +
          "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
      );
    });
    assert.match(raw, /^HTTP\/1\.1 400 /);
    assert.match(raw, /"code":"bad_request".*path alone/);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test("empty, BOM-prefixed and non-object JSON bodies", async () => {
  const { app, events } = makeApp();
  const post = () => request(app).post("/v1/join").set("Content-Type", "application/json");
  assert.match(assertError(await post().send(""), "bad_request"), /not valid JSON/);
  for (const raw of ["[]", "null", '"text"', "5"]) {
    assert.match(assertError(await post().send(raw), "bad_request"), /must be a JSON object/);
  }
  await post()
    .send(`\uFEFF${JSON.stringify(body())}`)
    .expect(200);
  assert.deepEqual(
    events.map((e) => (e.outcome.ok ? "ok" : e.outcome.code)),
    ["bad_request", "bad_request", "bad_request", "bad_request", "bad_request", "ok"],
  );
});

test("a client that closes mid-body is reported as bad_request and nothing else happens", async () => {
  const { app, events, internalErrors } = makeApp();
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", resolve));
    socket.write(
      "POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
        'Content-Length: 1000\r\n\r\n{"token": "example-bot"',
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    socket.destroy();
    for (let i = 0; i < 50 && events.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.deepEqual(
      events.map((e) => [e.tokenName, e.outcome.ok ? "ok" : e.outcome.code]),
      [[undefined, "bad_request"]],
    );
    assert.deepEqual(internalErrors, []);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test("a body over 64 KiB gets payload_too_large, announced or chunked", async () => {
  const { app, events } = makeApp();
  const huge = JSON.stringify(body({ id_token: "a".repeat(MAX_BODY_BYTES) }));
  assertError(
    await request(app).post("/v1/join").set("Content-Type", "application/json").send(huge),
    "payload_too_large",
  );
  assert.deepEqual(
    events.map((e) => (e.outcome.ok ? "ok" : e.outcome.code)),
    ["payload_too_large"],
  );
  // Without a Content-Length the limit applies while the body streams in.
  const server = createServer(app);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        { host: "127.0.0.1", port, method: "POST", path: "/v1/join" },
        (response) => {
          let text = "";
          response.on("data", (chunk: Buffer) => (text += chunk.toString()));
          response.on("end", () => resolve({ status: response.statusCode ?? 0, body: text }));
        },
      );
      req.on("error", reject);
      req.setHeader("Content-Type", "application/json");
      for (let i = 0; i < huge.length; i += 8192) req.write(huge.slice(i, i + 8192));
      req.end();
    });
    assert.equal(res.status, 413);
    assert.equal(
      (JSON.parse(res.body) as { error: { code: string } }).error.code,
      "payload_too_large",
    );
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test("untrusted JWTs and keys get their codes over HTTP", async (t) => {
  const { app, events } = makeApp();
  const cases: ReadonlyArray<[string, Record<string, unknown>, ErrorCode]> = [
    ["garbage JWT", body({ id_token: "garbage" }), "jwt_malformed"],
    [
      "JWT with alg none",
      body({ id_token: "eyJhbGciOiJub25lIn0.e30." }),
      "jwt_algorithm_not_allowed",
    ],
    [
      "a 40 KB JWT (over the JWT limit, within the body limit)",
      body({ id_token: "a.".repeat(20_000) }),
      "jwt_malformed",
    ],
    ["unknown token", body({ token: "nope" }), "token_not_found"],
    ["wrong role", body({ role: "Node" }), "role_mismatch"],
    [
      "TLS key that is a certificate",
      body({ public_tls_key: authority.trusted().tlsCaCerts[0] }),
      "invalid_public_key",
    ],
    ["SSH key of garbage", body({ public_ssh_key: "ssh-rsa !!!" }), "invalid_public_key"],
    ["expiry in the past", body({ expires: "2020-01-01T00:00:00Z" }), "invalid_ttl"],
  ];
  for (const [name, json, code] of cases) {
    await t.test(name, async () => {
      const res = await request(app).post("/v1/join").send(json);
      const message = assertError(res, code);
      assert.equal(message.includes(String(json["id_token"])), false, "never echoes the JWT");
    });
  }
  assert.equal(events.length, cases.length, "one event per attempt");
});

test("answers given before the body is read close the connection", async () => {
  const { app } = makeApp();
  const refusals: Array<[request.Test, ErrorCode]> = [
    [request(app).get("/"), "not_found"],
    [request(app).put("/v1/join").send({}), "method_not_allowed"],
    [
      request(app).post("/v1/join").set("Content-Type", "text/plain").send("x"),
      "unsupported_media_type",
    ],
    [
      request(app)
        .post("/v1/join")
        .set("Content-Type", "application/json")
        .send(JSON.stringify({ pad: "a".repeat(MAX_BODY_BYTES) })),
      "payload_too_large",
    ],
  ];
  for (const [req, code] of refusals) {
    const res = await req;
    assertError(res, code);
    assert.equal(res.headers["connection"], "close", code);
  }
});

test("unknown routes get not_found; known routes with the wrong method get method_not_allowed", async () => {
  const { app } = makeApp();
  assertError(await request(app).get("/"), "not_found");
  assertError(await request(app).post("/v1/joinx").send({}), "not_found");
  assertError(await request(app).get("/v1/ca/../../etc/passwd"), "not_found");
  const getJoin = await request(app).get("/v1/join");
  assertError(getJoin, "method_not_allowed");
  assert.equal(getJoin.headers["allow"], "POST");
  const postCa = await request(app).post("/v1/ca").send({});
  assertError(postCa, "method_not_allowed");
  assert.equal(postCa.headers["allow"], "GET, HEAD");
  assertError(await request(app).delete("/v1/ca"), "method_not_allowed");
});

test("before resources and CA are loaded, both endpoints answer not_ready", async () => {
  const { app } = makeApp({ snapshot: () => undefined, trusted: () => undefined });
  assertError(await request(app).get("/v1/ca"), "not_ready");
  assertError(await request(app).post("/v1/join").send(body()), "not_ready");
});

test("internal errors are answered generically and the details go only to the log hook", async () => {
  const secret = "ENOENT /var/lib/kube-join/secret-path";
  const { app, internalErrors } = makeApp({
    snapshot: () => {
      throw new Error(secret);
    },
    trusted: () => {
      throw new Error(secret);
    },
  });
  for (const res of [
    await request(app).post("/v1/join").send(body()),
    await request(app).get("/v1/ca"),
  ]) {
    const message = assertError(res, "internal");
    assert.equal(message.includes("secret-path"), false);
    assert.equal(res.text.includes("secret-path"), false);
  }
  assert.equal(internalErrors.length, 2);
});

test("rate limit: a client over its burst gets rate_limited with Retry-After", async () => {
  let now = TEST_NOW_MS;
  const h = makeApp({
    rateLimiter: new RateLimiter({ average: 2, periodMs: 60_000, burst: 3, now: () => now }),
  });
  for (let i = 0; i < 3; i++) await request(h.app).get("/v1/ca").expect(200);
  const limited = await request(h.app).get("/v1/ca");
  assertError(limited, "rate_limited");
  assert.equal(limited.headers["retry-after"], "30");
  assert.equal(h.rateLimited, 1);
  // Unknown routes and joins count too: the limit is per client, not per endpoint.
  assertError(await request(h.app).get("/nope"), "rate_limited");
  now += 30_000; // one token back
  await request(h.app).get("/v1/ca").expect(200);
  assertError(await request(h.app).get("/v1/ca"), "rate_limited");
});

test("rate limit: X-Forwarded-For names the client only with trust_proxy", async () => {
  const limiter = (): RateLimiter =>
    new RateLimiter({ average: 1, periodMs: 60_000, burst: 1, now: () => TEST_NOW_MS });
  const trusting = makeApp({ rateLimiter: limiter(), trustProxy: true });
  await request(trusting.app).get("/v1/ca").set("X-Forwarded-For", "203.0.113.1").expect(200);
  await request(trusting.app).get("/v1/ca").set("X-Forwarded-For", "203.0.113.2").expect(200);
  assertError(
    await request(trusting.app).get("/v1/ca").set("X-Forwarded-For", "203.0.113.1"),
    "rate_limited",
  );
  // Only the entry the proxy appended counts: a client-written left-most entry picks no bucket.
  const spoofed = makeApp({ rateLimiter: limiter(), trustProxy: true });
  const via = (forged: string) => `${forged}, 198.51.100.9`;
  await request(spoofed.app).get("/v1/ca").set("X-Forwarded-For", via("10.9.9.1")).expect(200);
  assertError(
    await request(spoofed.app).get("/v1/ca").set("X-Forwarded-For", via("10.9.9.2")),
    "rate_limited",
  );
  const direct = makeApp({ rateLimiter: limiter() });
  await request(direct.app).get("/v1/ca").set("X-Forwarded-For", "203.0.113.1").expect(200);
  assertError(
    await request(direct.app).get("/v1/ca").set("X-Forwarded-For", "203.0.113.2"),
    "rate_limited",
  );
});

test("rate limiter: tokens refill at average/period up to burst, and memory is bounded", () => {
  let now = 0;
  const limiter = new RateLimiter({
    average: 120,
    periodMs: 60_000,
    burst: 480,
    maxClients: 10,
    now: () => now,
  });
  for (let i = 0; i < 480; i++) assert.equal(limiter.take("a").allowed, true);
  assert.deepEqual(limiter.take("a"), { allowed: false, retryAfterSeconds: 1 });
  now += 500; // 2 per second: one token
  assert.equal(limiter.take("a").allowed, true);
  assert.equal(limiter.take("a").allowed, false);
  now += 3_600_000; // never more than burst
  for (let i = 0; i < 480; i++) assert.equal(limiter.take("a").allowed, true);
  assert.equal(limiter.take("a").allowed, false);
  for (let i = 0; i < 1000; i++) limiter.take(`client-${i}`);
  assert.equal(limiter.clients, 10);
  assert.throws(() => new RateLimiter({ average: 0, periodMs: 1, burst: 1 }), TypeError);
});

test("during shutdown, responses close their connection", async () => {
  const { app } = makeApp({ isShuttingDown: () => true });
  const res = await request(app).get("/v1/ca").expect(200);
  assert.equal(res.headers["connection"], "close");
});
