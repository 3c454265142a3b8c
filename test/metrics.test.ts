import { spawnSync } from "node:child_process";
import { strict as assert } from "node:assert";
import { test } from "node:test";
import type { ErrorCode } from "../src/errors.ts";
import type { JoinAttempt } from "../src/join/events.ts";
import { renderKubernetesAttributes } from "../src/methods/kubernetes/join-attributes.ts";
import { createMetrics } from "../src/metrics/metrics.ts";
import { systemTool } from "./support/system-tools.ts";

const NOW = new Date("2026-01-02T03:04:05.000Z");

// Distinctive strings: none of them may ever show up in the exposition text.
const SECRETS = {
  tokenName: "token-name-from-request-7f3a",
  remoteAddr: "203.0.113.77",
  namespace: "ns-9c1e",
  serviceAccount: "sa-5b2d",
  pod: "pod-e4f0",
};

function success(overrides: Partial<JoinAttempt> = {}): JoinAttempt {
  return {
    time: NOW,
    remoteAddr: SECRETS.remoteAddr,
    tokenName: SECRETS.tokenName,
    botName: "example",
    joinMethod: "kubernetes",
    attrs: renderKubernetesAttributes({
      namespace: SECRETS.namespace,
      serviceAccount: SECRETS.serviceAccount,
      pod: SECRETS.pod,
    }),
    cache: "miss",
    durationSeconds: 0.004,
    outcome: { ok: true, tlsSerial: "01ab", sshSerial: "42", expires: NOW },
    ...overrides,
  };
}

function failure(code: ErrorCode, overrides: Partial<JoinAttempt> = {}): JoinAttempt {
  return success({
    attrs: undefined,
    cache: undefined,
    outcome: { ok: false, code, message: "refused" },
    ...overrides,
  });
}

/** The value of one sample, labels given in exposition order; undefined when absent. */
function sample(text: string, name: string, labels = ""): number | undefined {
  const head = labels === "" ? `${name} ` : `${name}{${labels}} `;
  const line = text.split("\n").find((l) => l.startsWith(head));
  return line === undefined ? undefined : Number(line.slice(head.length));
}

test("join attempts are counted by result and code, with latency, certificates and cache", async (t) => {
  const cases: {
    name: string;
    attempts: JoinAttempt[];
    expect: [string, string, number][];
  }[] = [
    {
      name: "one success from a cache miss",
      attempts: [success()],
      expect: [
        ["kube_join_attempts_total", 'result="success",code="ok"', 1],
        ["kube_join_certificates_issued_total", 'type="tls"', 1],
        ["kube_join_certificates_issued_total", 'type="ssh"', 1],
        ["kube_join_verified_token_cache_lookups_total", 'result="miss"', 1],
        ["kube_join_verified_token_cache_lookups_total", 'result="hit"', 0],
        ["kube_join_attempt_duration_seconds_count", 'result="success"', 1],
        ["kube_join_attempt_duration_seconds_bucket", 'le="0.005",result="success"', 1],
        ["kube_join_attempt_duration_seconds_bucket", 'le="0.0025",result="success"', 0],
      ],
    },
    {
      name: "a refused token before verification: no certificates, no cache lookup",
      attempts: [failure("token_not_found"), failure("token_not_found")],
      expect: [
        ["kube_join_attempts_total", 'result="failure",code="token_not_found"', 2],
        ["kube_join_attempts_total", 'result="success",code="ok"', 0],
        ["kube_join_certificates_issued_total", 'type="tls"', 0],
        ["kube_join_verified_token_cache_lookups_total", 'result="miss"', 0],
        ["kube_join_attempt_duration_seconds_count", 'result="failure"', 2],
      ],
    },
    {
      name: "a cache hit whose allow rule no longer matches",
      attempts: [failure("no_matching_allow_rule", { cache: "hit" }), success({ cache: "hit" })],
      expect: [
        ["kube_join_attempts_total", 'result="failure",code="no_matching_allow_rule"', 1],
        ["kube_join_attempts_total", 'result="success",code="ok"', 1],
        ["kube_join_verified_token_cache_lookups_total", 'result="hit"', 2],
        ["kube_join_certificates_issued_total", 'type="ssh"', 1],
      ],
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const metrics = createMetrics();
      for (const attempt of c.attempts) metrics.onJoin(attempt);
      const text = await metrics.render();
      for (const [name, labels, value] of c.expect) {
        assert.equal(sample(text, name, labels), value, `${name}{${labels}}`);
      }
    });
  }
});

