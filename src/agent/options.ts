import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseDuration } from "../lib/duration.ts";
import type { AgentFileConfig, OutputSpec } from "./config-file.ts";
import type { DestinationSpec } from "./destinations/open.ts";

/** Where the kubelet projects the service-account token in the Teleport guide's manifests. */
export const DEFAULT_TOKEN_PATH = "/var/run/secrets/tokens/join-sa-token";
/** tbot's default when a config file is used: the pod's automounted service-account token. */
export const TBOT_DEFAULT_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/** tbot's default `storage` when the config file names none. */
export const TBOT_DEFAULT_STORAGE_DIR = "/var/lib/teleport/bot";

export const AGENT_USAGE = `Usage: kube-join agent --server URL --token NAME --ca-file FILE --output DIR [options]
       kube-join agent -c tbot.yaml [options]

Joins kube-join with the pod's projected service-account token, writes the bot's TLS and SSH
identity to DIR (or to the outputs of tbot.yaml), and renews it before it expires.

Options:
  -c, --config FILE      tbot's version: v2 config file (docs/agent.md); a flag overrides it
  --server URL           kube-join join listener, e.g. https://kube-join.example:3025
  --token NAME           join token name, e.g. example-bot
  --ca-file FILE         PEM CA certificate(s) trusted for the server's TLS certificate
                         (the only trust anchors used; required for https:// without ca_pins)
  --output DIR           directory the identity is written to (created if missing)
  --ttl DURATION         requested certificate lifetime [1h]
  --renew-every DURATION renewal interval [a third of --ttl]
  --backoff-initial DURATION  first retry delay after a failure [1s]
  --backoff-max DURATION      longest retry delay [5m]
  --oneshot              join once, write the identity, exit 0 (non-zero on failure)
  --insecure             allow a plain http:// server (never skips TLS verification)
  --diag-addr HOST:PORT  serve /livez, /readyz and /metrics there
  -h, --help             show this help

Environment:
  KUBERNETES_TOKEN_PATH  service-account token file, read afresh for every join
                         [${DEFAULT_TOKEN_PATH}; with -c: onboarding.kubernetes.token_path,
                         else this, else ${TBOT_DEFAULT_TOKEN_PATH}]

Durations: a number with a unit, e.g. 500ms, 30s, 20m, 1h, or combined: 1h30m.`;

/** Everything the agent needs, validated once, before anything runs. */
export interface AgentOptions {
  readonly server: URL;
  readonly tokenName: string;
  /** Absent for an `http://` server (which requires `insecure`) or when `caPins` are given. */
  readonly caFile: string | undefined;
  /** `sha256:<hex>` of CA SubjectPublicKeyInfos; the server's chain must contain one. */
  readonly caPins: readonly string[];
  /** Where the agent keeps its current identity (kube-join's own files): `--output DIR`. */
  readonly storage: DestinationSpec;
  /** The config file's outputs, each written after every join. */
  readonly outputs: readonly OutputSpec[];
  readonly ttlMs: number;
  readonly renewEveryMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly oneshot: boolean;
  readonly insecure: boolean;
  readonly tokenPath: string;
  readonly diagAddr: { readonly host: string; readonly port: number } | undefined;
}

/** The command line, parsed but not yet combined with a config file. */
export interface AgentFlags {
  readonly config: string | undefined;
  readonly server: string | undefined;
  readonly token: string | undefined;
  readonly caFile: string | undefined;
  readonly output: string | undefined;
  readonly ttl: string | undefined;
  readonly renewEvery: string | undefined;
  readonly backoffInitial: string | undefined;
  readonly backoffMax: string | undefined;
  readonly diagAddr: string | undefined;
  readonly oneshot: boolean;
  readonly insecure: boolean;
}

/** A mistake on the agent's command line; the message names the flag. Exit status 2. */
export class AgentUsageError extends Error {
  override readonly name = "AgentUsageError";
}

const MIN_TTL_MS = 2 * 60_000;
const MIN_INTERVAL_MS = 10;

/** Parses `kube-join agent` arguments; `"help"` for `--help`. Throws `AgentUsageError`. */
export function parseAgentFlags(argv: readonly string[]): AgentFlags | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: "string", short: "c" },
        server: { type: "string" },
        token: { type: "string" },
        "ca-file": { type: "string" },
        output: { type: "string" },
        ttl: { type: "string" },
        "renew-every": { type: "string" },
        "backoff-initial": { type: "string" },
        "backoff-max": { type: "string" },
        "diag-addr": { type: "string" },
        oneshot: { type: "boolean" },
        insecure: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new AgentUsageError((err as Error).message);
  }
  if (values.help === true) return "help";
  if (values.config === "") throw new AgentUsageError("--config: a file name is required");
  return {
    config: values.config,
    server: values.server,
    token: values.token,
    caFile: values["ca-file"],
    output: values.output,
    ttl: values.ttl,
    renewEvery: values["renew-every"],
    backoffInitial: values["backoff-initial"],
    backoffMax: values["backoff-max"],
    diagAddr: values["diag-addr"],
    oneshot: values.oneshot === true,
    insecure: values.insecure === true,
  };
}

/**
 * Parses and validates `kube-join agent` arguments without a config file. Throws
 * `AgentUsageError` naming the flag on any mistake; returns `"help"` for `--help`.
 */
