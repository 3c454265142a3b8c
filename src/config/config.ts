/**
 * The service's config file (`kube-join serve --config FILE`): parsed once at start-up, checked
 * eagerly by the one admin-YAML reader (`src/yaml/field-reader.ts`, the dialect of the resources
 * too), every problem reported at once as `file:line:col: key.path: message`. Relative paths
 * resolve against the config file's directory.
 *
 * Imports only leaves and the YAML reader: loading the config must not load the CA or a crypto
 * library (test/config.test.ts checks that importing this module leaves `Reflect` alone).
 */
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { ConfigError } from "../errors.ts";
import { CLUSTER_NAME_PATTERN } from "../lib/cluster-name.ts";
import { isPlainObject } from "../lib/plain-object.ts";
import {
  Diagnostics,
  FieldReader,
  describe,
  inFileOrder,
  orDefault,
} from "../yaml/field-reader.ts";
import { parseYamlDocument, type FieldPath } from "../yaml/yaml-source.ts";
import type { StoreConfig } from "../store/open-store.ts";

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** What `ca.tls_key_type` may ask for when kube-join generates its TLS CA key. */
/** `audit.on_failure`: refuse a join whose audit line cannot be written, or serve it and lose it. */
export const AUDIT_FAILURE_POLICIES = ["refuse", "continue"] as const;
export type AuditFailurePolicy = (typeof AUDIT_FAILURE_POLICIES)[number];

export const CA_TLS_KEY_ALGORITHMS = ["ecdsa-p256", "rsa-2048"] as const;
export type CaTlsKeyAlgorithm = (typeof CA_TLS_KEY_ALGORITHMS)[number];

/** A `host:port` to bind; `[::1]:3025` for IPv6. Port 0 picks a free port (tests). */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** The validated configuration, with defaults filled in and every path absolute. */
export interface ServiceConfig {
  /** Absolute path of the config file itself. */
  readonly file: string;
  readonly clusterName: string;
  readonly listenAddr: ListenAddress;
  readonly diagAddr: ListenAddress;
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  /** Take the client address from `X-Forwarded-For` (only behind a proxy that sets it). */
  readonly trustProxy: boolean;
  /** Resource files and directories, absolute. */
  readonly resources: readonly string[];
  readonly dataDir: string;
  readonly ca: {
    readonly tlsKeyType: CaTlsKeyAlgorithm;
    /** Key and certificate files (e.g. a Secret mount) instead of the ones in `data_dir`. */
    readonly files:
      | { readonly tlsKeyFile: string; readonly tlsCertFile: string; readonly sshKeyFile: string }
      | undefined;
    readonly extraTrusted: {
      readonly tlsCertFiles: readonly string[];
      readonly sshPublicKeyFiles: readonly string[];
    };
  };
  readonly certs: { readonly defaultTtlMs: number; readonly maxTtlMs: number };
  /** `oidc` tokens: a PEM bundle of extra CAs trusted for issuer TLS (added to Node's roots). */
  readonly oidc: { readonly caFile: string | undefined };
  readonly rateLimit: {
    readonly average: number;
    readonly periodMs: number;
    readonly burst: number;
  };
  readonly cache: { readonly maxEntries: number };
  /** Audit log file (undefined: stdout), and what a join gets when its line cannot be written. */
  readonly audit: { readonly file: string | undefined; readonly onFailure: AuditFailurePolicy };
  readonly logLevel: LogLevel;
  readonly shutdownTimeoutMs: number;
  /** Open connections the join listener accepts at once; more are closed at accept. */
  readonly maxConnections: number;
  /** Time a client has for its request headers, and for the whole request. */
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  /** Keys tried for a JWT that names no `kid` (kube < 1.16); more fail `jwt_signature_invalid`. */
  readonly maxKeysWithoutKid: number;
  /** Where bot instances and locks live (docs/store.md). */
  readonly store: {
    readonly backend: StoreConfig;
    /** How long an instance is kept after its latest certificates expired. */
    readonly instanceRetentionMs: number;
    /** How often each serve reads the store's locks. */
    readonly lockPollIntervalMs: number;
  };
}