test("every failure code has a zero series from the start", async () => {
  const text = await createMetrics().render();
  assert.equal(sample(text, "kube_join_attempts_total", 'result="failure",code="jwt_expired"'), 0);
  assert.equal(sample(text, "kube_join_attempts_total", 'result="failure",code="internal"'), 0);
  assert.equal(sample(text, "kube_join_reloads_total", 'result="failure"'), 0);
  assert.equal(sample(text, "kube_join_rate_limited_requests_total"), 0);
});

test("reloads count by result; only a good one moves the last-good-reload time", async () => {
  const metrics = createMetrics();
  metrics.recordReload(true, NOW);
  metrics.recordReload(false, new Date(NOW.getTime() + 60_000));
  const text = await metrics.render();
  assert.equal(sample(text, "kube_join_reloads_total", 'result="success"'), 1);
  assert.equal(sample(text, "kube_join_reloads_total", 'result="failure"'), 1);
  assert.equal(
    sample(text, "kube_join_last_successful_reload_timestamp_seconds"),
    NOW.getTime() / 1000,
  );
});

test("gauges and counters set by the service and the key source", async () => {
  const metrics = createMetrics();
  metrics.setResourcesLoaded({ bot: 3, token: 5 });
  metrics.setResourcesLoaded({ bot: 2, token: 4 });
  metrics.recordRateLimited();
  metrics.recordRateLimited();
  metrics.setCacheEntries(17);
  metrics.recordKeyFetch("https://issuer.example.com", true);
  metrics.recordKeyFetch("https://issuer.example.com", false);
  metrics.recordKeyFetch("https://issuer.example.com", false);
  metrics.setKeySetAge("https://issuer.example.com", 42);
  const text = await metrics.render();
  const issuer = 'issuer="https://issuer.example.com"';
  const expect: [string, string, number][] = [
    ["kube_join_resources_loaded", 'kind="bot"', 2],
    ["kube_join_resources_loaded", 'kind="token"', 4],
    ["kube_join_rate_limited_requests_total", "", 2],
    ["kube_join_verified_token_cache_entries", "", 17],
    ["kube_join_oidc_key_fetches_total", `${issuer},result="success"`, 1],
    ["kube_join_oidc_key_fetches_total", `${issuer},result="failure"`, 2],
    ["kube_join_oidc_key_set_age_seconds", issuer, 42],
  ];
  for (const [name, labels, value] of expect) {
    assert.equal(sample(text, name, labels), value, `${name}{${labels}}`);
  }
});

test("capacity, readiness, CA expiry and last-reload gauges for the alerting rules", async () => {
  const metrics = createMetrics();
  const before = await metrics.render();
  assert.equal(sample(before, "kube_join_ready"), 0, "not ready until the service says so");

  metrics.setCacheCapacity(100_000);
  metrics.setRateLimiterClients(12, 65_536);
  const notAfter = new Date("2036-01-02T03:04:05.000Z");
  metrics.setCaCertificateExpiry(notAfter);
  metrics.setReady(true);
  metrics.recordReload(true, NOW);
  const good = await metrics.render();
  const expect: [string, number][] = [
    ["kube_join_verified_token_cache_capacity", 100_000],
    ["kube_join_rate_limiter_clients", 12],
    ["kube_join_rate_limiter_clients_capacity", 65_536],
    ["kube_join_ca_certificate_expiry_timestamp_seconds", notAfter.getTime() / 1000],
    ["kube_join_ready", 1],
    ["kube_join_last_reload_successful", 1],
  ];
  for (const [name, value] of expect) assert.equal(sample(good, name), value, name);

  metrics.recordReload(false, new Date(NOW.getTime() + 1000));
  metrics.setReady(false);
  const bad = await metrics.render();
  assert.equal(sample(bad, "kube_join_last_reload_successful"), 0);
  assert.equal(sample(bad, "kube_join_ready"), 0);
  metrics.recordReload(true, new Date(NOW.getTime() + 2000));
  assert.equal(sample(await metrics.render(), "kube_join_last_reload_successful"), 1);
});

