/**
 * Prometheus metrics of the join service, on a registry of their own (never prom-client's global
 * one, so two services in one process, as in tests, never mix their numbers).
 *
 * Label values are all bounded: `result` and `type` are fixed sets, `code` is an error code from
 * `src/errors.ts`, `kind` is `bot` or `token`, and `issuer` is an issuer an admin configured. A
 * token name from a request, a JWT, a client address or a service-account name is never a label.
 *
 * The list, with types and labels, is in docs/operations.md.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { LOCK_TARGET_FIELDS } from "../locks/lock.ts";
import { ERROR_CODES } from "../errors.ts";
import type { JoinAttempt, JoinListener } from "../join/events.ts";

export interface Metrics {
  /** The Content-Type of `render()`'s text, for the `/metrics` response. */
  readonly contentType: string;
  /** The exposition text of this instance's registry. */
  render(): Promise<string>;
  /** Counts a join attempt: result and code, latency, certificates issued, cache hit or miss. */
  readonly onJoin: JoinListener;
  /** Counts a resource reload by result; a good one also sets the last-good-reload time. */
  recordReload(ok: boolean, at: Date): void;
  /** The number of resources serving now, by kind. */
  setResourcesLoaded(counts: { bot: number; token: number }): void;
  /** Counts one request refused by the per-client rate limit. */
  recordRateLimited(): void;
  /** A write to the bot-instance store failed (the join got `store_unavailable`). */
  recordStoreWriteFailure(): void;
  /** One write of the store (a SQLite group commit, a PostgreSQL batched statement) and its joins. */
  recordStoreWriteBatch(joins: number): void;
  /** How long one join waited for its bot-instance record, and whether it was written. */
  recordStoreRecordWait(seconds: number, written: boolean): void;
  /** Whether the store takes writes (1) or not (0) since the last write. */
  setStoreUp(up: boolean): void;
  /** Expired bot instances removed by a sweep. */
  recordInstancesSwept(count: number): void;
  /** The number of entries in the verified-token cache now. */
  setCacheEntries(n: number): void;
  /** Counts one fetch of an `oidc` token's issuer keys (discovery + JWKS) by result. */
  recordKeyFetch(issuer: string, ok: boolean): void;
  /**
   * Creates the (zero) key-fetch series of every issuer the loaded `oidc` tokens name, so the first
   * fetch of a new issuer already shows in `increase()` (a series born at 1 shows no increase).
   */
  declareOidcIssuers(issuers: Iterable<string>): void;
  /** Counts audit lines that could not be written. */
  recordAuditWriteFailures(lines: number): void;
  /** Whether the audit trail can be written now. */
  setAuditSinkHealthy(healthy: boolean): void;
  /** The age of the key set kube-join holds for an `oidc` issuer. */
  setKeySetAge(issuer: string, seconds: number): void;
  /**
   * Runs `refresh` before every `render()`, so gauges that describe state (cache entries, key-set
   * ages) are read when scraped instead of going stale between joins.
   */
  onScrape(refresh: () => void): void;
  /** The bound on entries of the verified-token cache (config `cache.max_entries`). */
  setCacheCapacity(n: number): void;
  /** Client addresses the rate limiter tracks now, and the most it tracks before forgetting one. */
  setRateLimiterClients(n: number, capacity: number): void;
  /** When the CA certificate that signs bot certificates expires. */
  setCaCertificateExpiry(notAfter: Date): void;
  /** Whether the service can serve joins now (what `/readyz` answers). */
  setReady(ready: boolean): void;
  /**
   * Join attempts counted since start, by result and code, zero counts left out: what the status
   * page shows, read from the same counter Prometheus scrapes so the two never disagree.
   */
  attemptCounts(): Promise<ReadonlyArray<AttemptCount>>;
}

/** One series of `kube_join_attempts_total`. */
export interface AttemptCount {
  readonly result: "success" | "failure";
  /** The error code of a failure, `ok` for a success. */
  readonly code: string;
  readonly count: number;
}

const PREFIX = "kube_join_";

/** `code` label value of a successful attempt: not an error code, so it never collides with one. */
const SUCCESS_CODE = "ok";

const REDUNDANT_DEFAULT_GAUGES = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

/**
 * Joins verify a JWT (cached or not) and sign two certificates: milliseconds when healthy. The
 * upper buckets catch a starved event loop or a slow disk.
 */
const JOIN_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * A join's wait for its record: under a millisecond on average for SQLite, a few for a local
 * PostgreSQL under load (docs/store.md), more across a network; a PostgreSQL query and SQLite's
 * busy wait give up after 5 s.
 */
const STORE_RECORD_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5,
];

/**
 * Creates the metrics of one service instance, including prom-client's default process and
 * Node.js metrics (`process_*`, `nodejs_*`), all registered on a new registry.
 *
 * @example
 * const metrics = createMetrics();
 * joinService.on("attempt", metrics.onJoin);
 * app.get("/metrics", async (_req, res) => res.type(metrics.contentType).send(await metrics.render()));
 */
