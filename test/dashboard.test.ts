/**
 * The Grafana dashboard (deploy/grafana/kube-join.json) against the real thing: a real
 * Prometheus scrapes a real `kube-join serve` that has served joins (static_jwks and oidc, a cache
 * hit among them, each recorded in its SQLite store), refusals, rate-limited requests and a failed
 * and a good reload; every panel's query and every template variable's query then goes through
 * Prometheus' HTTP API and must parse and return data. Grafana itself is not installable here,
 * so the JSON is also checked against the documented dashboard model (schemaVersion, panels with
 * gridPos, targets with expr and refId, templating.list with a datasource variable, no data
 * source uid of ours).
 *
 * The same Prometheus loads the alerting rules (deploy/prometheus/kube-join.rules.yaml): each must
 * evaluate without error on the live service's series, and none may fire.
 */
import { strict as assert } from "node:assert";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { GENERATED, REPO_ROOT } from "../deploy/generate-monitoring.ts";
import { HttpsIssuer } from "./support/https-issuer.ts";
import { joinRequestBody, newBotPublicKeys, postJoin } from "./support/join-request.ts";
import {
  generateClusterKey,
  mintServiceAccountToken,
  serviceAccountClaims,
} from "./support/jwt.ts";
import { startPrometheus, type PrometheusServer } from "./support/prometheus.ts";
import {
  DEMO_CLUSTER,
  DEMO_RESOURCES,
  runCli,
  startService,
  type ServiceProcess,
} from "./support/service.ts";
import { systemTool } from "./support/system-tools.ts";

const prometheusTool = systemTool("prometheus", "prometheus");

interface Target {
  readonly expr: string;
  readonly refId: string;
  readonly datasource?: { readonly uid?: string };
}
interface Panel {
  readonly id: number;
  readonly title: string;
  readonly type: string;
  readonly gridPos: {
    readonly h: number;
    readonly w: number;
    readonly x: number;
    readonly y: number;
  };
  readonly datasource?: { readonly uid?: string };
  readonly targets: readonly Target[];
}
interface Dashboard {
  readonly schemaVersion: number;
  readonly title: string;
  readonly uid: string;
  readonly panels: readonly Panel[];
  readonly templating: {
    readonly list: readonly {
      name: string;
      type: string;
      query: string | { query: string };
      datasource?: { uid?: string };
    }[];
  };
}

const dashboardText = readFileSync(join(REPO_ROOT, GENERATED.dashboard), "utf8");
const dashboard = JSON.parse(dashboardText) as Dashboard;

/** Grafana's substitutions for the dashboard's variables, as a live dashboard would make them. */
function substitute(expr: string): string {
  return (
    expr
      .replaceAll("$job", "kube-join")
      .replaceAll("$instance", ".+")
      // Grafana's $__rate_interval is at least four scrape intervals; a window covering the whole
      // test keeps every event of it in view.
      .replaceAll("$__rate_interval", "5m")
  );
}

test("the dashboard keeps to Grafana's dashboard model and names no data source of ours", () => {
  assert.equal(typeof dashboard.schemaVersion, "number");
  assert.ok(dashboard.schemaVersion >= 36, "datasource variables with { type, uid } references");
  assert.equal(dashboard.uid, "kube-join");
  const variable = dashboard.templating.list.find((v) => v.name === "datasource");
  assert.ok(variable !== undefined && variable.type === "datasource");
  assert.equal(variable.query, "prometheus");

  const ids = new Set<number>();
  for (const panel of dashboard.panels) {
    assert.ok(!ids.has(panel.id), `panel id ${panel.id} is unique`);
    ids.add(panel.id);
    assert.match(panel.type, /^(timeseries|stat)$/, panel.title);
    const { h, w, x, y } = panel.gridPos;
    for (const n of [h, w, x, y])
      assert.ok(Number.isInteger(n) && n >= 0, `${panel.title}: gridPos`);
    assert.ok(w > 0 && h > 0 && x + w <= 24, `${panel.title}: inside the 24-column grid`);
    assert.equal(panel.datasource?.uid, "${datasource}", `${panel.title}: panel data source`);
    assert.ok(panel.targets.length > 0, `${panel.title}: has a query`);
    const refIds = panel.targets.map((t) => t.refId);
    assert.equal(new Set(refIds).size, refIds.length, `${panel.title}: refIds unique`);
    for (const target of panel.targets) {
      assert.ok(target.expr.length > 0);
      assert.equal(target.datasource?.uid, "${datasource}", `${panel.title}: target data source`);
    }
  }
  // No two panels overlap.
  const cells = new Set<string>();
  for (const { gridPos: g, title } of dashboard.panels) {
    for (let col = g.x; col < g.x + g.w; col++) {
      for (let row = g.y; row < g.y + g.h; row++) {
        assert.ok(!cells.has(`${col},${row}`), `${title} overlaps another panel`);
        cells.add(`${col},${row}`);
      }
    }
  }
  // Every uid in the file is the dashboard's own, Grafana's built-in one or the variable.
  const uids = [...dashboardText.matchAll(/"uid":\s*"([^"]*)"/g)].map((m) => m[1]);
  for (const uid of uids)
    assert.ok(["kube-join", "-- Grafana --", "${datasource}"].includes(uid ?? ""), uid);
  // The list of panels.
  const titles = dashboard.panels.map((p) => p.title.toLowerCase()).join("\n");
  for (const wanted of [
    "joins per second by result",
    "refusals per second by code",
    "join latency",
    "cache hit ratio",
    "rate-limited",
    "reloads",
    "oidc key fetches",
    "process cpu",
    "process memory",
    "expiry headroom",
    "store taking writes",
    "store record latency",
    "locked joins",
  ]) {
    assert.ok(titles.includes(wanted), `no panel for ${wanted}`);
  }
});

