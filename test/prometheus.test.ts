/**
 * A real Prometheus (Debian's `prometheus` package) scrapes the diagnostics listener of the real
 * `kube-join serve` process every second; the test reads `up` and the join counters back through
 * Prometheus' HTTP query API after real joins.
 */
import { strict as assert } from "node:assert";
import { generateKeyPairSync } from "node:crypto";
import { after, before, test } from "node:test";
import { startPrometheus } from "./support/prometheus.ts";
import type { PrometheusServer } from "./support/prometheus.ts";
import { runCli, startService } from "./support/service.ts";
import type { ServiceProcess } from "./support/service.ts";
import { systemTool } from "./support/system-tools.ts";
import { ed25519AuthorizedKey } from "../src/ca/ssh.ts";

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

function sshEd25519Line(): string {
  return ed25519AuthorizedKey(generateKeyPairSync("ed25519").publicKey, "tbot");
}

async function join(baseUrl: string, token: string, idToken: string): Promise<Response> {
  return fetch(`${baseUrl}/v1/join`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      token,
      role: "Bot",
      id_token: idToken,
      public_tls_key: generateKeyPairSync("ec", { namedCurve: "P-256" })
        .publicKey.export({ type: "spki", format: "pem" })
        .toString(),
      public_ssh_key: sshEd25519Line(),
    }),
    signal: AbortSignal.timeout(10_000),
  });
}

test(
  "a real Prometheus scrapes the service's diagnostics listener and sees its joins",
  { skip: prometheusTool.skip, timeout: 60_000 },
  async () => {
    assert.ok(service !== undefined && prometheus !== undefined);
    assert.equal(await prometheus.waitFor('up{job="kube-join"} == 1', (v) => v === 1), 1);

    const minted = await runCli(["demo-token"], { timeoutMs: 20_000 });
    assert.equal(minted.code, 0, minted.stderr);
    const idToken = minted.stdout.trim();
    const ok = await join(service.baseUrl, "example-bot", idToken);
    assert.equal(ok.status, 200, await ok.clone().text());
    const refused = await join(service.baseUrl, "no-such-token", idToken);
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
