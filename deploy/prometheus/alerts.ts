/**
 * The one source of kube-join's alerting rules. `npm run gen:monitoring` writes from this table:
 *
 * - `deploy/prometheus/kube-join.rules.yaml`: plain Prometheus rule groups (`rule_files:`);
 * - `deploy/prometheus/kube-join.rules.test.yaml`: `promtool test rules` unit tests, one test group
 *   per case below (its own input series), with the expected annotations worked out from the
 *   templates, so promtool checks the wording as well as the firing;
 * - `deploy/kubernetes/monitoring/kube-join-monitoring.yaml`: the same groups as a Prometheus
 *   Operator `PrometheusRule`, next to a `ServiceMonitor` for the diag port.
 *
 * `test/monitoring.test.ts` fails when a committed file differs from what this table generates,
 * so the three can never drift apart. To add an alert: add a row with a firing and a quiet case,
 * run `npm run gen:monitoring`, commit the table and the files together.
 *
 * The rules select kube-join's metrics by name (every one carries the `kube_join_` prefix), so
 * they hold whatever the scrape job is called; only `up` needs the job: `kube-join`, which is
 * what the ServiceMonitor yields (the Service's name) and what docs/operations.md tells a plain
 * Prometheus to call it.
 */

/** The scrape job of kube-join's diag port. */
export const JOB = "kube-join";

export type Severity = "critical" | "warning" | "info";

/** One input series of a promtool test: a series selector and its values in promtool's notation. */
export interface InputSeries {
  readonly series: string;
  /** E.g. `"0+1x20"` (0, 1, ... 20) or `"1x30"` (31 samples of 1), one per `interval`. */
  readonly values: string;
}

/** One unit test of an alert: series, a time, and the labels of every alert firing then. */
export interface AlertCase {
  /** What the case shows, e.g. `"a failed reload with a good one after it"`. */
  readonly name: string;
  /** Sample spacing of `input`; default 1m. */
  readonly interval?: string;
  readonly input: readonly InputSeries[];
  /** When the rule is evaluated, e.g. `"15m"`. */
  readonly at: string;
  /** The labels (beyond the rule's own) of each alert expected then; `[]` is the quiet case. */
  readonly fires: ReadonlyArray<Readonly<Record<string, string>>>;
}

export interface AlertRule {
  /** CamelCase, prefixed `KubeJoin`. */
  readonly alert: string;
  readonly expr: string;
  /** How long the condition holds before the alert fires (`0m`: at once). */
  readonly for: string;
  readonly severity: Severity;
  /** One line. May use `{{ $labels.NAME }}` (nothing else, so the tests can expand it). */
  readonly summary: string;
  /** What it means and what to do. Same templating as `summary`. */
  readonly description: string;
  /** At least one case that fires and one that does not. */
  readonly cases: readonly AlertCase[];
}

export interface AlertGroup {
  readonly name: string;
  readonly rules: readonly AlertRule[];
}

/** Share of all join attempts refused with one code, over 5 minutes, that is worth a look. */
export const REFUSAL_RATIO_THRESHOLD = 0.25;
/** Below this many attempts per second a high refusal ratio is noise (one in 20 s). */
export const REFUSAL_MIN_RATE = 0.05;
/** Requests per second refused with `rate_limited` that are more than a client's bad day. */
export const RATE_LIMITED_THRESHOLD = 1;
/** Cache or limiter table this full (entries / capacity) is saturated. */
export const SATURATION_THRESHOLD = 0.9;
const DAY = 86_400;

const T = `job="${JOB}",instance="kube-join-0"`;
const T1 = `job="${JOB}",instance="kube-join-1"`;
const replica0 = { job: JOB, instance: "kube-join-0" };