export const STORE_ENGINES = ["sqlite", "postgres", "memory"] as const;
/** Connections per serve process to PostgreSQL when `store.postgres.pool_size` is not given. */
export const DEFAULT_POSTGRES_POOL_SIZE = 10;
const MAX_POSTGRES_POOL_SIZE = 100;
const MIN_LOCK_POLL_MS = 100;
/** The promise: a new lock is enforced within 5 s. */
const MAX_LOCK_POLL_MS = 5_000;

/**
 * The one place each default is declared, keyed by the key path an admin writes and valued as an
 * admin would write it: the reader checks a default exactly like a given value, and the
 * configuration reference in docs/service.md quotes these verbatim (a test holds it to that).
 */
export const CONFIG_DEFAULTS = {
  listen_addr: "127.0.0.1:3025",
  diag_addr: "127.0.0.1:3000",
  trust_proxy: false,
  data_dir: "./data",
  "ca.tls_key_type": "ecdsa-p256",
  "certs.default_ttl": "1h",
  "certs.max_ttl": "24h",
  "rate_limit.average": 120,
  "rate_limit.period": "1m",
  "rate_limit.burst": 480,
  "cache.max_entries": 100_000,
  log_level: "info",
  shutdown_timeout: "10s",
  "audit.on_failure": "refuse",
  max_connections: 512,
  headers_timeout: "10s",
  request_timeout: "30s",
  max_keys_without_kid: 4,
  "store.engine": "sqlite",
  "store.instance_retention": "24h",
  "store.lock_poll_interval": "2s",
} as const;

const ROOT_FIELDS = [
  "cluster_name",
  "listen_addr",
  "diag_addr",
  "tls",
  "trust_proxy",
  "resources",
  "data_dir",
  "ca",
  "certs",
  "oidc",
  "rate_limit",
  "cache",
  "audit",
  "log_level",
  "shutdown_timeout",
  "max_connections",
  "headers_timeout",
  "request_timeout",
  "max_keys_without_kid",
  "store",
] as const;

const MIN_DEFAULT_TTL_MS = 60_000;
// Beyond setTimeout's range Node fires at once, which would cut the drain short.
const MAX_SHUTDOWN_TIMEOUT_MS = 10 * 60_000;

/** Reads and validates a config file. @throws ConfigError with every problem found. */
export async function loadConfig(file: string): Promise<ServiceConfig> {
  const absolute = resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, "utf8");
  } catch (err) {
    throw new ConfigError([
      `${file}: cannot read config file (${(err as NodeJS.ErrnoException).code ?? "error"})`,
    ]);
  }
  return parseConfig(file, text, dirname(absolute));
}

/**
 * Validates a config text. `file` names the file in messages; `baseDir` anchors relative paths.
 * @throws ConfigError with every problem found, top to bottom.
 */
export function parseConfig(file: string, text: string, baseDir: string): ServiceConfig {
  const source = parseYamlDocument(file, text);
  const diagnostics = new Diagnostics();
  const r = new FieldReader(source, diagnostics);
  let config: ServiceConfig | undefined;
  if (source.value === undefined || source.value === null) {
    r.error(
      [],
      "the config file is empty: it must be a mapping with at least cluster_name and resources",
    );
  } else if (!isPlainObject(source.value)) {
    r.error([], `the config file must be a mapping, got ${describe(source.value)}`);
  } else {
    config = readRoot(r, source.value, resolve(file), baseDir);
  }
  if (config === undefined || diagnostics.problems.length > 0) {
    throw new ConfigError(inFileOrder(diagnostics.problems, [file]));
  }
  return config;
}

type Block = Record<string, unknown>;

