/**
 * The source of the Grafana dashboard `deploy/grafana/kube-join.json` (written by `npm run
 * gen:monitoring`): one table of panels, laid out in a 24-column grid, each with its PromQL.
 *
 * Importable as is: every panel and target takes its data source from the `datasource` template
 * variable (`${datasource}`), so no data source uid of ours is baked in; the `job` and `instance`
 * variables come from kube-join's own metrics. The JSON keeps to Grafana's documented dashboard
 * model (schemaVersion, panels with gridPos, targets with expr and refId, templating.list).
 * Grafana itself is not installed here; `test/dashboard.test.ts` runs every panel's query against
 * a real Prometheus scraping a real `kube-join serve` instead.
 */

/** Grafana's dashboard schema version this JSON follows (Grafana 10.4 and 11). */
export const SCHEMA_VERSION = 39;

const DATASOURCE = { type: "prometheus", uid: "${datasource}" } as const;
/** The selector every kube-join query carries, so the job/instance pickers apply. */
const SEL = `job=~"$job",instance=~"$instance"`;

type Unit = "ops" | "reqps" | "s" | "percentunit" | "bytes" | "percent" | "short" | "d" | "none";

export interface PanelQuery {
  readonly expr: string;
  /** Series name in the legend, e.g. `{{code}}`. */
  readonly legend: string;
}

export interface PanelSpec {
  readonly title: string;
  readonly description: string;
  readonly type: "timeseries" | "stat";
  readonly unit: Unit;
  /** Grid size: width of 24 columns, height in rows of 30 px. */
  readonly w: number;
  readonly h: number;
  readonly queries: readonly PanelQuery[];
  /** Stat panels: value below which the colour turns (red first, then orange); default none. */
  readonly thresholds?: readonly { readonly color: string; readonly value: number | null }[];
  /** Timeseries panels drawn as bars (counts per interval). */
  readonly bars?: boolean;
  readonly stack?: boolean;
}

const rate = (metric: string, extra = ""): string =>
  `rate(${metric}{${SEL}${extra === "" ? "" : `,${extra}`}}[$__rate_interval])`;

const quantile = (
  q: number,
  buckets = "kube_join_attempt_duration_seconds_bucket",
  extra = "",
): PanelQuery => ({
  expr: `histogram_quantile(${q}, sum by (le) (${rate(buckets, extra)}))`,
  legend: `p${Math.round(q * 100)}`,
});