let service: ServiceProcess | undefined;
let prometheus: PrometheusServer | undefined;
let issuer: HttpsIssuer | undefined;

const BURST = 20;

function oidcTokenYaml(issuerUrl: string, botName = "example"): string {
  return `kind: token
version: v2
metadata:
  name: oidc-bot
spec:
  roles: [Bot]
  bot_name: ${botName}
  join_method: kubernetes
  kubernetes:
    type: oidc
    oidc:
      issuer: ${issuerUrl}
      insecure_allow_http_issuer: true
    allow:
      - service_account: "default:tbot"
`;
}

before(
  async () => {
    if (prometheusTool.skip) return;
    issuer = await HttpsIssuer.start({ plainHttp: true, path: "/id/DASHBOARD" });
    const clusterKey = generateClusterKey("ES256", { kid: "dashboard-1" });
    issuer.jwks = [clusterKey.jwk];

    service = await startService({
      configYaml: `cluster_name: ${DEMO_CLUSTER}
listen_addr: 127.0.0.1:0
diag_addr: 127.0.0.1:0
resources: [${JSON.stringify(DEMO_RESOURCES)}, ./oidc-token.yaml]
data_dir: ./data
shutdown_timeout: 5s
rate_limit: {average: 1, period: 1h, burst: ${BURST}}
`,
      extraFiles: { "oidc-token.yaml": oidcTokenYaml(issuer.issuer) },
    });
    prometheus = await startPrometheus(prometheusTool.path, {
      targets: [new URL(service.diagUrl).host],
      ruleFiles: [join(REPO_ROOT, GENERATED.rules)],
    });

    // A baseline scraped before any event, so rate() and increase() see each one happen.
    await prometheus.waitFor('up{job="kube-join"} == 1', (v) => v === 1);
    await prometheus.waitFor('count_over_time(up{job="kube-join"}[1m])', (v) => v >= 3);

    // Joins: two with one JWT (a cache miss, then a hit), one through oidc discovery (a key fetch),
    // one refusal; then more requests than the burst allows (rate_limited).
    const minted = await runCli(["demo-token"], { timeoutMs: 20_000 });
    assert.equal(minted.code, 0, minted.stderr);
    const demoJwt = minted.stdout.trim();
    const keys = await newBotPublicKeys("tbot");
    const joinAs = (token: string, idToken: string) =>
      postJoin(service!.baseUrl, joinRequestBody({ token, role: "Bot", idToken, keys }));
    assert.equal((await joinAs("example-bot", demoJwt)).status, 200);
    assert.equal((await joinAs("example-bot", demoJwt)).status, 200);
    const oidcJwt = mintServiceAccountToken(
      clusterKey,
      serviceAccountClaims({
        audience: DEMO_CLUSTER,
        issuer: issuer.issuer,
        issuedAtMs: Date.now(),
      }),
    );
    const viaOidc = await joinAs("oidc-bot", oidcJwt);
    assert.equal(viaOidc.status, 200, JSON.stringify(viaOidc.body));
    assert.equal((await joinAs("no-such-token", demoJwt)).status, 403);
    let limited = 0;
    for (let i = 0; i < BURST && limited === 0; i++) {
      if ((await joinAs("no-such-token", demoJwt)).status === 429) limited++;
    }
    assert.ok(limited > 0, "the rate limit answered 429");

    // A broken reload (a token naming a bot that does not exist), then a good one.
    const tokenFile = join(service.dir, "oidc-token.yaml");
    const count = (msg: string) => service!.logs().filter((l) => l["msg"] === msg).length;
    const FAILED = "resource reload failed; the previous resources keep serving";
    const failedBefore = count(FAILED);
    writeFileSync(tokenFile, oidcTokenYaml(issuer.issuer, "no-such-bot"));
    await service.waitForLog(() => count(FAILED) > failedBefore, 15_000);
    const goodBefore = count("resources reloaded");
    writeFileSync(tokenFile, oidcTokenYaml(issuer.issuer));
    await service.waitForLog(() => count("resources reloaded") > goodBefore, 15_000);
  },
  { timeout: 120_000 },
);