/**
 * One reader per block below; each returns its part, or undefined when the part had a problem
 * (recorded in `r`). The config exists only when no part had one.
 */
function readRoot(
  r: FieldReader,
  root: Block,
  file: string,
  baseDir: string,
): ServiceConfig | undefined {
  r.mapping([], root, ROOT_FIELDS);
  const clusterName = readClusterName(r, root["cluster_name"]);
  const listeners = readListeners(r, root, baseDir);
  const resources = readResources(r, root["resources"], baseDir);
  const dataDir = r.optionalPath(
    ["data_dir"],
    orDefault(root["data_dir"], CONFIG_DEFAULTS.data_dir),
    baseDir,
  );
  const ca = readCa(r, root["ca"], baseDir);
  const certs = readCerts(r, root["certs"]);
  const oidc = readOidc(r, root["oidc"], baseDir);
  const rateLimit = readRateLimit(r, root["rate_limit"]);
  const cache = readCache(r, root["cache"]);
  const audit = readAudit(r, root["audit"], baseDir);
  const lifecycle = readLifecycle(r, root);
  const connections = readConnectionLimits(r, root);
  const maxKeysWithoutKid = readMaxKeysWithoutKid(r, root["max_keys_without_kid"]);
  const store = dataDir === undefined ? undefined : readStore(r, root["store"], baseDir, dataDir);
  if (
    r.problemCount > 0 ||
    clusterName === undefined ||
    listeners === undefined ||
    resources === undefined ||
    dataDir === undefined ||
    ca === undefined ||
    certs === undefined ||
    oidc === undefined ||
    rateLimit === undefined ||
    cache === undefined ||
    audit === undefined ||
    lifecycle === undefined ||
    connections === undefined ||
    maxKeysWithoutKid === undefined ||
    store === undefined
  ) {
    return undefined;
  }
  return {
    file,
    clusterName,
    ...listeners,
    resources,
    dataDir,
    ca,
    certs,
    oidc,
    rateLimit,
    cache,
    audit,
    ...lifecycle,
    ...connections,
    maxKeysWithoutKid,
    store,
  };
}

function readClusterName(r: FieldReader, value: unknown): string | undefined {
  const path = ["cluster_name"];
  const name = r.requiredString(path, value, "must be set (the JWT audience and the CA's name)");
  if (name === undefined) return undefined;
  if (!CLUSTER_NAME_PATTERN.test(name)) {
    r.error(
      path,
      "must be letters, digits, '.', '-' or '_', starting with a letter or digit (it names the CA and the SPIFFE trust domain)",
    );
    return undefined;
  }
  return name;
}

/** `listen_addr`, `diag_addr`, `tls` and `trust_proxy`: how the two listeners open. */
function readListeners(
  r: FieldReader,
  root: Block,
  baseDir: string,
): Pick<ServiceConfig, "listenAddr" | "diagAddr" | "tls" | "trustProxy"> | undefined {
  const before = r.problemCount;
  const listenAddr = readAddress(
    r,
    ["listen_addr"],
    orDefault(root["listen_addr"], CONFIG_DEFAULTS.listen_addr),
  );
  const diagAddr = readAddress(
    r,
    ["diag_addr"],
    orDefault(root["diag_addr"], CONFIG_DEFAULTS.diag_addr),
  );
  const block = r.optionalMapping(["tls"], root["tls"], ["cert_file", "key_file"]);
  let tls: ServiceConfig["tls"];
  if (block !== undefined) {
    const certFile = r.requiredPath(["tls", "cert_file"], block["cert_file"], baseDir);
    const keyFile = r.requiredPath(["tls", "key_file"], block["key_file"], baseDir);
    if (certFile !== undefined && keyFile !== undefined) tls = { certFile, keyFile };
  }
  const trustProxy = r.optionalBoolean(
    ["trust_proxy"],
    orDefault(root["trust_proxy"], CONFIG_DEFAULTS.trust_proxy),
  );
  if (
    r.problemCount > before ||
    listenAddr === undefined ||
    diagAddr === undefined ||
    trustProxy === undefined
  ) {
    return undefined;
  }
  return { listenAddr, diagAddr, tls, trustProxy };
}