/** Every alert, grouped as Prometheus evaluates them. */
export const ALERT_GROUPS: readonly AlertGroup[] = [
  {
    name: "kube-join.joins",
    rules: [
      {
        alert: "KubeJoinHighRefusalRatio",
        expr: `sum by (job, code) (rate(kube_join_attempts_total{result="failure"}[5m]))
  / on (job) group_left
sum by (job) (rate(kube_join_attempts_total[5m]))
  > ${REFUSAL_RATIO_THRESHOLD}
and on (job)
sum by (job) (rate(kube_join_attempts_total[5m])) > ${REFUSAL_MIN_RATE}`,
        for: "10m",
        severity: "warning",
        summary: `More than ${REFUSAL_RATIO_THRESHOLD * 100}% of kube-join's join attempts are refused with {{ $labels.code }}.`,
        description:
          `For 10 minutes over ${REFUSAL_RATIO_THRESHOLD * 100}% of all join attempts were refused with the code {{ $labels.code }}. ` +
          "Look the code up in docs/errors.md, then read the audit events of the refused joins (field error.code) for the token, bot and service account involved. " +
          "Typical causes: a cluster's signing keys rotated (jwt_signature_invalid: update the token's jwks), an allow rule that no longer matches a renamed ServiceAccount (no_matching_allow_rule), an expired join token (token_expired), or agents configured with the wrong audience (jwt_audience_mismatch).",
        cases: [
          {
            name: "one code refused in half of 2 attempts/s",
            input: [
              {
                series: `kube_join_attempts_total{${T},result="success",code="ok"}`,
                values: "0+60x30",
              },
              {
                series: `kube_join_attempts_total{${T},result="failure",code="jwt_signature_invalid"}`,
                values: "0+60x30",
              },
              {
                series: `kube_join_attempts_total{${T},result="failure",code="token_not_found"}`,
                values: "0+1x30",
              },
            ],
            at: "20m",
            fires: [{ job: JOB, code: "jwt_signature_invalid" }],
          },
          {
            name: "refusals below the ratio",
            input: [
              {
                series: `kube_join_attempts_total{${T},result="success",code="ok"}`,
                values: "0+60x30",
              },
              {
                series: `kube_join_attempts_total{${T},result="failure",code="token_expired"}`,
                values: "0+6x30",
              },
            ],
            at: "20m",
            fires: [],
          },
          {
            name: "all refused but too few attempts to mean anything",
            input: [
              {
                series: `kube_join_attempts_total{${T},result="failure",code="token_not_found"}`,
                values: "0+1x30",
              },
            ],
            at: "20m",
            fires: [],
          },
        ],
      },
      {
        alert: "KubeJoinInternalError",
        expr: `sum by (job, instance) (increase(kube_join_attempts_total{code="internal"}[10m])) > 0`,
        for: "0m",
        severity: "critical",
        summary: "kube-join {{ $labels.instance }} answered a join with an internal error.",
        description:
          "A join attempt on {{ $labels.instance }} failed with the code internal: a bug or a broken dependency, never the caller's fault. " +
          'Find the log line "unexpected error while serving a request" on that replica (kubectl -n kube-join logs; it carries the stage and the error) and open an issue with it. ' +
          "If it repeats, compare with the other replica and restart the affected pod.",
        cases: [
          {
            name: "one internal error",
            input: [
              {
                series: `kube_join_attempts_total{${T},result="failure",code="internal"}`,
                values: "0 0 0 1 1 1",
              },
              {
                series: `kube_join_attempts_total{${T1},result="failure",code="internal"}`,
                values: "0 0 0 0 0 0",
              },
            ],
            at: "5m",
            fires: [replica0],
          },
          {
            name: "no internal error",
            input: [
              {
                series: `kube_join_attempts_total{${T},result="failure",code="internal"}`,
                values: "0x10",
              },
            ],
            at: "10m",
            fires: [],
          },
        ],
      },
    ],
  },
  {
    name: "kube-join.dependencies",
    rules: [
      {
        alert: "KubeJoinOidcKeysUnavailable",
        expr: `sum by (job, instance) (increase(kube_join_attempts_total{code="keys_unavailable"}[10m])) > 0`,
        for: "0m",
        severity: "critical",
        summary:
          "kube-join {{ $labels.instance }} refuses oidc joins: it has no keys for an issuer.",
        description:
          "Joins with an oidc token were refused with keys_unavailable on {{ $labels.instance }}: kube-join never obtained a key set from the token's issuer. " +
          'The log line "fetching an oidc issuer\'s keys failed" names the issuer and why (DNS, TLS, HTTP status, size, JSON). ' +
          "Check that the pod can reach the issuer's /.well-known/openid-configuration and jwks_uri, and that oidc.ca_file holds the issuer's CA if it is private. kube-join retries by itself after the cooldown (30 s).",
        cases: [
          {
            name: "joins refused for want of keys",
            input: [
              {
                series: `kube_join_attempts_total{${T},result="failure",code="keys_unavailable"}`,
                values: "0 0 3 5 5 5",
              },
            ],
            at: "5m",
            fires: [replica0],
          },
          {
            name: "keys available",
            input: [
              {
                series: `kube_join_attempts_total{${T},result="failure",code="keys_unavailable"}`,
                values: "0x10",
              },
            ],
            at: "10m",
            fires: [],
          },
        ],
      },
      {
        alert: "KubeJoinOidcKeyFetchFailing",
        expr: `sum by (job, instance, issuer) (increase(kube_join_oidc_key_fetches_total{result="failure"}[30m])) > 0
unless on (job, instance, issuer)
sum by (job, instance, issuer) (increase(kube_join_oidc_key_fetches_total{result="success"}[30m])) > 0`,
        for: "0m",
        severity: "warning",
        summary:
          "kube-join {{ $labels.instance }} cannot refresh the keys of {{ $labels.issuer }}.",
        description:
          "Every fetch of the discovery document or JWKS of {{ $labels.issuer }} in the last 30 minutes failed on {{ $labels.instance }}. " +
          "Joins still verify against the key set fetched before (if any), but a key the cluster rotated in will not be found. " +
          "Read the log line \"fetching an oidc issuer's keys failed\" for the reason and check the issuer's reachability and certificate from the pod.",
        cases: [
          {
            name: "only failures for 30 minutes",
            input: [
              {
                series: `kube_join_oidc_key_fetches_total{${T},issuer="https://oidc.example.com",result="success"}`,
                values: "1x40",
              },
              {
                series: `kube_join_oidc_key_fetches_total{${T},issuer="https://oidc.example.com",result="failure"}`,
                values: "0+1x40",
              },
            ],
            at: "40m",
            fires: [{ ...replica0, issuer: "https://oidc.example.com" }],
          },
          {
            name: "a failure followed by a good fetch",
            input: [
              {
                series: `kube_join_oidc_key_fetches_total{${T},issuer="https://oidc.example.com",result="success"}`,
                values: "1x10 2x30",
              },
              {
                series: `kube_join_oidc_key_fetches_total{${T},issuer="https://oidc.example.com",result="failure"}`,
                values: "0x5 1x35",
              },
            ],
            at: "30m",
            fires: [],
          },
        ],
      },
      {
        alert: "KubeJoinVerifiedTokenCacheFull",
        expr: `kube_join_verified_token_cache_entries / kube_join_verified_token_cache_capacity > ${SATURATION_THRESHOLD}`,
        for: "15m",
        severity: "warning",
        summary: "kube-join {{ $labels.instance }}'s verified-token cache is over 90% full.",
        description:
          "The verified-token cache of {{ $labels.instance }} has held more than 90% of cache.max_entries for 15 minutes: entries are evicted before their JWT expires, so repeat joins verify signatures again (more CPU, higher latency). " +
          "Raise cache.max_entries in the config (about 1 KiB of memory per entry) and restart, or find the client presenting many distinct tokens (audit events by remote_addr).",
        cases: [
          {
            name: "nearly full for 20 minutes",
            input: [
              { series: `kube_join_verified_token_cache_entries{${T}}`, values: "95000x30" },
              { series: `kube_join_verified_token_cache_capacity{${T}}`, values: "100000x30" },
            ],
            at: "20m",
            fires: [replica0],
          },
          {
            name: "half full",
            input: [
              { series: `kube_join_verified_token_cache_entries{${T}}`, values: "50000x30" },
              { series: `kube_join_verified_token_cache_capacity{${T}}`, values: "100000x30" },
            ],
            at: "20m",
            fires: [],
          },
        ],
      },
      {
        alert: "KubeJoinRateLimiterSaturated",
        expr: `kube_join_rate_limiter_clients / kube_join_rate_limiter_clients_capacity > ${SATURATION_THRESHOLD}`,
        for: "15m",
        severity: "warning",
        summary:
          "kube-join {{ $labels.instance }}'s rate limiter tracks over 90% of the clients it can.",
        description:
          "The rate limiter of {{ $labels.instance }} has tracked more than 90% of its client table for 15 minutes. " +
          "Once it is full the least recently seen client is forgotten and starts again with a full bucket, so a flood from many addresses weakens the limit. " +
          "Check whether trust_proxy is set while no proxy sets X-Forwarded-For (every caller then brings its own address), or whether a scan is under way (audit events by remote_addr); block it upstream.",
        cases: [
          {
            name: "client table nearly full",
            input: [
              { series: `kube_join_rate_limiter_clients{${T}}`, values: "65000x30" },
              { series: `kube_join_rate_limiter_clients_capacity{${T}}`, values: "65536x30" },
            ],
            at: "20m",
            fires: [replica0],
          },
          {
            name: "a few clients",
            input: [
              { series: `kube_join_rate_limiter_clients{${T}}`, values: "12x30" },
              { series: `kube_join_rate_limiter_clients_capacity{${T}}`, values: "65536x30" },
            ],
            at: "20m",
            fires: [],
          },
        ],
      },
      {
        alert: "KubeJoinRateLimiting",
        expr: `sum by (job, instance) (rate(kube_join_rate_limited_requests_total[5m])) > ${RATE_LIMITED_THRESHOLD}`,
        for: "10m",
        severity: "warning",
        summary:
          "kube-join {{ $labels.instance }} refuses over one request per second with rate_limited.",
        description:
          "For 10 minutes {{ $labels.instance }} has answered more than one request per second with 429 rate_limited. " +
          "Either a client loops (an agent with a broken config retrying, a scanner) or legitimate load outgrew rate_limit.average and rate_limit.burst. " +
          "Rate-limited requests are not audited; find the client in the access path (proxy or load-balancer logs) and fix or block it, or raise the limits in the config.",
        cases: [
          {
            name: "5 refusals a second for 20 minutes",
            input: [{ series: `kube_join_rate_limited_requests_total{${T}}`, values: "0+300x30" }],
            at: "20m",
            fires: [replica0],
          },
          {
            name: "a short burst",
            input: [
              { series: `kube_join_rate_limited_requests_total{${T}}`, values: "0x5 500x25" },
            ],
            at: "20m",
            fires: [],
          },
        ],
      },
    ],
  },
  {
    name: "kube-join.service",
    rules: [
      {
        alert: "KubeJoinReloadFailed",
        expr: `kube_join_last_reload_successful == 0
and on (job, instance)
kube_join_ready == 1`,
        for: "5m",
        severity: "warning",
        summary: "kube-join {{ $labels.instance }}'s last resource reload failed.",
        description:
          "The most recent reload of the bot and token files on {{ $labels.instance }} failed and no good one came after it; the previous resources keep serving, so the edit that was meant to apply has not. " +
          'The log line "resource reload failed" and the status page (GET / on the diag port) list every problem as file:line:col: field: message. ' +
          "Fix the files (kube-join check FILES lints them offline); the next change reloads by itself, or send SIGHUP.",
        cases: [
          {
            name: "a failed reload, nothing good after it",
            input: [
              { series: `kube_join_last_reload_successful{${T}}`, values: "1 1 0x10" },
              { series: `kube_join_ready{${T}}`, values: "1x12" },
            ],
            at: "10m",
            fires: [replica0],
          },
          {
            name: "a failed reload fixed by the next one",
            input: [
              { series: `kube_join_last_reload_successful{${T}}`, values: "1 1 0 0 1x10" },
              { series: `kube_join_ready{${T}}`, values: "1x14" },
            ],
            at: "10m",
            fires: [],
          },
        ],
      },
      {
        alert: "KubeJoinNotReady",
        expr: `kube_join_ready == 0`,
        for: "5m",
        severity: "warning",
        summary: "kube-join {{ $labels.instance }} has not been ready for 5 minutes.",
        description:
          "{{ $labels.instance }} answers /readyz with not_ready and refuses joins with not_ready: its resources or its certificate authority are not loaded. " +
          "The status page (GET / on the diag port) says which; the start-up log names the file that failed. " +
          "Check that the kube-join-ca Secret is mounted with the three files and the ConfigMap holds valid resources (kube-join check).",
        cases: [
          {
            name: "stuck not ready",
            input: [{ series: `kube_join_ready{${T}}`, values: "0x10" }],
            at: "10m",
            fires: [replica0],
          },
          {
            name: "ready after a slow start",
            input: [{ series: `kube_join_ready{${T}}`, values: "0 0 1x10" }],
            at: "10m",
            fires: [],
          },
        ],
      },
      {
        alert: "KubeJoinDown",
        expr: `up{job="${JOB}"} == 0`,
        for: "5m",
        severity: "warning",
        summary: "Prometheus cannot scrape kube-join {{ $labels.instance }}.",
        description:
          "The diag port of {{ $labels.instance }} has not answered a scrape for 5 minutes: the pod is down, restarting, or unreachable. " +
          "kubectl -n kube-join get pods and describe the pod (CrashLoopBackOff, OOMKilled, failing probes); the other replica keeps serving joins meanwhile.",
        cases: [
          {
            name: "scrapes failing",
            input: [
              { series: `up{${T}}`, values: "1 0x10" },
              { series: `up{${T1}}`, values: "1x11" },
            ],
            at: "10m",
            fires: [replica0],
          },
          {
            name: "scrapes succeeding",
            input: [{ series: `up{${T}}`, values: "1x10" }],
            at: "10m",
            fires: [],
          },
        ],
      },
      {
        alert: "KubeJoinCACertificateExpiringSoon",
        expr: `kube_join_ca_certificate_expiry_timestamp_seconds - time() < 30 * ${DAY}`,
        for: "10m",
        severity: "warning",
        summary: "kube-join's CA certificate expires within 30 days.",
        description:
          "The CA certificate {{ $labels.instance }} signs bot certificates with expires in less than 30 days; after that no bot certificate verifies. " +
          "Rotate the CA as docs/operations.md describes: generate a new one, keep the old certificate and SSH key under ca.extra_trusted, replace the kube-join-ca Secret and restart the Deployment.",
        cases: [
          {
            name: "20 days left",
            input: [
              {
                series: `kube_join_ca_certificate_expiry_timestamp_seconds{${T}}`,
                values: `${20 * DAY}x30`,
              },
            ],
            at: "20m",
            fires: [replica0],
          },
          {
            name: "a year left",
            input: [
              {
                series: `kube_join_ca_certificate_expiry_timestamp_seconds{${T}}`,
                values: `${365 * DAY}x30`,
              },
            ],
            at: "20m",
            fires: [],
          },
        ],
      },
      {
        alert: "KubeJoinCACertificateExpiryImminent",
        expr: `kube_join_ca_certificate_expiry_timestamp_seconds - time() < 7 * ${DAY}`,
        for: "10m",
        severity: "critical",
        summary: "kube-join's CA certificate expires within 7 days.",
        description:
          "The CA certificate {{ $labels.instance }} signs bot certificates with expires in less than 7 days. " +
          "Rotate it now (docs/operations.md, CA rotation): once it expires kube-join refuses to start and bots can no longer be verified.",
        cases: [
          {
            name: "3 days left",
            input: [
              {
                series: `kube_join_ca_certificate_expiry_timestamp_seconds{${T}}`,
                values: `${3 * DAY}x30`,
              },
            ],
            at: "20m",
            fires: [replica0],
          },
          {
            name: "20 days left: the warning, not this",
            input: [
              {
                series: `kube_join_ca_certificate_expiry_timestamp_seconds{${T}}`,
                values: `${20 * DAY}x30`,
              },
            ],
            at: "20m",
            fires: [],
          },
        ],
      },
    ],
  },
];

