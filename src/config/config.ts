/**
 * The service's config file (`kube-join serve --config FILE`): parsed once at start-up, checked
 * eagerly, every problem reported as `file:line:col: key.path: message`. Relative paths resolve
 * against the config file's directory.
 */
import { readFile } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import { CLUSTER_NAME_PATTERN } from "../ca/authority.ts";
import { parseDuration } from "../lib/duration.ts";
import { ConfigError } from "../errors.ts";
import {
  formatFieldPath,
  parseYamlDocument,
  type FieldPath,
  type YamlSource,
} from "../yaml/yaml-source.ts";

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const AUDIT_FAILURE_POLICIES = ["refuse", "continue"] as const;
export type AuditFailurePolicy = (typeof AUDIT_FAILURE_POLICIES)[number];

export const TLS_KEY_TYPES = ["ecdsa-p256", "rsa-2048"] as const;
export type TlsKeyType = (typeof TLS_KEY_TYPES)[number];

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
    readonly tlsKeyType: TlsKeyType;
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
}

const MAX_SHUTDOWN_TIMEOUT_MS = 10 * 60_000;

export const CONFIG_DEFAULTS = {
  listenAddr: "127.0.0.1:3025",
  diagAddr: "127.0.0.1:3000",
  dataDir: "./data",
  defaultTtl: "1h",
  maxTtl: "24h",
  rateLimitAverage: 120,
  rateLimitPeriod: "1m",
  rateLimitBurst: 480,
  cacheMaxEntries: 100_000,
  logLevel: "info",
  shutdownTimeout: "10s",
  maxConnections: 512,
  headersTimeout: "10s",
  requestTimeout: "30s",
} as const;

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
 * @throws ConfigError with every problem found.
 */
export function parseConfig(file: string, text: string, baseDir: string): ServiceConfig {
  const source = parseYamlDocument(file, text);
  const reader = new Reader(source, baseDir);
  const config = reader.read(resolve(file));
  if (config === undefined || reader.problems.length > 0) throw new ConfigError(reader.problems);
  return config;
}

type Obj = Record<string, unknown>;

/** Walks the document once, collecting every problem instead of stopping at the first. */
class Reader {
  readonly problems: string[] = [];
  readonly #source: YamlSource;
  readonly #baseDir: string;

  constructor(source: YamlSource, baseDir: string) {
    this.#source = source;
    this.#baseDir = baseDir;
  }

  /** The config, or undefined when the document is not a mapping at all (see `problems`). */
  read(file: string): ServiceConfig | undefined {
    const value = this.#source.value;
    if (value === undefined || value === null) {
      this.problems.push(
        `${this.#source.file}:1:1: the config file is empty: it must be a mapping with at least cluster_name and resources`,
      );
      return undefined;
    }
    const root = this.#object([], value, true);
    if (root === undefined) return undefined;
    return this.#readRoot(file, root);
  }