function readAddress(r: FieldReader, path: FieldPath, value: unknown): ListenAddress | undefined {
  if (typeof value !== "string") {
    r.error(path, `must be "host:port", got ${describe(value)}`);
    return undefined;
  }
  const parsed = parseListenAddress(value);
  if (typeof parsed === "string") {
    r.error(path, parsed);
    return undefined;
  }
  return parsed;
}

function readResources(r: FieldReader, value: unknown, baseDir: string): string[] | undefined {
  const before = r.problemCount;
  const list = r.pathList(["resources"], value, baseDir);
  if (r.problemCount > before) return undefined;
  if (list === undefined || list.length === 0) {
    r.error(["resources"], "must list at least one resource file or directory");
    return undefined;
  }
  return list;
}

function readCa(r: FieldReader, value: unknown, baseDir: string): ServiceConfig["ca"] | undefined {
  const before = r.problemCount;
  const block =
    r.optionalMapping(["ca"], value, [
      "tls_key_type",
      "tls_key_file",
      "tls_cert_file",
      "ssh_key_file",
      "extra_trusted",
    ]) ?? {};
  const tlsKeyType = r.optionalEnum(
    ["ca", "tls_key_type"],
    orDefault(block["tls_key_type"], CONFIG_DEFAULTS["ca.tls_key_type"]),
    CA_TLS_KEY_ALGORITHMS,
  );
  const tlsKeyFile = r.optionalPath(["ca", "tls_key_file"], block["tls_key_file"], baseDir);
  const tlsCertFile = r.optionalPath(["ca", "tls_cert_file"], block["tls_cert_file"], baseDir);
  const sshKeyFile = r.optionalPath(["ca", "ssh_key_file"], block["ssh_key_file"], baseDir);
  let files: ServiceConfig["ca"]["files"];
  if (tlsKeyFile !== undefined && tlsCertFile !== undefined && sshKeyFile !== undefined) {
    files = { tlsKeyFile, tlsCertFile, sshKeyFile };
  } else if ([tlsKeyFile, tlsCertFile, sshKeyFile].some((f) => f !== undefined)) {
    r.error(
      ["ca"],
      "tls_key_file, tls_cert_file and ssh_key_file go together: give all three or none",
    );
  }
  const extraPath = ["ca", "extra_trusted"];
  const extra =
    r.optionalMapping(extraPath, block["extra_trusted"], [
      "tls_cert_files",
      "ssh_public_key_files",
    ]) ?? {};
  const extraTrusted = {
    tlsCertFiles: r.pathList([...extraPath, "tls_cert_files"], extra["tls_cert_files"], baseDir),
    sshPublicKeyFiles: r.pathList(
      [...extraPath, "ssh_public_key_files"],
      extra["ssh_public_key_files"],
      baseDir,
    ),
  };
  if (r.problemCount > before || tlsKeyType === undefined) return undefined;
  return {
    tlsKeyType,
    files,
    extraTrusted: {
      tlsCertFiles: extraTrusted.tlsCertFiles ?? [],
      sshPublicKeyFiles: extraTrusted.sshPublicKeyFiles ?? [],
    },
  };
}

