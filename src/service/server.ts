/**
 * The running join service: wires config, resources, CA, join pipeline, the two listeners,
 * metrics, audit, reload and shutdown. `kube-join serve` is a thin shell around `startJoinService`.
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { createServer as createHttpServer, type Server } from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { createSecureContext } from "node:tls";
import { openAuditTrail, type AuditTrail } from "../audit/audit.ts";
import { loadOrCreateAuthority } from "../ca/authority.ts";
import { isLoopbackHost, type ListenAddress, type ServiceConfig } from "../config/config.ts";
import { ConfigError } from "../errors.ts";
import { createJoinApp } from "../http/app.ts";
import { createDiagApp } from "../http/diag.ts";
import {
  caSection,
  describeCaCertificate,
  joinCountsSection,
  instancesSection,
  locksSection,
  readinessSection,
  reloadSection,
  resourcesSection,
  type ReloadRecord,
  type StatusPage,
} from "../http/status-page.ts";
import { RateLimiter } from "../http/rate-limit.ts";
import { InstanceLedger } from "../join/instance-ledger.ts";
import { JoinService } from "../join/join.ts";
import { LockWatcher } from "../join/lock-watcher.ts";
import { OidcKeySource, type OidcKeyLookup } from "../jwt/oidc.ts";
import type { Logger } from "../log.ts";
import type { VerifiedProof } from "../methods/join-method.ts";
import { kubernetesSpecOf } from "../methods/kubernetes/method.ts";
import { VerifiedTokenCache } from "../methods/verified-token-cache.ts";
import { createMetrics, type Metrics } from "../metrics/metrics.ts";
import { ResourceLoader } from "../resources/loader.ts";
import type { ResourceSet } from "../resources/types.ts";
import { openStore } from "../store/open-store.ts";
import type { Store } from "../store/store.ts";
import { startInstanceSweeper, type Sweeper } from "./instance-sweeper.ts";
import { ResourceReloader, type ReloadOutcome } from "./reloader.ts";
import { ServiceState } from "./state.ts";

/** How often node:http enforces `headers_timeout` and `request_timeout`. */
export const CONNECTIONS_CHECKING_INTERVAL_MS = 1_000;
/** Prometheus and the kubelet's probes need a handful. */
const DIAG_MAX_CONNECTIONS = 64;
/** Worker threads parsing the resources at start-up, at most (fewer on fewer cores). */
const STARTUP_LOAD_WORKERS = 2;

export interface RunningService {
  /** `http(s)://host:port` of the join listener (the real port when 0 was configured). */
  readonly joinUrl: string;
  readonly diagUrl: string;
  readonly state: ServiceState;
  readonly metrics: Metrics;
  /** Reloads the resource files (and the TLS certificate, when set). */
  reload(reason: string): Promise<void>;
  /** Stops accepting, lets requests in flight finish (up to `shutdown_timeout`), closes all. */
  shutdown(): Promise<void>;
}

export interface StartOptions {
  readonly log: Logger;
  /** Milliseconds since the epoch; default `Date.now`. */
  readonly now?: () => number;
}

/**
 * Starts the service: the audit trail first (a path that cannot be opened stops the start under
 * `audit.on_failure: refuse`, before any port is bound or CA key made), then listeners (so `/healthz` answers and joins get `not_ready` while the
 * CA is generated), then CA and resources. Rejects (after closing what it opened) when the CA or
 * the resources cannot be loaded, or a port cannot be bound.
 */
export async function startJoinService(
  config: ServiceConfig,
  options: StartOptions,
): Promise<RunningService> {
  const audit = await openAuditTrail({
    file: config.audit.file,
    onFailure: config.audit.onFailure,
    logger: options.log,
  });
  if (!audit.healthy) {
    options.log.warn(
      { file: config.audit.file },
      "audit.on_failure is continue: serving without an audit trail until the file can be opened; not ready meanwhile",
    );
  }
  let parts: ServiceParts;
  try {
    parts = buildService(config, options, audit);
  } catch (err) {
    // A TLS pair that does not load: the audit file opened above must not stay open.
    await audit.close();
    throw err;
  }
  let reloader: ResourceReloader | undefined;
  try {
    const urls = await listenAll(parts, config, options.log);
    reloader = await loadAndWatch(parts, config, options);
    options.log.info(
      {
        join_url: urls.joinUrl,
        diag_url: urls.diagUrl,
        cluster_name: config.clusterName,
        bots: parts.state.resources?.bots.size,
        tokens: parts.state.resources?.tokens.size,
        store:
          parts.store.store === undefined
            ? undefined
            : `${parts.store.store.engine} ${parts.store.store.location}`,
      },
      "kube-join ready",
    );
    return running(parts, config, options.log, urls, reloader);
  } catch (err) {
    reloader?.close();
    await parts.closeAll();
    throw err;
  }
}

