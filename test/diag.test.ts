import { strict as assert } from "node:assert";
import { test } from "node:test";
import request from "supertest";
import { createDiagApp } from "../src/http/diag.ts";
import { renderKubernetesAttributes } from "../src/methods/kubernetes/join-attributes.ts";
import { createMetrics } from "../src/metrics/metrics.ts";
import type { Metrics } from "../src/metrics/metrics.ts";

const NOW = new Date("2026-01-02T03:04:05.000Z");

function appWith(ready: boolean, metrics: Metrics = createMetrics()) {
  const logged: unknown[] = [];
  const app = createDiagApp({
    metrics,
    isReady: () => ready,
    logger: { error: (details) => logged.push(details.err) },
  });
  return { app, logged };
}

test("diag endpoints answer with status, content type and body", async (t) => {
  const cases: {
    name: string;
    ready: boolean;
    method: "get" | "post" | "delete" | "head";
    path: string;
    status: number;
    type: RegExp;
    body?: unknown;
    allow?: string;
  }[] = [
    {
      name: "healthz while not ready",
      ready: false,
      method: "get",
      path: "/healthz",
      status: 200,
      type: /^application\/json/,
      body: { status: "ok" },
    },
    {
      name: "readyz when ready",
      ready: true,
      method: "get",
      path: "/readyz",
      status: 200,
      type: /^application\/json/,
      body: { status: "ready" },
    },
    {
      name: "readyz before resources and CA are loaded",
      ready: false,
      method: "get",
      path: "/readyz",
      status: 503,
      type: /^application\/json/,
      body: {
        error: {
          code: "not_ready",
          message: "Resources or the certificate authority are not loaded yet.",
        },
      },
    },
    {
      name: "an unknown path",
      ready: true,
      method: "get",
      path: "/v1/join",
      status: 404,
      type: /^application\/json/,
      body: { error: { code: "not_found", message: "No such endpoint." } },
    },
    {
      name: "a known path with the wrong method",
      ready: true,
      method: "post",
      path: "/metrics",
      status: 405,
      type: /^application\/json/,
      body: {
        error: { code: "method_not_allowed", message: "POST is not allowed here; use GET." },
      },
      allow: "GET, HEAD",
    },
    {
      name: "DELETE on readyz",
      ready: true,
      method: "delete",
      path: "/readyz",
      status: 405,
      type: /^application\/json/,
      allow: "GET, HEAD",
    },
    {
      name: "HEAD on healthz",
      ready: true,
      method: "head",
      path: "/healthz",
      status: 200,
      type: /^application\/json/,
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const { app } = appWith(c.ready);
      const res = await request(app)[c.method](c.path);
      assert.equal(res.status, c.status);
      assert.match(res.headers["content-type"] ?? "", c.type);
      if (c.body !== undefined) assert.deepEqual(res.body, c.body);
      if (c.allow !== undefined) assert.equal(res.headers["allow"], c.allow);
      assert.equal(res.headers["x-powered-by"], undefined);
    });
  }
});

test("GET /metrics serves the exposition text of the metrics it was given", async () => {
  const metrics = createMetrics();
  metrics.recordReload(true, NOW);
  metrics.onJoin({
    time: NOW,
    remoteAddr: "127.0.0.1",
    tokenName: "example-bot",
    botName: "example",
    joinMethod: "kubernetes",
    attrs: renderKubernetesAttributes({
      namespace: "default",
      serviceAccount: "tbot",
      pod: "tbot-1",
    }),
    cache: "miss",
    durationSeconds: 0.002,
    outcome: { ok: true, tlsSerial: "01", sshSerial: "1", expires: NOW },
  });
  const { app } = appWith(true, metrics);
  const res = await request(app).get("/metrics");
  assert.equal(res.status, 200);
  assert.equal(res.headers["content-type"], metrics.contentType);
  assert.equal(res.headers["cache-control"], "no-store");
  assert.match(res.text, /^kube_join_attempts_total\{result="success",code="ok"\} 1$/m);
  assert.match(res.text, /^kube_join_last_successful_reload_timestamp_seconds 1767323045$/m);
});

test("a metrics failure is a generic internal error, details only in the log", async () => {
  const broken: Metrics = {
    ...createMetrics(),
    render: () => Promise.reject(new Error("collector exploded at /srv/secret/path")),
  };
  const { app, logged } = appWith(true, broken);
  const res = await request(app).get("/metrics");
  assert.equal(res.status, 500);
  assert.deepEqual(res.body, {
    error: {
      code: "internal",
      message: "internal error; the details are in the server log",
    },
  });
  assert.ok(!res.text.includes("/srv/secret/path"));
  assert.equal(logged.length, 1);
  assert.match(String(logged[0]), /collector exploded/);
});