function readCerts(r: FieldReader, value: unknown): ServiceConfig["certs"] | undefined {
  const before = r.problemCount;
  const block = r.optionalMapping(["certs"], value, ["default_ttl", "max_ttl"]) ?? {};
  const defaultTtlMs = r.optionalDuration(
    ["certs", "default_ttl"],
    orDefault(block["default_ttl"], CONFIG_DEFAULTS["certs.default_ttl"]),
  );
  const maxTtlMs = r.optionalDuration(
    ["certs", "max_ttl"],
    orDefault(block["max_ttl"], CONFIG_DEFAULTS["certs.max_ttl"]),
  );
  if (defaultTtlMs !== undefined && defaultTtlMs < MIN_DEFAULT_TTL_MS) {
    r.error(["certs", "default_ttl"], "must be at least 1m");
  }
  if (defaultTtlMs !== undefined && maxTtlMs !== undefined && maxTtlMs < defaultTtlMs) {
    r.error(["certs", "max_ttl"], "must not be shorter than certs.default_ttl");
  }
  if (r.problemCount > before || defaultTtlMs === undefined || maxTtlMs === undefined) {
    return undefined;
  }
  return { defaultTtlMs, maxTtlMs };
}

function readOidc(
  r: FieldReader,
  value: unknown,
  baseDir: string,
): ServiceConfig["oidc"] | undefined {
  const before = r.problemCount;
  const block = r.optionalMapping(["oidc"], value, ["ca_file"]) ?? {};
  const caFile = r.optionalPath(["oidc", "ca_file"], block["ca_file"], baseDir);
  return r.problemCount > before ? undefined : { caFile };
}

function readRateLimit(r: FieldReader, value: unknown): ServiceConfig["rateLimit"] | undefined {
  const before = r.problemCount;
  const block = r.optionalMapping(["rate_limit"], value, ["average", "period", "burst"]) ?? {};
  const average = r.optionalPositiveInt(
    ["rate_limit", "average"],
    orDefault(block["average"], CONFIG_DEFAULTS["rate_limit.average"]),
  );
  const periodMs = r.optionalDuration(
    ["rate_limit", "period"],
    orDefault(block["period"], CONFIG_DEFAULTS["rate_limit.period"]),
  );
  const burst = r.optionalPositiveInt(
    ["rate_limit", "burst"],
    orDefault(block["burst"], CONFIG_DEFAULTS["rate_limit.burst"]),
  );
  if (periodMs === 0) r.error(["rate_limit", "period"], "must be longer than 0");
  if (average !== undefined && burst !== undefined && burst < average) {
    // Teleport's limiter never lets the bucket hold fewer than one period's worth.
    r.error(["rate_limit", "burst"], "must be at least rate_limit.average");
  }
  if (
    r.problemCount > before ||
    average === undefined ||
    periodMs === undefined ||
    burst === undefined
  ) {
    return undefined;
  }
  return { average, periodMs, burst };
}

function readCache(r: FieldReader, value: unknown): ServiceConfig["cache"] | undefined {
  const block = r.optionalMapping(["cache"], value, ["max_entries"]) ?? {};
  const maxEntries = r.optionalPositiveInt(
    ["cache", "max_entries"],
    orDefault(block["max_entries"], CONFIG_DEFAULTS["cache.max_entries"]),
  );
  return maxEntries === undefined ? undefined : { maxEntries };
}

function readAudit(
  r: FieldReader,
  value: unknown,
  baseDir: string,
): ServiceConfig["audit"] | undefined {
  const before = r.problemCount;
  const block = r.optionalMapping(["audit"], value, ["file", "on_failure"]) ?? {};
  const file = r.optionalPath(["audit", "file"], block["file"], baseDir);
  const onFailure = r.optionalEnum(
    ["audit", "on_failure"],
    orDefault(block["on_failure"], CONFIG_DEFAULTS["audit.on_failure"]),
    AUDIT_FAILURE_POLICIES,
  );
  return r.problemCount > before || onFailure === undefined ? undefined : { file, onFailure };
}

/** Bounds the signature checks one kid-less JWT may cost (each is CPU an attacker spends for free). */
const MAX_KEYS_WITHOUT_KID = 50;