/** The store and what runs on it; filled by `loadAndWatch`, closed by `closeAll`. */
interface StoreParts {
  store: Store | undefined;
  ledger: InstanceLedger | undefined;
  watcher: LockWatcher | undefined;
  sweeper: Sweeper | undefined;
}

/** Everything a running service is made of, built without I/O but for the audit file. */
interface ServiceParts {
  readonly state: ServiceState;
  readonly metrics: Metrics;
  readonly store: StoreParts;
  readonly joinServer: Server | HttpsServer;
  readonly diagServer: Server;
  readonly audit: AuditTrail;
  /** Set when shutdown starts: the join listener then answers `Connection: close`. */
  readonly markShuttingDown: () => void;
  /** Counts a load or reload and keeps it (and the last good one) for the status page. */
  readonly recordReload: (record: ReloadRecord) => void;
  readonly closeAll: () => Promise<void>;
}

/** Wires state, metrics, audit, caches, the oidc key source, the join service and both apps. */
function buildService(
  config: ServiceConfig,
  options: StartOptions,
  audit: AuditTrail,
): ServiceParts {
  const { log } = options;
  const now = options.now ?? Date.now;
  const state = new ServiceState();
  const metrics = createMetrics();
  const startedAt = new Date(now());
  audit.onWriteFailures((lines) => metrics.recordAuditWriteFailures(lines));
  audit.onHealthChange((healthy) => metrics.setAuditSinkHealthy(healthy));
  metrics.setAuditSinkHealthy(audit.healthy);
  const cache = new VerifiedTokenCache<VerifiedProof>({ maxEntries: config.cache.maxEntries, now });
  const rateLimiter = new RateLimiter({ ...config.rateLimit, now });
  metrics.setCacheCapacity(config.cache.maxEntries);
  const oidc = new OidcKeySource({
    extraCaFile: config.oidc.caFile,
    now,
    onFetch: (issuer, ok, error) => {
      metrics.recordKeyFetch(issuer, ok);
      if (!ok) log.warn({ issuer, error }, "fetching an oidc issuer's keys failed");
    },
  });
  const oidcKeys: OidcKeyLookup = (issuer, kid) => oidc.keysForIssuer(issuer, kid);
  metrics.onScrape(() => {
    metrics.setCacheEntries(cache.size);
    metrics.setRateLimiterClients(rateLimiter.clients, rateLimiter.capacity);
    metrics.setReady(state.ready && audit.healthy);
    for (const [issuer, age] of oidc.keySetAges()) metrics.setKeySetAge(issuer, age);
  });
  const onInternalError = (err: unknown, context: { readonly stage: string }): void => {
    log.error({ err, stage: context.stage }, "unexpected error while serving a request");
  };
  const storeParts: StoreParts = {
    store: undefined,
    ledger: undefined,
    watcher: undefined,
    sweeper: undefined,
  };
  const joins = new JoinService({
    instances: () => storeParts.ledger,
    clusterName: config.clusterName,
    certs: config.certs,
    snapshot: () => state.snapshot,
    now,
    cache,
    oidcKeys,
    listeners: [metrics.onJoin],
    auditTrail: audit,
    maxKeysWithoutKid: config.maxKeysWithoutKid,
    onInternalError,
  });
  let shuttingDown = false;
  const app = createJoinApp({
    joins,
    trusted: () => state.authority?.trusted(),
    rateLimiter,
    trustProxy: config.trustProxy,
    onRateLimited: () => metrics.recordRateLimited(),
    onInternalError,
    isShuttingDown: () => shuttingDown,
  });
  // The last load or reload of the resources, and the last good one, for the status page.
  let lastReload: ReloadRecord | undefined;
  let lastGoodReload: ReloadRecord | undefined;
  const recordReload = (record: ReloadRecord): void => {
    lastReload = record;
    if (record.ok) lastGoodReload = record;
    metrics.recordReload(record.ok, record.at);
  };
  // The page's sections, in order; a new subsystem adds its own here.
  const status = async (): Promise<StatusPage> => {
    const at = new Date(now());
    const notReady: string[] = [];
    if (state.authority === undefined)
      notReady.push("The certificate authority is not loaded yet.");
    if (state.resources === undefined) notReady.push("The resources are not loaded yet.");
    if (!audit.healthy) notReady.push("The audit trail cannot be written.");
    if (shuttingDown) notReady.push("Shutting down: requests in flight are finishing.");
    return {
      title: config.clusterName,
      now: at,
      sections: [
        readinessSection({ ready: state.ready && audit.healthy, reasons: notReady, startedAt }, at),
        reloadSection(lastReload, lastGoodReload, at),
        joinCountsSection(await metrics.attemptCounts(), startedAt),
        resourcesSection(state.resources, at, new Map(oidc.keySetAges())),
        caSection(state.authority?.trusted(), at),
        instancesSection(
          storeParts.store === undefined
            ? undefined
            : await storeParts.store.list().catch(() => "unavailable" as const),
          at,
        ),
        locksSection(storeParts.watcher?.all ?? [], at),
      ],
    };
  };
  const diagApp = createDiagApp({
    metrics,
    isReady: () => state.ready && audit.healthy,
    notReadyMessage: () =>
      state.ready
        ? "The audit trail cannot be written."
        : "Resources or the certificate authority are not loaded yet.",
    logger: log,
    status,
  });

  const tlsFiles = config.tls;
  // A join is milliseconds of work on a body of at most 64 KiB: a client that dribbles its
  // headers or body (slowloris) is cut off long before Node's 60 s / 300 s defaults. Node checks
  // these deadlines every `connectionsCheckingInterval` (30 s by default, which let a 10 s
  // deadline run to 39 s): once a second keeps them to within about a second.
  const timeouts = {
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS,
  };
  const joinServer: Server | HttpsServer =
    tlsFiles === undefined
      ? createHttpServer(timeouts, app)
      : createHttpsServer({ ...timeouts, ...readTlsFiles(tlsFiles) }, app);
  const diagServer = createHttpServer(timeouts, diagApp);
  const servers = [joinServer, diagServer];
  // At the cap, node:http closes a new connection right after accepting it (cheap), while the
  // connections already open, keep-alive clients among them, go on; file descriptors are kept for
  // the audit file, the CA and resource reloads.
  joinServer.maxConnections = config.maxConnections;
  diagServer.maxConnections = DIAG_MAX_CONNECTIONS;
  return {
    state,
    metrics,
    store: storeParts,
    joinServer,
    diagServer,
    audit,
    markShuttingDown: () => {
      shuttingDown = true;
    },
    recordReload,
    closeAll: async () => {
      for (const server of servers) server.closeAllConnections();
      await Promise.all(
        servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))),
      );
      await audit.close();
      storeParts.watcher?.stop();
      storeParts.sweeper?.stop();
      storeParts.ledger = undefined;
      await storeParts.store?.close().catch((err: unknown) => {
        log.warn({ err }, "closing the store failed");
      });
      storeParts.store = undefined;
    },
  };
}