  #readRoot(file: string, root: Obj): ServiceConfig {
    this.#known([], root, [
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
    ]);

    const clusterName = this.#string(["cluster_name"], root["cluster_name"]);
    if (clusterName === undefined && !("cluster_name" in root)) {
      this.#problem(["cluster_name"], "is required (the JWT audience and the CA's name)");
    } else if (clusterName !== undefined && !CLUSTER_NAME_PATTERN.test(clusterName)) {
      this.#problem(
        ["cluster_name"],
        "must be letters, digits, '.', '-' or '_', starting with a letter or digit (it names the CA and the SPIFFE trust domain)",
      );
    }

    const tlsBlock = this.#object(["tls"], root["tls"]);
    let tls: ServiceConfig["tls"];
    if (tlsBlock !== undefined) {
      this.#known(["tls"], tlsBlock, ["cert_file", "key_file"]);
      const certFile = this.#path(["tls", "cert_file"], tlsBlock["cert_file"], true);
      const keyFile = this.#path(["tls", "key_file"], tlsBlock["key_file"], true);
      if (certFile !== undefined && keyFile !== undefined) tls = { certFile, keyFile };
    }

    const resources = this.#pathList(["resources"], root["resources"]);
    if (resources.length === 0 && !this.#hasProblemAt(["resources"])) {
      this.#problem(["resources"], "must list at least one resource file or directory");
    }

    const caBlock = this.#object(["ca"], root["ca"]) ?? {};
    this.#known(["ca"], caBlock, [
      "tls_key_type",
      "tls_key_file",
      "tls_cert_file",
      "ssh_key_file",
      "extra_trusted",
    ]);
    const tlsKeyType =
      this.#enum(["ca", "tls_key_type"], caBlock["tls_key_type"], TLS_KEY_TYPES) ?? "ecdsa-p256";
    const tlsKeyFile = this.#path(["ca", "tls_key_file"], caBlock["tls_key_file"]);
    const tlsCertFile = this.#path(["ca", "tls_cert_file"], caBlock["tls_cert_file"]);
    const sshKeyFile = this.#path(["ca", "ssh_key_file"], caBlock["ssh_key_file"]);
    const given = [tlsKeyFile, tlsCertFile, sshKeyFile].filter((f) => f !== undefined).length;
    let caFiles: ServiceConfig["ca"]["files"];
    if (tlsKeyFile !== undefined && tlsCertFile !== undefined && sshKeyFile !== undefined) {
      caFiles = { tlsKeyFile, tlsCertFile, sshKeyFile };
    } else if (given > 0) {
      this.#problem(
        ["ca"],
        "tls_key_file, tls_cert_file and ssh_key_file go together: give all three or none",
      );
    }
    const extraBlock = this.#object(["ca", "extra_trusted"], caBlock["extra_trusted"]) ?? {};
    this.#known(["ca", "extra_trusted"], extraBlock, ["tls_cert_files", "ssh_public_key_files"]);
    const extraTrusted = {
      tlsCertFiles: this.#pathList(
        ["ca", "extra_trusted", "tls_cert_files"],
        extraBlock["tls_cert_files"],
      ),
      sshPublicKeyFiles: this.#pathList(
        ["ca", "extra_trusted", "ssh_public_key_files"],
        extraBlock["ssh_public_key_files"],
      ),
    };

    const certsBlock = this.#object(["certs"], root["certs"]) ?? {};
    this.#known(["certs"], certsBlock, ["default_ttl", "max_ttl"]);
    const defaultTtlMs = this.#duration(
      ["certs", "default_ttl"],
      certsBlock["default_ttl"],
      CONFIG_DEFAULTS.defaultTtl,
    );
    const maxTtlMs = this.#duration(
      ["certs", "max_ttl"],
      certsBlock["max_ttl"],
      CONFIG_DEFAULTS.maxTtl,
    );
    if (defaultTtlMs !== undefined && defaultTtlMs < 60_000) {
      this.#problem(["certs", "default_ttl"], "must be at least 1m");
    }
    if (defaultTtlMs !== undefined && maxTtlMs !== undefined && maxTtlMs < defaultTtlMs) {
      this.#problem(["certs", "max_ttl"], "must not be shorter than certs.default_ttl");
    }

    const oidcBlock = this.#object(["oidc"], root["oidc"]) ?? {};
    this.#known(["oidc"], oidcBlock, ["ca_file"]);
    const oidcCaFile = this.#path(["oidc", "ca_file"], oidcBlock["ca_file"]);

    const rateBlock = this.#object(["rate_limit"], root["rate_limit"]) ?? {};
    this.#known(["rate_limit"], rateBlock, ["average", "period", "burst"]);
    const average = this.#positiveInt(
      ["rate_limit", "average"],
      rateBlock["average"],
      CONFIG_DEFAULTS.rateLimitAverage,
    );
    const periodMs = this.#duration(
      ["rate_limit", "period"],
      rateBlock["period"],
      CONFIG_DEFAULTS.rateLimitPeriod,
    );
    const burst = this.#positiveInt(
      ["rate_limit", "burst"],
      rateBlock["burst"],
      CONFIG_DEFAULTS.rateLimitBurst,
    );
    if (periodMs === 0) this.#problem(["rate_limit", "period"], "must be longer than 0");
    if (average !== undefined && burst !== undefined && burst < average) {
      // Teleport's limiter never lets the bucket hold fewer than one period's worth.
      this.#problem(["rate_limit", "burst"], "must be at least rate_limit.average");
    }

    const cacheBlock = this.#object(["cache"], root["cache"]) ?? {};
    this.#known(["cache"], cacheBlock, ["max_entries"]);
    const maxEntries = this.#positiveInt(
      ["cache", "max_entries"],
      cacheBlock["max_entries"],
      CONFIG_DEFAULTS.cacheMaxEntries,
    );

    const auditBlock = this.#object(["audit"], root["audit"]) ?? {};
    this.#known(["audit"], auditBlock, ["file", "on_failure"]);
    const auditFile = this.#path(["audit", "file"], auditBlock["file"]);
    const auditOnFailure =
      this.#enum(["audit", "on_failure"], auditBlock["on_failure"], AUDIT_FAILURE_POLICIES) ??
      "refuse";

    const listenAddr = this.#address(
      ["listen_addr"],
      root["listen_addr"],
      CONFIG_DEFAULTS.listenAddr,
    );
    const diagAddr = this.#address(["diag_addr"], root["diag_addr"], CONFIG_DEFAULTS.diagAddr);
    const trustProxy = this.#boolean(["trust_proxy"], root["trust_proxy"], false);
    const dataDir =
      this.#path(["data_dir"], root["data_dir"]) ?? resolve(this.#baseDir, CONFIG_DEFAULTS.dataDir);
    const logLevel =
      this.#enum(["log_level"], root["log_level"], LOG_LEVELS) ?? CONFIG_DEFAULTS.logLevel;
    const shutdownTimeoutMs = this.#duration(
      ["shutdown_timeout"],
      root["shutdown_timeout"],
      CONFIG_DEFAULTS.shutdownTimeout,
    );
    if (shutdownTimeoutMs !== undefined && shutdownTimeoutMs > MAX_SHUTDOWN_TIMEOUT_MS) {
      // Beyond setTimeout's range Node fires at once, which would cut the drain short.
      this.#problem(["shutdown_timeout"], "must be at most 10m");
    }

    const maxConnections = this.#positiveInt(
      ["max_connections"],
      root["max_connections"],
      CONFIG_DEFAULTS.maxConnections,
    );
    const headersTimeoutMs = this.#duration(
      ["headers_timeout"],
      root["headers_timeout"],
      CONFIG_DEFAULTS.headersTimeout,
    );
    const requestTimeoutMs = this.#duration(
      ["request_timeout"],
      root["request_timeout"],
      CONFIG_DEFAULTS.requestTimeout,
    );
    if (headersTimeoutMs !== undefined && headersTimeoutMs < 1000) {
      this.#problem(["headers_timeout"], "must be at least 1s");
    }
    if (
      headersTimeoutMs !== undefined &&
      requestTimeoutMs !== undefined &&
      requestTimeoutMs < headersTimeoutMs
    ) {
      // node:http refuses a request timeout shorter than the headers timeout.
      this.#problem(["request_timeout"], "must not be shorter than headers_timeout");
    }

    return {
      file,
      clusterName: clusterName ?? "",
      listenAddr: listenAddr ?? { host: "127.0.0.1", port: 3025 },
      diagAddr: diagAddr ?? { host: "127.0.0.1", port: 3000 },
      tls,
      trustProxy,
      resources,
      dataDir,
      ca: { tlsKeyType, files: caFiles, extraTrusted },
      certs: { defaultTtlMs: defaultTtlMs ?? 3_600_000, maxTtlMs: maxTtlMs ?? 86_400_000 },
      oidc: { caFile: oidcCaFile },
      rateLimit: { average: average ?? 120, periodMs: periodMs ?? 60_000, burst: burst ?? 480 },
      cache: { maxEntries: maxEntries ?? CONFIG_DEFAULTS.cacheMaxEntries },
      audit: { file: auditFile, onFailure: auditOnFailure },
      logLevel,
      shutdownTimeoutMs: shutdownTimeoutMs ?? 10_000,
      maxConnections: maxConnections ?? CONFIG_DEFAULTS.maxConnections,
      headersTimeoutMs: headersTimeoutMs ?? 10_000,
      requestTimeoutMs: requestTimeoutMs ?? 30_000,
    };
  }

  #problem(path: FieldPath, message: string): void {
    this.problems.push(this.#source.problem(path, message));
  }

  #hasProblemAt(path: FieldPath): boolean {
    const needle = `: ${formatFieldPath(path)}`;
    return this.problems.some((p) => p.includes(needle));
  }

  /** Reports keys outside `allowed` (a typo like `lisen_addr` must not silently fall back). */
  #known(path: FieldPath, obj: Obj, allowed: readonly string[]): void {
    for (const key of Object.keys(obj)) {
      if (!allowed.includes(key)) {
        this.#problem([...path, key], `unknown key (expected one of: ${allowed.join(", ")})`);
      }
    }
  }

  #object(path: FieldPath, value: unknown, root = false): Obj | undefined {
    if (value === undefined || value === null) return undefined;
    if (typeof value !== "object" || Array.isArray(value)) {
      this.#problem(path, root ? "the config file must be a mapping" : "must be a mapping");
      return undefined;
    }
    return value as Obj;
  }

  #string(path: FieldPath, value: unknown): string | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== "string" || value.trim() === "") {
      this.#problem(path, "must be a non-empty string");
      return undefined;
    }
    return value;
  }

  #path(path: FieldPath, value: unknown, required = false): string | undefined {
    if (value === undefined && required) {
      this.#problem(path, "is required");
      return undefined;
    }
    const text = this.#string(path, value);
    if (text === undefined) return undefined;
    return isAbsolute(text) ? text : resolve(this.#baseDir, text);
  }

  #pathList(path: FieldPath, value: unknown): string[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      this.#problem(path, "must be a list of paths");
      return [];
    }
    const out: string[] = [];
    value.forEach((item, i) => {
      const p = this.#path([...path, i], item);
      if (p !== undefined) out.push(p);
    });
    return out;
  }

  #enum<T extends string>(path: FieldPath, value: unknown, allowed: readonly T[]): T | undefined {
    if (value === undefined) return undefined;
    if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
      this.#problem(path, `must be one of: ${allowed.join(", ")}`);
      return undefined;
    }
    return value as T;
  }

  #boolean(path: FieldPath, value: unknown, fallback: boolean): boolean {
    if (value === undefined) return fallback;
    if (typeof value !== "boolean") {
      this.#problem(path, "must be true or false");
      return fallback;
    }
    return value;
  }

  #positiveInt(path: FieldPath, value: unknown, fallback: number): number | undefined {
    if (value === undefined) return fallback;
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 1) {
      this.#problem(path, "must be a whole number of at least 1");
      return undefined;
    }
    return value;
  }

  #duration(path: FieldPath, value: unknown, fallback: string): number | undefined {
    const text = value === undefined ? fallback : value;
    if (typeof text !== "string") {
      this.#problem(path, 'must be a duration string such as "1h" or "90s"');
      return undefined;
    }
    try {
      return parseDuration(text);
    } catch (err) {
      this.#problem(path, (err as Error).message);
      return undefined;
    }
  }

  #address(path: FieldPath, value: unknown, fallback: string): ListenAddress | undefined {
    const text = value === undefined ? fallback : value;
    if (typeof text !== "string") {
      this.#problem(path, 'must be a "host:port" string');
      return undefined;
    }
    const parsed = parseListenAddress(text);
    if (typeof parsed === "string") {
      this.#problem(path, parsed);
      return undefined;
    }
    return parsed;
  }
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