function readMaxKeysWithoutKid(r: FieldReader, value: unknown): number | undefined {
  const max = r.optionalPositiveInt(
    ["max_keys_without_kid"],
    orDefault(value, CONFIG_DEFAULTS.max_keys_without_kid),
  );
  if (max !== undefined && max > MAX_KEYS_WITHOUT_KID) {
    r.error(["max_keys_without_kid"], `must be at most ${MAX_KEYS_WITHOUT_KID}`);
    return undefined;
  }
  return max;
}

/** `max_connections`, `headers_timeout`, `request_timeout`: what a client may hold. */
function readConnectionLimits(
  r: FieldReader,
  root: Block,
): Pick<ServiceConfig, "maxConnections" | "headersTimeoutMs" | "requestTimeoutMs"> | undefined {
  const before = r.problemCount;
  const maxConnections = r.optionalPositiveInt(
    ["max_connections"],
    orDefault(root["max_connections"], CONFIG_DEFAULTS.max_connections),
  );
  const headersTimeoutMs = r.optionalDuration(
    ["headers_timeout"],
    orDefault(root["headers_timeout"], CONFIG_DEFAULTS.headers_timeout),
  );
  const requestTimeoutMs = r.optionalDuration(
    ["request_timeout"],
    orDefault(root["request_timeout"], CONFIG_DEFAULTS.request_timeout),
  );
  if (headersTimeoutMs !== undefined && headersTimeoutMs < 1000) {
    r.error(["headers_timeout"], "must be at least 1s");
  }
  if (
    headersTimeoutMs !== undefined &&
    requestTimeoutMs !== undefined &&
    requestTimeoutMs < headersTimeoutMs
  ) {
    // node:http refuses a request timeout shorter than the headers timeout.
    r.error(["request_timeout"], "must not be shorter than headers_timeout");
  }
  if (
    r.problemCount > before ||
    maxConnections === undefined ||
    headersTimeoutMs === undefined ||
    requestTimeoutMs === undefined
  ) {
    return undefined;
  }
  return { maxConnections, headersTimeoutMs, requestTimeoutMs };
}

/**
 * `store`: SQLite in `data_dir` unless told otherwise. A password is never taken from the config
 * text: it comes from `password_file`, `url_file` (a Secret) or `PGPASSWORD`.
 */
function readStore(
  r: FieldReader,
  value: unknown,
  baseDir: string,
  dataDir: string,
): ServiceConfig["store"] | undefined {
  const before = r.problemCount;
  const block =
    r.optionalMapping(["store"], value, [
      "engine",
      "sqlite",
      "postgres",
      "instance_retention",
      "lock_poll_interval",
    ]) ?? {};
  const engine = r.optionalEnum(
    ["store", "engine"],
    orDefault(block["engine"], CONFIG_DEFAULTS["store.engine"]),
    STORE_ENGINES,
  );
  const instanceRetentionMs = r.optionalDuration(
    ["store", "instance_retention"],
    orDefault(block["instance_retention"], CONFIG_DEFAULTS["store.instance_retention"]),
  );
  const lockPollIntervalMs = r.optionalDuration(
    ["store", "lock_poll_interval"],
    orDefault(block["lock_poll_interval"], CONFIG_DEFAULTS["store.lock_poll_interval"]),
  );
  if (
    lockPollIntervalMs !== undefined &&
    (lockPollIntervalMs < MIN_LOCK_POLL_MS || lockPollIntervalMs > MAX_LOCK_POLL_MS)
  ) {
    r.error(
      ["store", "lock_poll_interval"],
      "must be between 100ms and 5s (a new lock must be enforced within 5 s)",
    );
  }
  const sqlite = r.optionalMapping(["store", "sqlite"], block["sqlite"], ["path"]);
  const postgres = r.optionalMapping(["store", "postgres"], block["postgres"], [
    "url",
    "url_file",
    "password_file",
    "pool_size",
  ]);
  if (engine !== undefined && engine !== "sqlite" && sqlite !== undefined) {
    r.error(["store", "sqlite"], `is set, but store.engine is ${engine}`);
  }
  if (engine !== undefined && engine !== "postgres" && postgres !== undefined) {
    r.error(["store", "postgres"], `is set, but store.engine is ${engine}`);
  }
  let backend: StoreConfig | undefined;
  if (engine === "memory") backend = { engine };
  else if (engine === "sqlite") {
    const path = r.optionalPath(["store", "sqlite", "path"], sqlite?.["path"], baseDir);
    backend = { engine, path: path ?? resolve(dataDir, "kube-join.db") };
  } else if (engine === "postgres") {
    backend = readPostgres(r, postgres ?? {}, baseDir);
  }
  if (
    r.problemCount > before ||
    backend === undefined ||
    instanceRetentionMs === undefined ||
    lockPollIntervalMs === undefined
  ) {
    return undefined;
  }
  return { backend, instanceRetentionMs, lockPollIntervalMs };
}