export function parseAgentArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): AgentOptions | "help" {
  const flags = parseAgentFlags(argv);
  if (flags === "help") return "help";
  if (flags.config !== undefined) {
    throw new AgentUsageError("--config: read the file first (resolveAgentOptions)");
  }
  return resolveAgentOptions(flags, undefined, env);
}

/**
 * Combines the flags with a config file already read (`readAgentConfig`): a flag overrides the
 * file's value, the file fills in what the flags leave out, defaults come last. Throws
 * `AgentUsageError` for what neither supplies or what does not fit together.
 */
export function resolveAgentOptions(
  flags: AgentFlags,
  file: AgentFileConfig | undefined,
  env: Readonly<Record<string, string | undefined>>,
): AgentOptions {
  let url: URL;
  const insecure = flags.insecure;
  if (flags.server !== undefined || file?.server === undefined) {
    const server = required(flags.server, "--server");
    try {
      url = new URL(server);
    } catch {
      throw new AgentUsageError(`--server: not a URL: ${JSON.stringify(server)}`);
    }
    if (url.protocol === "http:") {
      if (!insecure) {
        throw new AgentUsageError(
          "--server: plain http:// sends the service-account token unencrypted; use https:// or pass --insecure",
        );
      }
    } else if (url.protocol !== "https:") {
      throw new AgentUsageError(`--server: the scheme must be https:// (got ${url.protocol}//)`);
    }
  } else {
    url = file.server;
  }
  const caFile = nonEmpty(flags.caFile) ?? file?.caPath;
  const caPins = file?.caPins ?? [];
  if (url.protocol === "https:" && caFile === undefined && caPins.length === 0) {
    throw new AgentUsageError(
      file === undefined
        ? "--ca-file is required for an https:// server"
        : "--ca-file (or onboarding.ca_path or ca_pins) is required for an https:// server",
    );
  }

  const tokenName = nonEmpty(flags.token) ?? file?.tokenName ?? required(flags.token, "--token");
  let storage: DestinationSpec;
  if (flags.output !== undefined || file === undefined) {
    storage = { type: "directory", path: required(flags.output, "--output") };
    const clash = file?.outputs.find(
      (o) =>
        o.destination.type === "directory" &&
        resolve(o.destination.path) === resolve(storage.type === "directory" ? storage.path : ""),
    );
    if (clash !== undefined) {
      throw new AgentUsageError(
        "--output: an output of the config file writes there too; each destination needs a place of its own",
      );
    }
  } else {
    storage = file.storage ?? { type: "directory", path: TBOT_DEFAULT_STORAGE_DIR };
  }

  const ttlMs = duration(flags.ttl, "--ttl") ?? file?.ttlMs ?? 3_600_000;
  if (ttlMs < MIN_TTL_MS) {
    throw new AgentUsageError("--ttl: must be at least 2m (the service refuses under 1m)");
  }
  const renewEveryMs =
    duration(flags.renewEvery, "--renew-every") ?? file?.renewEveryMs ?? Math.floor(ttlMs / 3);
  if (renewEveryMs >= ttlMs) {
    throw new AgentUsageError(
      file === undefined
        ? "--renew-every: must be shorter than --ttl"
        : "--renew-every (renewal_interval): must be shorter than --ttl (credential_ttl)",
    );
  }
  const backoffInitialMs = duration(flags.backoffInitial, "--backoff-initial") ?? 1000;
  const backoffMaxMs = duration(flags.backoffMax, "--backoff-max") ?? 300_000;
  if (backoffMaxMs < backoffInitialMs) {
    throw new AgentUsageError("--backoff-max: must not be shorter than --backoff-initial");
  }
  for (const [flag, ms] of [
    ["--renew-every", renewEveryMs],
    ["--backoff-initial", backoffInitialMs],
  ] as const) {
    if (ms < MIN_INTERVAL_MS) throw new AgentUsageError(`${flag}: must be at least 10ms`);
  }

  const envTokenPath = nonEmpty(env["KUBERNETES_TOKEN_PATH"]);
  const tokenPath =
    file === undefined
      ? (envTokenPath ?? DEFAULT_TOKEN_PATH)
      : (file.tokenPath ?? envTokenPath ?? TBOT_DEFAULT_TOKEN_PATH);
  return {
    server: url,
    tokenName,
    caFile,
    caPins,
    storage,
    outputs: file?.outputs ?? [],
    ttlMs,
    renewEveryMs,
    backoffInitialMs,
    backoffMaxMs,
    oneshot: flags.oneshot || file?.oneshot === true,
    insecure: insecure || url.protocol === "http:",
    tokenPath,
    diagAddr: flags.diagAddr === undefined ? file?.diagAddr : hostPort(flags.diagAddr),
  };
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") throw new AgentUsageError(`${flag} is required`);
  return value;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

function hostPort(value: string): { host: string; port: number } {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(value);
  const port = Number(match?.[2]);
  if (match === null || !(port >= 0 && port <= 65_535)) {
    throw new AgentUsageError(`--diag-addr: must be host:port, e.g. 127.0.0.1:3000`);
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
}

function duration(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  let ms: number;
  try {
    ms = Math.round(parseDuration(value));
  } catch {
    ms = 0;
  }
  if (!(ms > 0) || !Number.isSafeInteger(ms)) {
    throw new AgentUsageError(
      `${flag}: not a positive duration: ${JSON.stringify(value)} (use e.g. 30s, 20m, 1h)`,
    );
  }
  return ms;
}