/** Binds the diag listener, then the join listener; warns about plain HTTP off loopback. */
async function listenAll(
  parts: ServiceParts,
  config: ServiceConfig,
  log: Logger,
): Promise<{ readonly joinUrl: string; readonly diagUrl: string }> {
  const diagAddr = await listen(parts.diagServer, config.diagAddr);
  const joinAddr = await listen(parts.joinServer, config.listenAddr);
  const scheme = config.tls === undefined ? "http" : "https";
  const joinUrl = `${scheme}://${formatHost(joinAddr)}`;
  if (config.tls === undefined && !isLoopbackHost(config.listenAddr.host)) {
    log.warn(
      { listen_addr: joinUrl },
      "THE JOIN LISTENER SERVES PLAIN HTTP ON A NON-LOOPBACK ADDRESS: service-account tokens and certificates cross the network unencrypted. Set tls.cert_file and tls.key_file, or put a TLS-terminating proxy in front.",
    );
  }
  return { joinUrl, diagUrl: `http://${formatHost(diagAddr)}` };
}

/** Loads (or first creates) the CA, loads the resources, and starts watching them for reloads. */
async function loadAndWatch(
  parts: ServiceParts,
  config: ServiceConfig,
  options: StartOptions,
): Promise<ResourceReloader> {
  const { state, metrics } = parts;
  const { log } = options;
  const now = options.now ?? Date.now;
  await openStoreParts(parts, config, log, now);
  const authority = await loadOrCreateAuthority({
    clusterName: config.clusterName,
    dataDir: config.dataDir,
    tlsKeyAlgorithm: config.ca.tlsKeyType,
    ...(config.ca.files === undefined ? {} : { files: { ...config.ca.files } }),
    extraTrusted: {
      tlsCertFiles: [...config.ca.extraTrusted.tlsCertFiles],
      sshPublicKeyFiles: [...config.ca.extraTrusted.sshPublicKeyFiles],
    },
  });
  state.setAuthority(authority);
  const signingCa = authority.trusted().tlsCaCerts[0];
  if (signingCa !== undefined) {
    metrics.setCaCertificateExpiry(describeCaCertificate(signingCa).notAfter);
  }

  let applied: ResourceSet | undefined;
  const applyResources = (resources: ResourceSet, at: Date, reason: string): void => {
    // The loader hands back the very set it gave last time when nothing parsed differently:
    // nothing to publish then (10,000 tokens walked for nothing, on the event loop).
    if (resources !== applied) {
      applied = resources;
      state.setResources(resources);
      parts.store.watcher?.setResourceLocks([...resources.locks.values()]);
      metrics.setResourcesLoaded({ bot: resources.bots.size, token: resources.tokens.size });
      metrics.declareOidcIssuers(
        [...resources.tokens.values()].flatMap((t) => {
          const spec = kubernetesSpecOf(t.join);
          return spec?.type === "oidc" ? [spec.issuer] : [];
        }),
      );
    }
    parts.recordReload({ at, ok: true, reason, problems: [] });
    for (const warning of resources.warnings) log.warn({ warning }, "resource warning");
  };
  // Parsing runs in worker threads: every core at start-up (nothing is served yet), one for a
  // reload (the event loop keeps the other, and answers joins and probes throughout).
  const loader = new ResourceLoader();
  let initial: ResourceSet;
  try {
    initial = await loader.load(config.resources, {
      workers: Math.min(STARTUP_LOAD_WORKERS, availableParallelism()),
    });
  } catch (err) {
    loader.close();
    throw err;
  }
  applyResources(initial, new Date(now()), "start-up");

  const reloader = new ResourceReloader({
    paths: config.resources,
    load: (paths) => loader.load(paths, { workers: 1, background: true }),
    onReload: (outcome: ReloadOutcome) => {
      const at = new Date(now());
      if (outcome.ok) {
        applyResources(outcome.resources, at, outcome.reason);
        log.info(
          {
            reason: outcome.reason,
            bots: outcome.resources.bots.size,
            tokens: outcome.resources.tokens.size,
            files_parsed: loader.lastLoad?.parsed,
            files_reused: loader.lastLoad?.reused,
            files_read: loader.lastLoad?.read,
            parsed_in: loader.lastLoad?.parsedIn,
            load_ms: Math.round(loader.lastLoad?.ms ?? 0),
          },
          "resources reloaded",
        );
        return;
      }
      const problems = problemsOf(outcome.error);
      parts.recordReload({ at, ok: false, reason: outcome.reason, problems });
      log.error(
        { reason: outcome.reason, problems },
        "resource reload failed; the previous resources keep serving",
      );
    },
    onWatchError: (err, path) => log.warn({ err, path }, "cannot watch resource path"),
    onClose: () => loader.close(),
  });
  try {
    await reloader.watch(initial.files);
  } catch (err) {
    reloader.close();
    throw err;
  }
  return reloader;
}

