/**
 * A real Prometheus (Debian's `prometheus` package) scrapes the diagnostics listener of the real
 * `kube-join serve` process every second; the test reads `up` and the join counters back through
 * Prometheus' HTTP query API after real joins.
 */
import { strict as assert } from "node:assert";
import { after, before, test } from "node:test";
import { startPrometheus } from "./support/prometheus.ts";
import type { PrometheusServer } from "./support/prometheus.ts";
import { runCli, startService } from "./support/service.ts";
import type { ServiceProcess } from "./support/service.ts";
import { systemTool } from "./support/system-tools.ts";
import { joinRequestBody, newBotPublicKeys, postJoin } from "./support/join-request.ts";

const prometheusTool = systemTool("prometheus", "prometheus");

let service: ServiceProcess | undefined;
let prometheus: PrometheusServer | undefined;

before(
  async () => {
    if (prometheusTool.skip) return;
    service = await startService();
    prometheus = await startPrometheus(prometheusTool.path, {
      targets: [new URL(service.diagUrl).host],
    });
  },
  { timeout: 60_000 },
);

after(async () => {
  await prometheus?.stop();
  await service?.stop();
});

test(
  "a real Prometheus scrapes the service's diagnostics listener and sees its joins",
  { skip: prometheusTool.skip, timeout: 60_000 },
  async () => {
    assert.ok(service !== undefined && prometheus !== undefined);
    assert.equal(await prometheus.waitFor('up{job="kube-join"} == 1', (v) => v === 1), 1);

    const minted = await runCli(["demo-token"], { timeoutMs: 20_000 });
    assert.equal(minted.code, 0, minted.stderr);
    const idToken = minted.stdout.trim();
    const join = async (token: string) =>
      postJoin(
        service!.baseUrl,
        joinRequestBody({ token, role: "Bot", idToken, keys: await newBotPublicKeys("tbot") }),
      );
    const ok = await join("example-bot");
    assert.equal(ok.status, 200, JSON.stringify(ok.body));
    const refused = await join("no-such-token");
    assert.equal(refused.status, 403);

    const cases: [string, number][] = [
      ['kube_join_attempts_total{job="kube-join",result="success",code="ok"}', 1],
      ['kube_join_attempts_total{job="kube-join",result="failure",code="token_not_found"}', 1],
      ['kube_join_certificates_issued_total{job="kube-join",type="ssh"}', 1],
      ['kube_join_resources_loaded{job="kube-join",kind="token"}', 1],
    ];
    for (const [expr, value] of cases) {
      assert.equal(await prometheus.waitFor(expr, (v) => v >= value), value, expr);
    }
  },
);
