/**
 * `oidc` join tokens end to end: the real service (`startJoinService`, both listeners on
 * 127.0.0.1) configured with `oidc.ca_file`, joining bots whose tokens are signed by keys a real
 * HTTPS issuer publishes through OIDC discovery.
 */
import { strict as assert } from "node:assert";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { pino } from "pino";
import { loadConfig } from "../src/config/config.ts";
import { ConfigError } from "../src/errors.ts";
import { startJoinService, type RunningService } from "../src/service/server.ts";
import { createTestCa, HttpsIssuer } from "./support/https-issuer.ts";
import {
  generateClusterKey,
  mintServiceAccountToken,
  serviceAccountClaims,
  TEST_AUDIENCE,
  TEST_NOW_MS,
  type ClusterKey,
} from "./support/jwt.ts";
import {
  joinRequestBody,
  newBotPublicKeys,
  postJoin,
  type JoinHttpResult,
} from "./support/join-request.ts";

const COOLDOWN_MS = 30_000;

let dir: string;
let issuer: HttpsIssuer;
let deadIssuer: string;
let service: RunningService;
let key1: ClusterKey;
let key2: ClusterKey;
let clock = TEST_NOW_MS;
const logLines: string[] = [];
const botKeys = await newBotPublicKeys("tbot");

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "kube-join-oidc-e2e-"));
  const ca = await createTestCa();
  issuer = await HttpsIssuer.start({ ca, path: "/id/E2E" });
  key1 = generateClusterKey("RS256", { kid: "rotation-1" });
  key2 = generateClusterKey("ES256", { kid: "rotation-2" });
  issuer.jwks = [key1.jwk];
  // An issuer that was started and stopped: its port refuses connections.
  const gone = await HttpsIssuer.start({ ca });
  deadIssuer = gone.issuer;
  await gone.stop();

  writeFileSync(join(dir, "issuer-ca.pem"), ca.certPem);
  writeFileSync(
    join(dir, "resources.yaml"),
    [
      "kind: bot\nversion: v1\nmetadata:\n  name: example\nspec:\n  roles: [access]\n",
      oidcToken("eks-bot", issuer.issuer),
      oidcToken("dead-bot", deadIssuer),
    ].join("---\n"),
  );
  writeFileSync(
    join(dir, "config.yaml"),
    [
      `cluster_name: ${TEST_AUDIENCE}`,
      "listen_addr: 127.0.0.1:0",
      "diag_addr: 127.0.0.1:0",
      "resources: [./resources.yaml]",
      "data_dir: ./data",
      "audit: {file: ./audit.log}",
      "oidc: {ca_file: ./issuer-ca.pem}",
      // 500 joins from one address in this file: keep the rate limiter out of the way.
      "rate_limit: {average: 100000, burst: 100000}",
    ].join("\n"),
  );
  const log = pino(
    { level: "info" },
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(chunk.toString());
        done();
      },
    }),
  );
  service = await startJoinService(await loadConfig(join(dir, "config.yaml")), {
    log,
    now: () => clock,
  });
});