/**
 * Opens the store (a StoreOpenError stops start-up with its one-line message), reads its locks
 * once, then keeps polling them; records instances through the ledger; sweeps expired ones.
 */
async function openStoreParts(
  parts: ServiceParts,
  config: ServiceConfig,
  log: Logger,
  now: () => number,
): Promise<void> {
  const { metrics } = parts;
  const store = await openStore(config.store.backend, {
    serving: true,
    onWriteBatch: (joins) => metrics.recordStoreWriteBatch(joins),
    onCheckpointerError: (err) =>
      log.warn(
        { err },
        "the SQLite checkpoint thread failed; SQLite checkpoints inside commits instead (slower joins)",
      ),
    onIdleError: (err) => log.warn({ err }, "a store connection was lost; the pool reconnects"),
  });
  parts.store.store = store;
  const watcher = new LockWatcher({
    store,
    intervalMs: config.store.lockPollIntervalMs,
    onPollError: (err) =>
      log.warn({ err }, "reading locks from the store failed; the last locks read stay in force"),
    onPollRecovered: () => log.info("reading locks from the store works again"),
  });
  await watcher.start();
  parts.store.watcher = watcher;
  parts.store.ledger = new InstanceLedger({
    store,
    locks: watcher,
    onWriteFailure: () => metrics.recordStoreWriteFailure(),
    onRecordWait: (seconds, written) => metrics.recordStoreRecordWait(seconds, written),
    onStoreDown: (err) => {
      metrics.setStoreUp(false);
      log.error({ err }, "store unavailable: joins are refused until it is back");
    },
    onStoreUp: () => {
      metrics.setStoreUp(true);
      log.info("store available again");
    },
  });
  const sweeper = startInstanceSweeper({
    store,
    retentionMs: config.store.instanceRetentionMs,
    now,
    onSwept: (removed) => {
      metrics.recordInstancesSwept(removed);
      log.info({ removed }, "expired bot instances swept");
    },
    onError: (err) => log.warn({ err }, "sweeping expired bot instances failed; next try later"),
  });
  parts.store.sweeper = sweeper;
  void sweeper.sweepOnce();
}