/** Every panel, in reading order (left to right, top to bottom). */
export const PANELS: readonly PanelSpec[] = [
  {
    title: "Ready replicas",
    description: "Replicas whose /readyz answers ready (kube_join_ready), out of those scraped.",
    type: "stat",
    unit: "none",
    w: 4,
    h: 4,
    queries: [
      { expr: `sum(kube_join_ready{${SEL}})`, legend: "ready" },
      { expr: `count(up{${SEL}})`, legend: "scraped" },
    ],
  },
  {
    title: "Last reload succeeded",
    description:
      "Replicas whose most recent resource reload succeeded (kube_join_last_reload_successful); fewer than scraped means a broken edit is waiting (see the status page).",
    type: "stat",
    unit: "none",
    w: 4,
    h: 4,
    queries: [{ expr: `sum(kube_join_last_reload_successful{${SEL}})`, legend: "good" }],
  },
  {
    title: "CA certificate expiry headroom",
    description:
      "Days until the CA certificate that signs bot certificates expires (the earliest over the replicas). Alerts at 30 and 7 days.",
    type: "stat",
    unit: "d",
    w: 4,
    h: 4,
    queries: [
      {
        expr: `min((kube_join_ca_certificate_expiry_timestamp_seconds{${SEL}} - time()) / 86400)`,
        legend: "days",
      },
    ],
    thresholds: [
      { color: "red", value: null },
      { color: "orange", value: 7 },
      { color: "green", value: 30 },
    ],
  },
  {
    title: "Resources loaded",
    description: "Bots and tokens serving now (kube_join_resources_loaded), per kind.",
    type: "stat",
    unit: "none",
    w: 4,
    h: 4,
    queries: [{ expr: `max by (kind) (kube_join_resources_loaded{${SEL}})`, legend: "{{kind}}" }],
  },
  {
    title: "Verified-token cache fill",
    description:
      "Entries over capacity of the verified-token cache, the fullest replica. Over 90% for 15 minutes alerts: raise cache.max_entries.",
    type: "stat",
    unit: "percentunit",
    w: 4,
    h: 4,
    queries: [
      {
        expr: `max(kube_join_verified_token_cache_entries{${SEL}} / kube_join_verified_token_cache_capacity{${SEL}})`,
        legend: "fill",
      },
    ],
    thresholds: [
      { color: "green", value: null },
      { color: "orange", value: 0.75 },
      { color: "red", value: 0.9 },
    ],
  },
  {
    title: "Rate limiter client table fill",
    description:
      "Client addresses tracked over the table's capacity, the fullest replica. A full table forgets clients, which weakens the limit.",
    type: "stat",
    unit: "percentunit",
    w: 4,
    h: 4,
    queries: [
      {
        expr: `max(kube_join_rate_limiter_clients{${SEL}} / kube_join_rate_limiter_clients_capacity{${SEL}})`,
        legend: "fill",
      },
    ],
    thresholds: [
      { color: "green", value: null },
      { color: "orange", value: 0.75 },
      { color: "red", value: 0.9 },
    ],
  },
  {
    title: "Joins per second by result",
    description: "Join attempts per second, successful and refused (kube_join_attempts_total).",
    type: "timeseries",
    unit: "ops",
    w: 12,
    h: 8,
    stack: true,
    queries: [
      { expr: `sum by (result) (${rate("kube_join_attempts_total")})`, legend: "{{result}}" },
    ],
  },
  {
    title: "Refusals per second by code",
    description:
      "Refused join attempts per second by error code (docs/errors.md). internal should never appear; keys_unavailable means an oidc issuer is unreachable.",
    type: "timeseries",
    unit: "ops",
    w: 12,
    h: 8,
    stack: true,
    queries: [
      {
        expr: `sum by (code) (${rate("kube_join_attempts_total", 'result="failure"')})`,
        legend: "{{code}}",
      },
    ],
  },
  {
    title: "Join latency",
    description:
      "Percentiles of the time from request to certificates or error (kube_join_attempt_duration_seconds), over all replicas.",
    type: "timeseries",
    unit: "s",
    w: 12,
    h: 8,
    queries: [quantile(0.5), quantile(0.9), quantile(0.99)],
  },
  {
    title: "Verified-token cache hit ratio",
    description:
      "Share of JWT verifications answered from the verified-token cache (agents renewing with the same token hit it).",
    type: "timeseries",
    unit: "percentunit",
    w: 12,
    h: 8,
    queries: [
      {
        expr: `sum(${rate("kube_join_verified_token_cache_lookups_total", 'result="hit"')}) / sum(${rate("kube_join_verified_token_cache_lookups_total")})`,
        legend: "hit ratio",
      },
    ],
  },
  {
    title: "Rate-limited requests per second",
    description: "Requests refused with rate_limited (429) by the per-client limit, per replica.",
    type: "timeseries",
    unit: "reqps",
    w: 8,
    h: 8,
    queries: [
      {
        expr: `sum by (instance) (${rate("kube_join_rate_limited_requests_total")})`,
        legend: "{{instance}}",
      },
    ],
  },
  {
    title: "Resource reloads",
    description:
      "Loads and reloads of the resource files per interval, by result (kube_join_reloads_total). A failure keeps the previous resources serving.",
    type: "timeseries",
    unit: "short",
    w: 8,
    h: 8,
    bars: true,
    queries: [
      {
        expr: `sum by (result) (increase(kube_join_reloads_total{${SEL}}[$__rate_interval]))`,
        legend: "{{result}}",
      },
    ],
  },
  {
    title: "OIDC key fetches",
    description:
      "Fetches of an oidc issuer's discovery document and JWKS per interval, by issuer and result (kube_join_oidc_key_fetches_total). Only oidc tokens fetch keys.",
    type: "timeseries",
    unit: "short",
    w: 8,
    h: 8,
    bars: true,
    queries: [
      {
        expr: `sum by (issuer, result) (increase(kube_join_oidc_key_fetches_total{${SEL}}[$__rate_interval]))`,
        legend: "{{issuer}} {{result}}",
      },
    ],
  },
  {
    title: "OIDC key set age",
    description:
      "Age of the key set held for each oidc issuer (refreshed when 24 h old, or when a token names an unknown kid).",
    type: "timeseries",
    unit: "s",
    w: 8,
    h: 8,
    queries: [
      {
        expr: `max by (issuer) (kube_join_oidc_key_set_age_seconds{${SEL}})`,
        legend: "{{issuer}}",
      },
    ],
  },
  {
    title: "Store taking writes",
    description:
      "Replicas whose store takes writes (kube_join_store_up), out of those scraped. While one is 0, its joins are refused with store_unavailable and no certificate is issued (docs/store.md).",
    type: "stat",
    unit: "none",
    w: 4,
    h: 8,
    queries: [
      { expr: `sum(kube_join_store_up{${SEL}})`, legend: "writing" },
      { expr: `count(up{${SEL}})`, legend: "scraped" },
    ],
  },
  {
    title: "Store record latency",
    description:
      "Percentiles of a join's wait for its bot-instance record, group commit included (kube_join_store_record_duration_seconds, written records): the store's share of the join latency.",
    type: "timeseries",
    unit: "s",
    w: 8,
    h: 8,
    queries: [0.5, 0.99].map((q) =>
      quantile(q, "kube_join_store_record_duration_seconds_bucket", 'result="success"'),
    ),
  },
  {
    title: "Joins per store write",
    description:
      "Mean joins recorded per store write (one SQLite commit, one PostgreSQL statement): group commit at work under load.",
    type: "timeseries",
    unit: "short",
    w: 4,
    h: 8,
    queries: [
      {
        expr: `sum(${rate("kube_join_store_write_batch_joins_sum")}) / sum(${rate("kube_join_store_write_batch_joins_count")})`,
        legend: "joins per write",
      },
    ],
  },
  {
    title: "Locked joins per second",
    description:
      "Joins refused with join_locked, by the lock target field that matched (kube_join_locked_joins_total). The lock's name is in the audit line.",
    type: "timeseries",
    unit: "ops",
    w: 8,
    h: 8,
    stack: true,
    queries: [
      {
        expr: `sum by (target) (${rate("kube_join_locked_joins_total")})`,
        legend: "{{target}}",
      },
    ],
  },
  {
    title: "Process CPU",
    description: "CPU seconds per second used by each replica's Node.js process.",
    type: "timeseries",
    unit: "percentunit",
    w: 8,
    h: 8,
    queries: [
      { expr: `sum by (instance) (${rate("process_cpu_seconds_total")})`, legend: "{{instance}}" },
    ],
  },
  {
    title: "Process memory",
    description: "Resident memory and JavaScript heap in use, per replica.",
    type: "timeseries",
    unit: "bytes",
    w: 8,
    h: 8,
    queries: [
      {
        expr: `sum by (instance) (process_resident_memory_bytes{${SEL}})`,
        legend: "{{instance}} resident",
      },
      {
        expr: `sum by (instance) (nodejs_heap_size_used_bytes{${SEL}})`,
        legend: "{{instance}} heap used",
      },
    ],
  },
];