test("latency and the key fetches of configured issuers have zero series before any event", async () => {
  const metrics = createMetrics();
  metrics.declareOidcIssuers(["https://oidc.example.com"]);
  const text = await metrics.render();
  const issuer = 'issuer="https://oidc.example.com"';
  assert.equal(sample(text, "kube_join_oidc_key_fetches_total", `${issuer},result="success"`), 0);
  assert.equal(sample(text, "kube_join_oidc_key_fetches_total", `${issuer},result="failure"`), 0);
  assert.equal(sample(text, "kube_join_attempt_duration_seconds_count", 'result="success"'), 0);
  assert.equal(sample(text, "kube_join_attempt_duration_seconds_count", 'result="failure"'), 0);
  metrics.recordKeyFetch("https://oidc.example.com", true);
  const after = await metrics.render();
  assert.equal(sample(after, "kube_join_oidc_key_fetches_total", `${issuer},result="success"`), 1);
});

test("attemptCounts reads the attempts counter back, zero series left out", async () => {
  const metrics = createMetrics();
  assert.deepEqual(await metrics.attemptCounts(), []);
  metrics.onJoin(success());
  metrics.onJoin(success());
  metrics.onJoin(failure("token_not_found"));
  const counts = await metrics.attemptCounts();
  assert.deepEqual(
    [...counts].sort((a, b) => a.code.localeCompare(b.code)),
    [
      { result: "success", code: "ok", count: 2 },
      { result: "failure", code: "token_not_found", count: 1 },
    ],
  );
});

test("state gauges are read at scrape time through onScrape hooks", async () => {
  const metrics = createMetrics();
  let entries = 3;
  metrics.onScrape(() => metrics.setCacheEntries(entries));
  assert.equal(sample(await metrics.render(), "kube_join_verified_token_cache_entries"), 3);
  entries = 5; // no join in between: the next scrape still sees the new state
  assert.equal(sample(await metrics.render(), "kube_join_verified_token_cache_entries"), 5);
});

test("each instance has its own registry, with the default process metrics", async () => {
  const a = createMetrics();
  const b = createMetrics();
  a.onJoin(success());
  const [textA, textB] = await Promise.all([a.render(), b.render()]);
  assert.equal(sample(textA, "kube_join_attempts_total", 'result="success",code="ok"'), 1);
  assert.equal(sample(textB, "kube_join_attempts_total", 'result="success",code="ok"'), 0);
  assert.match(textB, /^process_cpu_seconds_total \d/m);
  assert.match(textB, /^nodejs_heap_size_used_bytes \d/m);
  assert.match(a.contentType, /^text\/plain; version=0\.0\.4/);
});

test("no token name, client address or service-account identity becomes a label", async () => {
  const metrics = createMetrics();
  metrics.onJoin(success());
  metrics.onJoin(failure("jwt_expired"));
  const text = await metrics.render();
  for (const [field, value] of Object.entries(SECRETS)) {
    assert.ok(!text.includes(value), `${field} leaked into the metrics`);
  }
});

const promtool = systemTool("promtool", "prometheus");

test("promtool check metrics finds nothing to report", { skip: promtool.skip }, async () => {
  const metrics = createMetrics();
  metrics.onJoin(success());
  metrics.onJoin(failure("jwt_signature_invalid"));
  metrics.recordReload(true, NOW);
  metrics.setResourcesLoaded({ bot: 1, token: 1 });
  metrics.recordKeyFetch("https://issuer.example.com", true);
  metrics.setKeySetAge("https://issuer.example.com", 1);
  metrics.setCacheCapacity(100);
  metrics.setRateLimiterClients(1, 10);
  metrics.setCaCertificateExpiry(new Date("2036-01-02T03:04:05.000Z"));
  metrics.setReady(true);
  const run = spawnSync(promtool.path, ["check", "metrics"], {
    input: await metrics.render(),
    encoding: "utf8",
    timeout: 10_000,
  });
  assert.equal(run.error, undefined);
  assert.equal(run.stdout + run.stderr, "");
  assert.equal(run.status, 0);
});
