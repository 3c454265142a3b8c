/**
 * The alerting rules and the Prometheus Operator objects (deploy/prometheus/alerts.ts and what it
 * generates): the committed files are what the source generates, the real `promtool` accepts the
 * rules (plain and inside the PrometheusRule) and passes their unit tests, every alert has its
 * annotations, severity and a firing and a quiet case, every metric a rule reads exists, and the
 * ServiceMonitor (rendered by the real `kubectl kustomize`) selects the Service's diag port.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { parse as parseYaml, parseAllDocuments } from "yaml";
import { GENERATED, REPO_ROOT, staleMonitoringFiles } from "../deploy/generate-monitoring.ts";
import { ALERT_GROUPS, expandTemplate } from "../deploy/prometheus/alerts.ts";
import { createMetrics } from "../src/metrics/metrics.ts";
import { systemTool } from "./support/system-tools.ts";

const promtool = systemTool("promtool", "prometheus");
const kubectl = systemTool("kubectl", "kubectl");

const read = (path: string): string => readFileSync(join(REPO_ROOT, path), "utf8");
const tmp = mkdtempSync(join(tmpdir(), "kube-join-monitoring-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

interface RuleFile {
  groups: { name: string; rules: Record<string, unknown>[] }[];
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
}

function objects(text: string): K8sObject[] {
  return parseAllDocuments(text).map((d) => d.toJS() as K8sObject);
}

function runPromtool(args: string[], cwd = REPO_ROOT): string {
  const run = spawnSync(promtool.path, args, { cwd, encoding: "utf8", timeout: 60_000 });
  assert.equal(run.error, undefined);
  assert.equal(run.status, 0, `promtool ${args.join(" ")}:\n${run.stdout}${run.stderr}`);
  return run.stdout + run.stderr;
}

test("the committed rules, tests, PrometheusRule and dashboard are what the sources generate", async () => {
  assert.deepEqual(
    await staleMonitoringFiles(),
    [],
    "run `npm run gen:monitoring` and commit the result",
  );
});

test("the PrometheusRule carries exactly the plain rule groups", () => {
  const plain = parseYaml(read(GENERATED.rules)) as RuleFile;
  const rule = objects(read(GENERATED.operator)).find((o) => o.kind === "PrometheusRule");
  assert.ok(rule !== undefined);
  assert.equal(rule.apiVersion, "monitoring.coreos.com/v1");
  assert.deepEqual(rule.spec, plain);
});

test("every alert has a severity, a summary, a description and both kinds of test case", () => {
  const plain = parseYaml(read(GENERATED.rules)) as RuleFile;
  const tests = parseYaml(read(GENERATED.ruleTests)) as {
    tests: { alert_rule_test: { alertname: string; exp_alerts: unknown[] }[] }[];
  };
  const names = plain.groups.flatMap((g) => g.rules.map((r) => String(r["alert"])));
  assert.equal(new Set(names).size, names.length, "alert names are unique");
  // The list, one alert (at least) for each.
  for (const wanted of [
    "KubeJoinHighRefusalRatio",
    "KubeJoinInternalError",
    "KubeJoinReloadFailed",
    "KubeJoinVerifiedTokenCacheFull",
    "KubeJoinRateLimiterSaturated",
    "KubeJoinOidcKeysUnavailable",
    "KubeJoinCACertificateExpiringSoon",
    "KubeJoinNotReady",
  ]) {
    assert.ok(names.includes(wanted), `missing ${wanted}`);
  }
  for (const group of plain.groups) {
    for (const rule of group.rules) {
      const name = String(rule["alert"]);
      assert.match(name, /^KubeJoin[A-Z]\w+$/);
      const labels = rule["labels"] as Record<string, string>;
      assert.match(labels["severity"] ?? "", /^(critical|warning|info)$/, `${name}: severity`);
      const annotations = rule["annotations"] as Record<string, string>;
      assert.ok((annotations["summary"] ?? "").length > 10, `${name}: summary`);
      assert.ok((annotations["description"] ?? "").length > 80, `${name}: description`);
      const cases = tests.tests
        .flatMap((t) => t.alert_rule_test)
        .filter((t) => t.alertname === name);
      assert.ok(
        cases.some((c) => c.exp_alerts.length > 0),
        `${name}: no promtool case where it fires`,
      );
      assert.ok(
        cases.some((c) => c.exp_alerts.length === 0),
        `${name}: no promtool case where it stays quiet`,
      );
    }
  }
});

test("annotation templates expand only $labels and refuse anything else", () => {
  assert.equal(expandTemplate("on {{ $labels.instance }}", { instance: "a:3000" }), "on a:3000");
  assert.equal(expandTemplate("{{$labels.code}}", { code: "internal" }), "internal");
  assert.throws(() => expandTemplate("{{ $value }}", {}), TypeError);
});

test("every metric a rule reads is one kube-join exports (or Prometheus' own up)", async () => {
  const metrics = createMetrics();
  metrics.recordKeyFetch("https://issuer.example.com", true);
  metrics.setKeySetAge("https://issuer.example.com", 1);
  const exported = new Set(
    (await metrics.render())
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("#"))
      .map((l) => l.split(/[{ ]/)[0]),
  );
  exported.add("up");
  for (const group of ALERT_GROUPS) {
    for (const rule of group.rules) {
      const names = rule.expr.match(/\b(kube_join_\w+|up)(?=\{|\s|\)|\[|$)/g) ?? [];
      assert.ok(names.length > 0, `${rule.alert}: reads no metric`);
      for (const name of names) {
        assert.ok(
          exported.has(name),
          `${rule.alert} reads ${name}, which kube-join does not export`,
        );
      }
    }
  }
});

test(
  "promtool check rules accepts the rule file and the PrometheusRule's groups",
  { skip: promtool.skip },
  () => {
    const out = runPromtool(["check", "rules", GENERATED.rules]);
    assert.match(out, /SUCCESS: \d+ rules found/);
    const rule = objects(read(GENERATED.operator)).find((o) => o.kind === "PrometheusRule");
    assert.ok(rule !== undefined);
    const extracted = join(tmp, "prometheus-rule-groups.yaml");
    writeFileSync(extracted, JSON.stringify(rule.spec));
    assert.match(runPromtool(["check", "rules", extracted]), /SUCCESS/);
  },
);

test(
  "promtool test rules: every alert fires on its input series and stays quiet on the others",
  { skip: promtool.skip },
  () => {
    const out = runPromtool(
      ["test", "rules", "kube-join.rules.test.yaml"],
      join(REPO_ROOT, "deploy/prometheus"),
    );
    assert.match(out, /SUCCESS/);
    assert.doesNotMatch(out, /FAILED/);
  },
);

test(
  "promtool test rules fails a case whose expectation is wrong (the tests can fail)",
  { skip: promtool.skip },
  () => {
    // The quiet case of the cache alert, with the cache made 99% full: promtool must object.
    const tests = read(GENERATED.ruleTests).replace(/values: 50000x30/, "values: 99000x30");
    assert.ok(tests.includes("99000x30"));
    writeFileSync(join(tmp, "kube-join.rules.yaml"), read(GENERATED.rules));
    writeFileSync(join(tmp, "broken.test.yaml"), tests);
    const run = spawnSync(promtool.path, ["test", "rules", "broken.test.yaml"], {
      cwd: tmp,
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.notEqual(run.status, 0);
    assert.match(run.stdout + run.stderr, /KubeJoinVerifiedTokenCacheFull/);
  },
);

test(
  "kubectl kustomize renders the monitoring objects, and the ServiceMonitor selects the diag port",
  { skip: kubectl.skip },
  () => {
    const run = spawnSync(kubectl.path, ["kustomize", "deploy/kubernetes/monitoring"], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(run.status, 0, run.stderr);
    const rendered = objects(run.stdout);
    assert.deepEqual(rendered.map((o) => o.kind).sort(), ["PrometheusRule", "ServiceMonitor"]);
    const monitor = rendered.find((o) => o.kind === "ServiceMonitor");
    assert.ok(monitor !== undefined);

    const service = objects(read("deploy/kubernetes/kube-join.yaml")).find(
      (o) => o.kind === "Service" && o.metadata.name === "kube-join",
    );
    assert.ok(service !== undefined);
    assert.equal(monitor.metadata.namespace, service.metadata.namespace);
    const spec = monitor.spec as {
      selector: { matchLabels: Record<string, string> };
      namespaceSelector: { matchNames: string[] };
      endpoints: { port: string; path: string }[];
    };
    for (const [key, value] of Object.entries(spec.selector.matchLabels)) {
      assert.equal(service.metadata.labels?.[key], value, `Service label ${key}`);
    }
    assert.deepEqual(spec.namespaceSelector.matchNames, [service.metadata.namespace]);
    const ports = (service.spec["ports"] as { name: string }[]).map((p) => p.name);
    for (const endpoint of spec.endpoints) {
      assert.ok(ports.includes(endpoint.port), `Service has no port ${endpoint.port}`);
      assert.equal(endpoint.path, "/metrics");
    }
  },
);