/** The lifecycle of a started service: reload (resources and the TLS pair) and one shutdown. */
function running(
  parts: ServiceParts,
  config: ServiceConfig,
  log: Logger,
  urls: { readonly joinUrl: string; readonly diagUrl: string },
  reloader: ResourceReloader,
): RunningService {
  const { joinServer } = parts;
  const tlsFiles = config.tls;
  let shutdownPromise: Promise<void> | undefined;
  return {
    ...urls,
    state: parts.state,
    metrics: parts.metrics,
    async reload(reason) {
      await parts.audit.checkFile();
      if (tlsFiles !== undefined && "setSecureContext" in joinServer) {
        try {
          joinServer.setSecureContext(readTlsFiles(tlsFiles));
        } catch (err) {
          log.error(
            { problems: problemsOf(err) },
            "TLS certificate reload failed; the previous one keeps serving",
          );
        }
      }
      await reloader.reload(reason);
    },
    shutdown() {
      shutdownPromise ??= (async () => {
        parts.markShuttingDown();
        reloader.close();
        await drain(joinServer, config.shutdownTimeoutMs, log);
        await parts.closeAll();
      })();
      return shutdownPromise;
    },
  };
}

/**
 * Stops accepting and waits for requests in flight. Idle keep-alive connections are closed right
 * away (and again as in-flight responses finish); whatever is left at the deadline is cut.
 */
async function drain(server: Server | HttpsServer, timeoutMs: number, log: Logger): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const sweep = setInterval(() => server.closeIdleConnections(), 50);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeoutMs);
  });
  const result = await Promise.race([closed.then(() => "drained" as const), deadline]);
  clearInterval(sweep);
  clearTimeout(timer);
  if (result === "timeout") {
    log.warn(
      { timeout_ms: timeoutMs },
      "shutdown timeout reached; closing the remaining connections",
    );
    server.closeAllConnections();
    await closed;
  }
}

function listen(server: Server | HttpsServer, address: ListenAddress): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once("error", onError);
    server.listen(address.port, address.host, () => {
      server.off("error", onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function formatHost(address: AddressInfo): string {
  return address.family === "IPv6"
    ? `[${address.address}]:${address.port}`
    : `${address.address}:${address.port}`;
}

/**
 * Reads the listener's certificate and key and checks they form a usable pair, so a bad file stops
 * start-up (or a reload) with a message naming the files rather than a bare OpenSSL error.
 */
function readTlsFiles(files: { readonly certFile: string; readonly keyFile: string }): {
  cert: Buffer;
  key: Buffer;
} {
  const read = (file: string, key: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError([
        `${file}: ${key}: cannot read (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      ]);
    }
  };
  const pair = {
    cert: read(files.certFile, "tls.cert_file"),
    key: read(files.keyFile, "tls.key_file"),
  };
  try {
    createSecureContext(pair);
  } catch (err) {
    throw new ConfigError([
      `${files.certFile}, ${files.keyFile}: tls: not a usable certificate and key pair (${(err as Error).message})`,
    ]);
  }
  return pair;
}

/** The problems of a ConfigError, or a one-line description of anything else. */
export function problemsOf(err: unknown): readonly string[] {
  if (err instanceof ConfigError) return err.problems;
  return [err instanceof Error ? err.message : String(err)];
}