after(async () => {
  await prometheus?.stop();
  await service?.stop();
  await issuer?.stop();
});

interface Series {
  readonly metric: Record<string, string>;
  readonly value: [number, string];
}

async function instant(expr: string): Promise<{ ok: boolean; error?: string; result: Series[] }> {
  const url = `${prometheus!.url}/api/v1/query?query=${encodeURIComponent(expr)}`;
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  const body = (await res.json()) as {
    status: string;
    error?: string;
    data?: { resultType: string; result: Series[] };
  };
  if (body.status !== "success")
    return { ok: false, error: body.error ?? String(res.status), result: [] };
  return { ok: true, result: body.data?.resultType === "vector" ? body.data.result : [] };
}

/**
 * Panels whose numbers only move after an event the test caused: the value that proves the event
 * reached the panel (beyond "some series came back").
 */
const EVENT_CHECKS: Record<string, (series: Series[]) => boolean> = {
  "Refusals per second by code": (s) =>
    s.some((x) => x.metric["code"] === "token_not_found" && Number(x.value[1]) > 0),
  "Verified-token cache hit ratio": (s) => s.some((x) => Number(x.value[1]) > 0),
  "Rate-limited requests per second": (s) => s.some((x) => Number(x.value[1]) > 0),
  "Resource reloads": (s) =>
    s.some((x) => x.metric["result"] === "failure" && Number(x.value[1]) > 0),
  "OIDC key fetches": (s) =>
    s.some((x) => x.metric["result"] === "success" && Number(x.value[1]) > 0),
};

test(
  "every panel's query parses and returns data from a live service",
  { skip: prometheusTool.skip, timeout: 300_000 },
  async (t) => {
    assert.ok(prometheus !== undefined);
    await prometheus.waitFor('up{job="kube-join"} == 1', (v) => v === 1);
    // Until the scrapes after the last event are in: the last reload's success.
    await prometheus.waitFor('kube_join_reloads_total{result="success"}', (v) => v >= 2);
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) {
        await t.test(`${panel.title} (${target.refId})`, async () => {
          const expr = substitute(target.expr);
          const deadline = Date.now() + 20_000;
          let last: Awaited<ReturnType<typeof instant>>;
          for (;;) {
            last = await instant(expr);
            assert.ok(last.ok, `${expr}: ${last.error}`);
            const finite = last.result.filter((s) => Number.isFinite(Number(s.value[1])));
            const check = EVENT_CHECKS[panel.title];
            if (finite.length > 0 && (check === undefined || check(finite))) return;
            if (Date.now() > deadline) break;
            await new Promise((resolve) => setTimeout(resolve, 500));
          }
          assert.fail(
            `${panel.title}: ${expr} returned no usable data: ${JSON.stringify(last.result)}`,
          );
        });
      }
    }
  },
);

test(
  "the template variables' queries find the job and the instance",
  { skip: prometheusTool.skip, timeout: 30_000 },
  async () => {
    assert.ok(prometheus !== undefined && service !== undefined);
    for (const variable of dashboard.templating.list.filter((v) => v.type === "query")) {
      const query = typeof variable.query === "string" ? variable.query : variable.query.query;
      assert.equal(variable.datasource?.uid, "${datasource}");
      const m = /^label_values\((.+), (\w+)\)$/.exec(query);
      assert.ok(m !== null, `${variable.name}: ${query} is a label_values query`);
      const [, selector, label] = m;
      const url = `${prometheus.url}/api/v1/label/${label}/values?match[]=${encodeURIComponent(substitute(selector ?? ""))}`;
      const body = (await (await fetch(url)).json()) as { status: string; data: string[] };
      assert.equal(body.status, "success");
      const expected = label === "job" ? "kube-join" : new URL(service.diagUrl).host;
      assert.ok(body.data.includes(expected), `${variable.name}: ${JSON.stringify(body.data)}`);
    }
  },
);

test(
  "every alerting rule evaluates on the live service's series, and none fires",
  { skip: prometheusTool.skip, timeout: 60_000 },
  async () => {
    assert.ok(prometheus !== undefined);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const res = await fetch(`${prometheus.url}/api/v1/rules?type=alert`);
      const body = (await res.json()) as {
        data: {
          groups: {
            rules: {
              name: string;
              health: string;
              lastError?: string;
              state: string;
              lastEvaluation: string;
            }[];
          }[];
        };
      };
      const rules = body.data.groups.flatMap((g) => g.rules);
      assert.ok(rules.length >= 11, `rules loaded: ${rules.length}`);
      const evaluated = rules.every((r) => !r.lastEvaluation.startsWith("0001-"));
      if (evaluated || Date.now() > deadline) {
        for (const rule of rules) {
          assert.equal(rule.health, "ok", `${rule.name}: ${rule.lastError ?? ""}`);
          assert.notEqual(rule.state, "firing", `${rule.name} fires on a healthy service`);
        }
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  },
);
