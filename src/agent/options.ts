import { parseArgs } from "node:util";
import { parseDuration } from "../lib/duration.ts";
import type { DestinationSpec } from "./destinations/open.ts";

/** Where the kubelet projects the service-account token in the Teleport guide's manifests. */
export const DEFAULT_TOKEN_PATH = "/var/run/secrets/tokens/join-sa-token";

export const AGENT_USAGE = `Usage: kube-join agent --server URL --token NAME --ca-file FILE --output DIR [options]

Joins kube-join with the pod's projected service-account token, writes the bot's TLS and SSH
identity to DIR, and renews it before it expires.

Options:
  --server URL           kube-join join listener, e.g. https://kube-join.example:3025
  --token NAME           join token name, e.g. example-bot
  --ca-file FILE         PEM CA certificate(s) trusted for the server's TLS certificate
                         (the only trust anchors used; required for https://)
  --output DIR           directory the identity is written to (created if missing)
  --ttl DURATION         requested certificate lifetime [1h]
  --renew-every DURATION renewal interval [a third of --ttl]
  --backoff-initial DURATION  first retry delay after a failure [1s]
  --backoff-max DURATION      longest retry delay [5m]
  --oneshot              join once, write the identity, exit 0 (non-zero on failure)
  --insecure             allow a plain http:// server (never skips TLS verification)
  -h, --help             show this help

Environment:
  KUBERNETES_TOKEN_PATH  service-account token file, read afresh for every join
                         [${DEFAULT_TOKEN_PATH}]

Durations: a number with a unit, e.g. 500ms, 30s, 20m, 1h, or combined: 1h30m.`;

/** Everything the agent needs, validated once, before anything runs. */
export interface AgentOptions {
  readonly server: URL;
  readonly tokenName: string;
  /** Absent only for an `http://` server (which requires `insecure`). */
  readonly caFile: string | undefined;
  /** Where the agent keeps its current identity (kube-join's own files): `--output DIR`. */
  readonly storage: DestinationSpec;
  readonly ttlMs: number;
  readonly renewEveryMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly oneshot: boolean;
  readonly insecure: boolean;
  readonly tokenPath: string;
}

/** A mistake on the agent's command line; the message names the flag. Exit status 2. */
export class AgentUsageError extends Error {
  override readonly name = "AgentUsageError";
}

const MIN_TTL_MS = 2 * 60_000;
const MIN_INTERVAL_MS = 10;

/**
 * Parses and validates `kube-join agent` arguments. Throws `AgentUsageError` naming the flag on
 * any mistake; returns `"help"` for `--help`.
 */
export function parseAgentArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): AgentOptions | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        server: { type: "string" },
        token: { type: "string" },
        "ca-file": { type: "string" },
        output: { type: "string" },
        ttl: { type: "string" },
        "renew-every": { type: "string" },
        "backoff-initial": { type: "string" },
        "backoff-max": { type: "string" },
        oneshot: { type: "boolean" },
        insecure: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new AgentUsageError((err as Error).message);
  }
  if (values.help === true) return "help";

  const server = required(values.server, "--server");
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new AgentUsageError(`--server: not a URL: ${JSON.stringify(server)}`);
  }
  const insecure = values.insecure === true;
  if (url.protocol === "http:") {
    if (!insecure) {
      throw new AgentUsageError(
        "--server: plain http:// sends the service-account token unencrypted; use https:// or pass --insecure",
      );
    }
  } else if (url.protocol !== "https:") {
    throw new AgentUsageError(`--server: the scheme must be https:// (got ${url.protocol}//)`);
  }
  const caFile = values["ca-file"];
  if (url.protocol === "https:" && (caFile === undefined || caFile === "")) {
    throw new AgentUsageError("--ca-file is required for an https:// server");
  }

  const tokenName = required(values.token, "--token");
  const outputDir = required(values.output, "--output");
  const ttlMs = duration(values.ttl, "--ttl") ?? 3_600_000;
  if (ttlMs < MIN_TTL_MS) {
    throw new AgentUsageError("--ttl: must be at least 2m (the service refuses under 1m)");
  }
  const renewEveryMs = duration(values["renew-every"], "--renew-every") ?? Math.floor(ttlMs / 3);
  if (renewEveryMs >= ttlMs) {
    throw new AgentUsageError("--renew-every: must be shorter than --ttl");
  }
  const backoffInitialMs = duration(values["backoff-initial"], "--backoff-initial") ?? 1000;
  const backoffMaxMs = duration(values["backoff-max"], "--backoff-max") ?? 300_000;
  if (backoffMaxMs < backoffInitialMs) {
    throw new AgentUsageError("--backoff-max: must not be shorter than --backoff-initial");
  }
  for (const [flag, ms] of [
    ["--renew-every", renewEveryMs],
    ["--backoff-initial", backoffInitialMs],
  ] as const) {
    if (ms < MIN_INTERVAL_MS) throw new AgentUsageError(`${flag}: must be at least 10ms`);
  }

  const tokenPath = env["KUBERNETES_TOKEN_PATH"];
  return {
    server: url,
    tokenName,
    caFile: caFile === "" ? undefined : caFile,
    storage: { type: "directory", path: outputDir },
    ttlMs,
    renewEveryMs,
    backoffInitialMs,
    backoffMaxMs,
    oneshot: values.oneshot === true,
    insecure,
    tokenPath: tokenPath === undefined || tokenPath === "" ? DEFAULT_TOKEN_PATH : tokenPath,
  };
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value === "") throw new AgentUsageError(`${flag} is required`);
  return value;
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
