import { strict as assert } from "node:assert";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, test } from "node:test";
import { createDiagApp } from "../src/http/diag.ts";
import { createMetrics } from "../src/metrics/metrics.ts";
import { startPrometheus } from "./support/prometheus.ts";
import type { PrometheusServer } from "./support/prometheus.ts";
import { systemTool } from "./support/system-tools.ts";

const prometheusTool = systemTool("prometheus", "prometheus");
const NOW = new Date("2026-01-02T03:04:05.000Z");

const metrics = createMetrics();
let server: Server | undefined;
let prometheus: PrometheusServer | undefined;

before(async () => {
  if (prometheusTool.skip) return;
  const app = createDiagApp({ metrics, isReady: () => true });
  server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, "127.0.0.1", () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  prometheus = await startPrometheus(prometheusTool.path, { targets: [`127.0.0.1:${port}`] });
});

after(async () => {
  await prometheus?.stop();
  await new Promise((resolve) =>
    server === undefined ? resolve(undefined) : server.close(resolve),
  );
});

test(
  "a real Prometheus scrapes the diagnostics listener and sees a join",
  { skip: prometheusTool.skip, timeout: 60_000 },
  async () => {
    assert.ok(prometheus !== undefined);
    assert.equal(await prometheus.waitFor('up{job="kube-join"} == 1', (v) => v === 1), 1);
    metrics.onJoin({
      time: NOW,
      remoteAddr: "127.0.0.1",
      tokenName: "example-bot",
      botName: "example",
      joinMethod: "kubernetes",
      attrs: { namespace: "default", serviceAccount: "tbot", pod: "tbot-1" },
      cache: "miss",
      durationSeconds: 0.002,
      outcome: { ok: true, tlsSerial: "01", sshSerial: "1", expires: NOW },
    });
    const joins = await prometheus.waitFor(
      'kube_join_attempts_total{job="kube-join",result="success",code="ok"}',
      (v) => v >= 1,
    );
    assert.equal(joins, 1);
  },
);