export function createMetrics(): Metrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // These three gauges break the naming convention (`_total` is for counters, so `promtool check
  // metrics` flags them) and only repeat the sum of their by-type siblings
  // (`sum(nodejs_active_handles)`), so they go.
  for (const name of REDUNDANT_DEFAULT_GAUGES) registry.removeSingleMetric(name);

  const attempts = new Counter({
    name: `${PREFIX}attempts_total`,
    help: `Join attempts by result (success, failure) and code (the error code, or "${SUCCESS_CODE}").`,
    labelNames: ["result", "code"] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: `${PREFIX}attempt_duration_seconds`,
    help: "Time to answer a join attempt, from request to certificates or error, by result.",
    labelNames: ["result"] as const,
    buckets: JOIN_DURATION_BUCKETS,
    registers: [registry],
  });
  const certificates = new Counter({
    name: `${PREFIX}certificates_issued_total`,
    help: "Certificates issued to bots, by type (tls, ssh).",
    labelNames: ["type"] as const,
    registers: [registry],
  });
  const cacheLookups = new Counter({
    name: `${PREFIX}verified_token_cache_lookups_total`,
    help: "Lookups in the verified-token cache by result (hit, miss).",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  const cacheEntries = new Gauge({
    name: `${PREFIX}verified_token_cache_entries`,
    help: "Entries in the verified-token cache.",
    registers: [registry],
  });
  const resources = new Gauge({
    name: `${PREFIX}resources_loaded`,
    help: "Resources serving now, by kind (bot, token).",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  const reloads = new Counter({
    name: `${PREFIX}reloads_total`,
    help: "Resource reloads by result (success, failure); a failed reload keeps the previous set.",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  const lastReload = new Gauge({
    name: `${PREFIX}last_successful_reload_timestamp_seconds`,
    help: "Unix time of the last load or reload of the resources that succeeded.",
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: `${PREFIX}rate_limited_requests_total`,
    help: "Requests refused by the per-client rate limit.",
    registers: [registry],
  });
  const lockedJoins = new Counter({
    name: `${PREFIX}locked_joins_total`,
    help: "Joins refused with join_locked, by the first target field of the lock that matched.",
    labelNames: ["target"],
    registers: [registry],
  });
  const storeWriteFailures = new Counter({
    name: `${PREFIX}store_write_failures_total`,
    help: "Bot-instance records the store could not write; each join got store_unavailable.",
    registers: [registry],
  });
  const storeWriteBatch = new Histogram({
    name: `${PREFIX}store_write_batch_joins`,
    help: "Joins recorded per store write: one SQLite commit or one PostgreSQL statement.",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
    registers: [registry],
  });
  const storeRecordWait = new Histogram({
    name: `${PREFIX}store_record_duration_seconds`,
    help: "Time a join waited for its bot-instance record, group commit included, by result (success: written, failure: store_unavailable).",
    labelNames: ["result"] as const,
    buckets: STORE_RECORD_BUCKETS,
    registers: [registry],
  });
  const storeUp = new Gauge({
    name: `${PREFIX}store_up`,
    help: "1 while the store takes writes, 0 from a failed write until the next good one.",
    registers: [registry],
  });
  const instancesSwept = new Counter({
    name: `${PREFIX}bot_instances_swept_total`,
    help: "Bot instances removed by the sweep after their certificates expired.",
    registers: [registry],
  });
  const keyFetches = new Counter({
    name: `${PREFIX}oidc_key_fetches_total`,
    help: "Fetches of an oidc issuer's discovery document and JWKS, by issuer and result.",
    labelNames: ["issuer", "result"] as const,
    registers: [registry],
  });
  const keySetAge = new Gauge({
    name: `${PREFIX}oidc_key_set_age_seconds`,
    help: "Age of the key set held for an oidc issuer.",
    labelNames: ["issuer"] as const,
    registers: [registry],
  });

  const cacheCapacity = new Gauge({
    name: `${PREFIX}verified_token_cache_capacity`,
    help: "The most entries the verified-token cache holds (cache.max_entries).",
    registers: [registry],
  });
  const rateLimiterClients = new Gauge({
    name: `${PREFIX}rate_limiter_clients`,
    help: "Client addresses the rate limiter tracks a bucket for.",
    registers: [registry],
  });
  const rateLimiterCapacity = new Gauge({
    name: `${PREFIX}rate_limiter_clients_capacity`,
    help: "The most client addresses the rate limiter tracks; beyond it the least recent is forgotten.",
    registers: [registry],
  });
  const caExpiry = new Gauge({
    name: `${PREFIX}ca_certificate_expiry_timestamp_seconds`,
    help: "Unix time when the CA certificate that signs bot certificates expires (notAfter).",
    registers: [registry],
  });
  const ready = new Gauge({
    name: `${PREFIX}ready`,
    help: "1 when the service can serve joins (resources and CA loaded), else 0: what /readyz answers.",
    registers: [registry],
  });
  const lastReloadOk = new Gauge({
    name: `${PREFIX}last_reload_successful`,
    help: "1 when the most recent load or reload of the resources succeeded, 0 when it failed.",
    registers: [registry],
  });
  const auditFailures = new Counter({
    name: `${PREFIX}audit_write_failures_total`,
    help: "Audit lines that could not be written (their joins were refused unless audit.on_failure is continue).",
    registers: [registry],
  });
  const auditHealthy = new Gauge({
    name: `${PREFIX}audit_sink_healthy`,
    help: "1 while the audit trail can be written, 0 while it fails (the service is then not ready).",
    registers: [registry],
  });

  // Series that exist from the start, so `rate()` and alerts see a zero instead of nothing.
  attempts.inc({ result: "success", code: SUCCESS_CODE }, 0);
  for (const code of ERROR_CODES) attempts.inc({ result: "failure", code }, 0);
  for (const type of ["tls", "ssh"]) certificates.inc({ type }, 0);
  for (const result of ["hit", "miss"]) cacheLookups.inc({ result }, 0);
  for (const result of ["success", "failure"]) reloads.inc({ result }, 0);
  for (const result of ["success", "failure"]) duration.zero({ result });
  for (const kind of ["bot", "token"]) resources.set({ kind }, 0);
  cacheEntries.set(0);
  rateLimited.inc(0);
  ready.set(0);
  auditFailures.inc(0);
  auditHealthy.set(1);
  for (const target of LOCK_TARGET_FIELDS) lockedJoins.inc({ target }, 0);
  storeWriteFailures.inc(0);
  for (const result of ["success", "failure"]) storeRecordWait.zero({ result });
  storeUp.set(1);
  instancesSwept.inc(0);

  const scrapeHooks: Array<() => void> = [];

  const onJoin = (attempt: JoinAttempt): void => {
    const { outcome } = attempt;
    const result = outcome.ok ? "success" : "failure";
    attempts.inc({ result, code: outcome.ok ? SUCCESS_CODE : outcome.code });
    const seconds = attempt.durationSeconds;
    if (Number.isFinite(seconds)) duration.observe({ result }, Math.max(0, seconds));
    if (outcome.ok) {
      certificates.inc({ type: "tls" });
      certificates.inc({ type: "ssh" });
    }
    if (attempt.cache !== undefined) cacheLookups.inc({ result: attempt.cache });
    if (!outcome.ok && outcome.lock !== undefined) {
      lockedJoins.inc({ target: outcome.lock.targetField });
    }
  };

  return {
    contentType: registry.contentType,
    render: () => {
      for (const refresh of scrapeHooks) refresh();
      return registry.metrics();
    },
    onScrape(refresh) {
      scrapeHooks.push(refresh);
    },
    onJoin,
    recordReload(ok, at) {
      reloads.inc({ result: ok ? "success" : "failure" });
      lastReloadOk.set(ok ? 1 : 0);
      if (ok) lastReload.set(at.getTime() / 1000);
    },
    setResourcesLoaded(counts) {
      resources.set({ kind: "bot" }, counts.bot);
      resources.set({ kind: "token" }, counts.token);
    },
    recordRateLimited() {
      rateLimited.inc();
    },
    recordStoreWriteFailure() {
      storeWriteFailures.inc();
    },
    recordStoreRecordWait(seconds, written) {
      storeRecordWait.observe({ result: written ? "success" : "failure" }, seconds);
    },
    recordStoreWriteBatch(joins) {
      storeWriteBatch.observe(joins);
    },
    setStoreUp(up) {
      storeUp.set(up ? 1 : 0);
    },
    recordInstancesSwept(count) {
      instancesSwept.inc(count);
    },
    setCacheEntries(n) {
      cacheEntries.set(n);
    },
    recordKeyFetch(issuer, ok) {
      keyFetches.inc({ issuer, result: ok ? "success" : "failure" });
    },
    declareOidcIssuers(issuers) {
      for (const issuer of issuers) {
        for (const result of ["success", "failure"]) keyFetches.inc({ issuer, result }, 0);
      }
    },
    recordAuditWriteFailures(lines) {
      auditFailures.inc(lines);
    },
    setAuditSinkHealthy(healthy) {
      auditHealthy.set(healthy ? 1 : 0);
    },
    setKeySetAge(issuer, seconds) {
      keySetAge.set({ issuer }, seconds);
    },
    setCacheCapacity(n) {
      cacheCapacity.set(n);
    },
    setRateLimiterClients(n, capacity) {
      rateLimiterClients.set(n);
      rateLimiterCapacity.set(capacity);
    },
    setCaCertificateExpiry(notAfter) {
      caExpiry.set(notAfter.getTime() / 1000);
    },
    setReady(isReady) {
      ready.set(isReady ? 1 : 0);
    },
    async attemptCounts() {
      const { values } = await attempts.get();
      return values
        .filter((v) => v.value > 0)
        .map((v) => ({
          result: v.labels.result === "success" ? ("success" as const) : ("failure" as const),
          code: String(v.labels.code ?? ""),
          count: v.value,
        }));
    },
  };
}