/** The dashboard JSON model. */
export function dashboard(): Record<string, unknown> {
  let x = 0;
  let y = 0;
  let rowHeight = 0;
  const panels = PANELS.map((spec, i) => {
    if (x + spec.w > 24) {
      x = 0;
      y += rowHeight;
      rowHeight = 0;
    }
    const gridPos = { h: spec.h, w: spec.w, x, y };
    x += spec.w;
    rowHeight = Math.max(rowHeight, spec.h);
    return panel(spec, i + 1, gridPos);
  });
  return {
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: "grafana", uid: "-- Grafana --" },
          enable: true,
          hide: true,
          iconColor: "rgba(0, 211, 255, 1)",
          name: "Annotations & Alerts",
          type: "dashboard",
        },
      ],
    },
    description:
      "kube-join: joins, refusals, latency, caches, reloads, oidc keys, the store and locks, CA expiry and the process. Generated from deploy/grafana/dashboard.ts.",
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    id: null,
    links: [],
    panels,
    refresh: "30s",
    schemaVersion: SCHEMA_VERSION,
    tags: ["kube-join"],
    templating: {
      list: [
        {
          current: {},
          hide: 0,
          includeAll: false,
          label: "Data source",
          multi: false,
          name: "datasource",
          options: [],
          query: "prometheus",
          refresh: 1,
          regex: "",
          type: "datasource",
        },
        queryVariable("job", "Job", "label_values(kube_join_attempts_total, job)", false),
        queryVariable(
          "instance",
          "Instance",
          'label_values(kube_join_attempts_total{job=~"$job"}, instance)',
          true,
        ),
      ],
    },
    time: { from: "now-6h", to: "now" },
    timepicker: {},
    timezone: "",
    title: "kube-join",
    uid: "kube-join",
    version: 1,
  };
}