function readPostgres(r: FieldReader, block: Block, baseDir: string): StoreConfig | undefined {
  const path = ["store", "postgres"];
  const url = r.optionalString([...path, "url"], block["url"]);
  const urlFile = r.optionalPath([...path, "url_file"], block["url_file"], baseDir);
  const passwordFile = r.optionalPath([...path, "password_file"], block["password_file"], baseDir);
  const poolSize =
    r.optionalPositiveInt([...path, "pool_size"], block["pool_size"]) ?? DEFAULT_POSTGRES_POOL_SIZE;
  if (poolSize > MAX_POSTGRES_POOL_SIZE) {
    r.error([...path, "pool_size"], `must be at most ${MAX_POSTGRES_POOL_SIZE}`);
  }
  if (url !== undefined && urlFile !== undefined) {
    r.error([...path, "url_file"], "give url or url_file, not both");
  }
  if (url !== undefined) {
    // The URL itself is never echoed: it may hold a password.
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {
      r.error([...path, "url"], "must be a URL such as postgres://user@host:5432/database");
    }
    if (parsed !== undefined && !/^postgres(ql)?:$/.test(parsed.protocol)) {
      r.error([...path, "url"], "must start with postgres:// or postgresql://");
    } else if (parsed !== undefined && parsed.password !== "") {
      r.error(
        [...path, "url"],
        "must not hold a password in the config: use password_file, url_file (a Secret) or PGPASSWORD",
      );
    }
  }
  return { engine: "postgres", url, urlFile, passwordFile, poolSize };
}

/** `log_level` and `shutdown_timeout`: how the process itself behaves. */
function readLifecycle(
  r: FieldReader,
  root: Block,
): Pick<ServiceConfig, "logLevel" | "shutdownTimeoutMs"> | undefined {
  const logLevel = r.optionalEnum(
    ["log_level"],
    orDefault(root["log_level"], CONFIG_DEFAULTS.log_level),
    LOG_LEVELS,
  );
  const shutdownTimeoutMs = r.optionalDuration(
    ["shutdown_timeout"],
    orDefault(root["shutdown_timeout"], CONFIG_DEFAULTS.shutdown_timeout),
  );
  if (shutdownTimeoutMs !== undefined && shutdownTimeoutMs > MAX_SHUTDOWN_TIMEOUT_MS) {
    r.error(["shutdown_timeout"], "must be at most 10m");
    return undefined;
  }
  if (logLevel === undefined || shutdownTimeoutMs === undefined) return undefined;
  return { logLevel, shutdownTimeoutMs };
}

/** `host:port` or `[v6]:port` -> address; a message on error. */
export function parseListenAddress(text: string): ListenAddress | string {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(text);
  if (match === null)
    return `must be "host:port" (e.g. "0.0.0.0:3025" or "[::]:3025"), got ${JSON.stringify(text)}`;
  const host = match[1] ?? match[2] ?? "";
  const port = Number(match[3]);
  if (port > 65_535) return `port ${port} is out of range (0-65535)`;
  return { host, port };
}

/** Whether an address only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