/** `{{ $labels.NAME }}` expanded from `labels`, as Prometheus does for the annotations. */
export function expandTemplate(template: string, labels: Readonly<Record<string, string>>): string {
  const out = template.replace(/\{\{\s*\$labels\.([a-zA-Z_]\w*)\s*\}\}/g, (_m, name: string) => {
    return labels[name] ?? "";
  });
  if (out.includes("{{")) {
    throw new TypeError(`only {{ $labels.NAME }} is supported in alert annotations: ${template}`);
  }
  return out;
}

/** Plain Prometheus rule groups (the `groups:` document of a rule file). */
export function ruleGroups(): { groups: unknown[] } {
  return {
    groups: ALERT_GROUPS.map((group) => ({
      name: group.name,
      rules: group.rules.map((rule) => ({
        alert: rule.alert,
        expr: rule.expr,
        for: rule.for,
        labels: { severity: rule.severity },
        annotations: { summary: rule.summary, description: rule.description },
      })),
    })),
  };
}

/** The `promtool test rules` file for `ruleFile` (a path relative to the test file). */
export function ruleTests(ruleFile: string): unknown {
  const tests = ALERT_GROUPS.flatMap((group) =>
    group.rules.flatMap((rule) => {
      if (
        !rule.cases.some((c) => c.fires.length > 0) ||
        !rule.cases.some((c) => c.fires.length === 0)
      ) {
        throw new TypeError(`${rule.alert}: needs a case that fires and a case that does not`);
      }
      return rule.cases.map((c) => ({
        name: `${rule.alert}: ${c.name}`,
        interval: c.interval ?? "1m",
        input_series: c.input.map((s) => ({ series: s.series, values: s.values })),
        alert_rule_test: [
          {
            eval_time: c.at,
            alertname: rule.alert,
            exp_alerts: c.fires.map((labels) => {
              const all = { severity: rule.severity, ...labels };
              return {
                exp_labels: all,
                exp_annotations: {
                  summary: expandTemplate(rule.summary, all),
                  description: expandTemplate(rule.description, all),
                },
              };
            }),
          },
        ],
      }));
    }),
  );
  return { rule_files: [ruleFile], evaluation_interval: "1m", tests };
}