after(async () => {
  await service?.shutdown();
  await issuer?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function oidcToken(name: string, issuerUrl: string): string {
  return [
    "kind: token",
    "version: v2",
    `metadata:\n  name: ${name}`,
    "spec:",
    "  roles: [Bot]",
    "  bot_name: example",
    "  join_method: kubernetes",
    "  kubernetes:",
    "    type: oidc",
    `    oidc:\n      issuer: ${issuerUrl}`,
    "    allow:",
    '      - service_account: "default:tbot"',
    "",
  ].join("\n");
}

function tokenFor(key: ClusterKey, claims: { issuer?: string; kid?: string } = {}): string {
  return mintServiceAccountToken(
    key,
    serviceAccountClaims({ issuer: claims.issuer ?? issuer.issuer, issuedAtMs: clock }),
    claims.kid === undefined ? {} : { kid: claims.kid },
  );
}

function joinWith(idToken: string, token = "eks-bot"): Promise<JoinHttpResult> {
  return postJoin(service.joinUrl, joinRequestBody({ token, role: "Bot", idToken, keys: botKeys }));
}

function errorOf(body: Record<string, unknown>): { code: string; message: string } {
  return body["error"] as { code: string; message: string };
}

function fetches(): { discovery: number; keys: number } {
  return {
    discovery: issuer.requests(issuer.discoveryPath),
    keys: issuer.requests(issuer.keysPath),
  };
}

describe("oidc join through the running service", () => {
  let firstJwt: string;

  test("a bot joins with a token the issuer's published key verifies", async () => {
    firstJwt = tokenFor(key1);
    const { status, body } = await joinWith(firstJwt);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body["bot_name"], "example");
    assert.deepEqual(body["join_attrs"], {
      kubernetes: {
        subject: "system:serviceaccount:default:tbot",
        namespace: "default",
        service_account: "tbot",
        pod: "tbot-6d4cf56db6-x7k2p",
      },
    });
    assert.match(String(body["tls_cert"]), /^-----BEGIN CERTIFICATE-----/);
    assert.deepEqual(fetches(), { discovery: 1, keys: 1 });

    const metrics = await (await fetch(`${service.diagUrl}/metrics`)).text();
    const label = `issuer="${issuer.issuer}"`;
    assert.match(
      metrics,
      new RegExp(`kube_join_oidc_key_fetches_total\\{${label},result="success"\\} 1`),
    );
    assert.match(metrics, new RegExp(`kube_join_oidc_key_set_age_seconds\\{${label}\\} 0`));
  });

  test("a token whose iss is another issuer is refused: jwt_issuer_mismatch", async () => {
    const { status, body } = await joinWith(tokenFor(key1, { issuer: "https://other.example" }));
    assert.equal(status, 401);
    assert.equal(errorOf(body).code, "jwt_issuer_mismatch");
  });

  test("the key rotates: one refetch, the new key joins, the removed key is refused", async () => {
    issuer.jwks = [key2.jwk];
    clock += COOLDOWN_MS;
    const rotated = await joinWith(tokenFor(key2));
    assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
    assert.deepEqual(fetches(), { discovery: 1, keys: 2 });

    // The very JWT that joined before: the verified-token cache must not answer for a gone key.
    const removed = await joinWith(firstJwt);
    assert.equal(removed.status, 401);
    assert.equal(errorOf(removed.body).code, "jwt_signature_invalid");
    assert.deepEqual(fetches(), { discovery: 1, keys: 2 });
  });

  test("500 joins naming unknown kids inside the cooldown cause one fetch", async () => {
    clock += COOLDOWN_MS;
    // In waves of 50 concurrent joins: concurrency is part of what must cost one fetch.
    for (let wave = 0; wave < 10; wave++) {
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          joinWith(tokenFor(key2, { kid: `forged-${wave}-${i}` })),
        ),
      );
      for (const { status, body } of results) {
        assert.equal(status, 401);
        assert.equal(errorOf(body).code, "jwt_signature_invalid");
      }
    }
    assert.deepEqual(fetches(), { discovery: 1, keys: 3 });
  });

  test("an issuer never reached: keys_unavailable (503) without the issuer's details", async () => {
    const { status, body } = await joinWith(tokenFor(key2, { issuer: deadIssuer }), "dead-bot");
    assert.equal(status, 503);
    assert.equal(errorOf(body).code, "keys_unavailable");
    assert.match(errorOf(body).message, /\(issuer unreachable\)/);
    assert.doesNotMatch(errorOf(body).message, /127\.0\.0\.1|ECONNREFUSED/);
    assert.ok(
      logLines.some(
        (l) => l.includes("fetching an oidc issuer's keys failed") && l.includes("ECONNREFUSED"),
      ),
      "the detail is in the log",
    );
  });

  test("the issuer goes away: joins keep working on the cached keys", async () => {
    await issuer.stop();
    clock += 25 * 60 * 60 * 1000;
    const { status, body } = await joinWith(tokenFor(key2));
    assert.equal(status, 200, JSON.stringify(body));
    const metrics = await (await fetch(`${service.diagUrl}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(
        `kube_join_oidc_key_fetches_total\\{issuer="${issuer.issuer}",result="failure"\\} 1`,
      ),
    );
  });

  test("no JWT appears in the log or the audit trail", async () => {
    const audit = readFileSync(join(dir, "audit.log"), "utf8");
    for (const text of [logLines.join(""), audit]) {
      assert.doesNotMatch(text, /eyJ[\w-]+\.eyJ/);
    }
  });
});

test("an unreadable oidc.ca_file stops start-up with a message naming it", async () => {
  const file = join(dir, "bad-ca.yaml");
  writeFileSync(
    file,
    [
      `cluster_name: ${TEST_AUDIENCE}`,
      "listen_addr: 127.0.0.1:0",
      "diag_addr: 127.0.0.1:0",
      "resources: [./resources.yaml]",
      "oidc: {ca_file: ./missing-ca.pem}",
    ].join("\n"),
  );
  await assert.rejects(
    startJoinService(await loadConfig(file), { log: pino({ level: "silent" }) }),
    (err: unknown) =>
      err instanceof ConfigError &&
      /missing-ca\.pem: cannot read the extra CA file for OIDC issuers \(ENOENT\)/.test(
        err.problems[0] ?? "",
      ),
  );
});