function queryVariable(name: string, label: string, query: string, all: boolean): unknown {
  return {
    current: {},
    datasource: DATASOURCE,
    definition: query,
    hide: 0,
    includeAll: all,
    label,
    multi: all,
    name,
    options: [],
    query: { qryType: 1, query, refId: "PrometheusVariableQueryEditor-VariableQuery" },
    refresh: 2,
    regex: "",
    sort: 1,
    type: "query",
    ...(all ? { allValue: ".+" } : {}),
  };
}

function panel(
  spec: PanelSpec,
  id: number,
  gridPos: { h: number; w: number; x: number; y: number },
): Record<string, unknown> {
  const targets = spec.queries.map((q, i) => ({
    datasource: DATASOURCE,
    expr: q.expr,
    legendFormat: q.legend,
    range: true,
    refId: String.fromCharCode(65 + i),
  }));
  const thresholds = {
    mode: "absolute",
    steps: spec.thresholds ?? [{ color: "green", value: null }],
  };
  if (spec.type === "stat") {
    return {
      datasource: DATASOURCE,
      description: spec.description,
      fieldConfig: { defaults: { unit: spec.unit, thresholds, mappings: [] }, overrides: [] },
      gridPos,
      id,
      options: {
        colorMode: "value",
        graphMode: "none",
        justifyMode: "auto",
        orientation: "auto",
        reduceOptions: { calcs: ["lastNotNull"], fields: "", values: false },
        textMode: "auto",
      },
      targets,
      title: spec.title,
      type: "stat",
    };
  }
  return {
    datasource: DATASOURCE,
    description: spec.description,
    fieldConfig: {
      defaults: {
        unit: spec.unit,
        thresholds,
        color: { mode: "palette-classic" },
        custom: {
          drawStyle: spec.bars === true ? "bars" : "line",
          fillOpacity: spec.bars === true || spec.stack === true ? 60 : 10,
          lineWidth: 1,
          showPoints: "never",
          spanNulls: false,
          stacking: { group: "A", mode: spec.stack === true ? "normal" : "none" },
        },
        ...(spec.unit === "percentunit" ? { min: 0 } : {}),
      },
      overrides: [],
    },
    gridPos,
    id,
    options: {
      legend: { calcs: [], displayMode: "list", placement: "bottom", showLegend: true },
      tooltip: { mode: "multi", sort: "desc" },
    },
    targets,
    title: spec.title,
    type: "timeseries",
  };
}
