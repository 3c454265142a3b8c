import { readFile } from "node:fs/promises";
import type { JoinRequestWire, JoinResponseWire } from "../lib/join-wire.ts";
import { AgentError } from "./agent-error.ts";
import { backoffDelay } from "./backoff.ts";
import type { Destination } from "./destinations/destination.ts";
import type { IdentityFs } from "./destinations/directory.ts";
import { describeDestination, openDestination } from "./destinations/open.ts";
import { checkJoinResponse } from "./identity.ts";
import type { AgentKey } from "./keys.ts";
import type { AgentOptions } from "./options.ts";
import { outputOf } from "./outputs/index.ts";
import type { Output } from "./outputs/output.ts";
import { nativeSummary, readNativeSummary, renderNativeFiles } from "./outputs/native.ts";
import type { IdentitySummary } from "./outputs/native.ts";

/** One structured log line; the command writes it as JSON on stderr. */
export interface AgentLogRecord {
  readonly time: string;
  readonly level: "info" | "warn" | "error";
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** Everything the agent does to the outside world, injectable so tests run on a fixed clock. */
export interface AgentDeps {
  readonly now: () => Date;
  /** Waits `ms`, or less when `signal` aborts; never rejects. */
  readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  /** A number in [0, 1) for backoff jitter. */
  readonly random: () => number;
  readonly log: (record: AgentLogRecord) => void;
  readonly generateKey: () => Promise<AgentKey>;
  /** Sends `POST /v1/join`; throws `AgentError` with the server's code on a refusal. */
  readonly join: (body: JoinRequestWire, signal: AbortSignal) => Promise<JoinResponseWire>;
  readonly readToken?: (path: string) => Promise<string>;
  readonly fs?: IdentityFs;
  /** For `kubernetes_secret` destinations (`POD_NAMESPACE`, `KUBECONFIG`, ...). */
  readonly env?: NodeJS.ProcessEnv;
  /** Told the identity in use at start and after every join attempt (the diag endpoint). */
  readonly observe?: (event: AgentObservation) => void;
}

/** What the agent tells `observe`: the outcome of a join, and the identity in use after it. */
export interface AgentObservation {
  readonly outcome: "start" | "success" | "failure";
  /** RFC 3339 expiry of the identity in use, if any. */
  readonly identityExpires: string | undefined;
}

/** Where each join's identity goes: the agent's storage (native files) and each output. */
interface Plan {
  readonly storage: Destination;
  readonly outputs: ReadonlyArray<{ readonly output: Output; readonly destination: Destination }>;
}

/**
 * One join: read the service-account token afresh (the kubelet rotates it), generate a new key
 * pair, ask the server, check the answer certifies that key, and write the set atomically.
 * Throws `AgentError` (server code or a local one) and leaves the previous set untouched.
 */
async function joinOnce(
  options: AgentOptions,
  deps: AgentDeps,
  plan: Plan,
  signal: AbortSignal,
): Promise<IdentitySummary> {
  const idToken = await readServiceAccountToken(options.tokenPath, deps.readToken);
  const key = await deps.generateKey();
  const requestedExpiry = new Date(deps.now().getTime() + options.ttlMs);
  const response = await deps.join(
    {
      token: options.tokenName,
      role: "Bot",
      id_token: idToken,
      public_tls_key: key.publicKeyPem,
      public_ssh_key: key.sshPublicKey,
      expires: requestedExpiry.toISOString().replace(/\.\d{3}Z$/, "Z"),
    },
    signal,
  );
  const identity = checkJoinResponse(response, key, deps.now());
  // Every set is rendered before the first write, so a render bug cannot leave outputs apart.
  const sets = plan.outputs.map(({ output, destination }) => ({
    set: output.render(identity),
    destination,
  }));
  const stored = renderNativeFiles(identity);
  for (const { set, destination } of sets) await destination.write(set);
  // Storage last: what it holds was delivered to every output too.
  await plan.storage.write(stored);
  return nativeSummary(identity);
}

/**
 * The agent: join, then renew every `renewEveryMs` (sooner when the server granted a shorter
 * lifetime: at most a third of what is left), backing off with jitter after failures. A failure
 * never removes the current identity. Returns the exit code: in `oneshot` mode 0 after one good
 * join and 1 after a failed or interrupted one; otherwise 0 once `signal` aborts (SIGTERM).
 */
export async function runAgent(
  options: AgentOptions,
  deps: AgentDeps,
  signal: AbortSignal,
): Promise<number> {
  const log = (level: AgentLogRecord["level"], msg: string, fields: object): void =>
    deps.log({ time: deps.now().toISOString(), level, msg, ...fields });
  const context = {
    now: deps.now,
    ...(deps.fs === undefined ? {} : { fs: deps.fs }),
    ...(deps.env === undefined ? {} : { env: deps.env }),
    warn: (message: string) => log("warn", message, { event: "agent.write_cleanup" }),
  };
  // Opened before anything else: a destination that cannot be honoured is a usage error.
  const plan: Plan = {
    storage: openDestination(options.storage, context),
    outputs: options.outputs.map((spec) => ({
      output: outputOf(spec.type),
      destination: openDestination(spec.destination, context),
    })),
  };
  // What a previous run left, so a failed first join still knows whether an identity is valid.
  let current = readNativeSummary(await plan.storage.read().catch(() => undefined));
  deps.observe?.({ outcome: "start", identityExpires: current?.expires });
  let failures = 0;
  log("info", "agent starting", {
    event: "agent.start",
    server: options.server.origin,
    token: options.tokenName,
    storage: describeDestination(options.storage),
    outputs: options.outputs.map((o) => `${o.type} -> ${describeDestination(o.destination)}`),
    ttl_ms: options.ttlMs,
    renew_every_ms: options.renewEveryMs,
    oneshot: options.oneshot,
    existing_identity_expires: current?.expires ?? null,
  });

  while (!signal.aborted) {
    try {
      const summary = await joinOnce(options, deps, plan, signal);
      current = summary;
      deps.observe?.({ outcome: "success", identityExpires: summary.expires });
      failures = 0;
      const remainingMs = Date.parse(summary.expires) - deps.now().getTime();
      const nextMs = Math.max(
        Math.min(options.renewEveryMs, Math.floor(remainingMs / 3)),
        options.backoffInitialMs,
      );
      log("info", "identity renewed", {
        event: "agent.join",
        outcome: "success",
        bot: summary.bot,
        expires: summary.expires,
        tls_serial: summary.tls_serial,
        ssh_serial: summary.ssh_serial,
        pod: podOf(summary),
        ...(options.oneshot ? {} : { next_renewal_in_ms: nextMs }),
      });
      if (options.oneshot) return 0;
      await deps.sleep(nextMs, signal);
    } catch (err) {
      if (signal.aborted) break;
      const error = asAgentError(err);
      failures += 1;
      deps.observe?.({ outcome: "failure", identityExpires: current?.expires });
      const validForMs =
        current === undefined ? 0 : Date.parse(current.expires) - deps.now().getTime();
      const stillValid = validForMs > 0;
      // A Retry-After (from kube-join or any proxy in front of it) may lengthen the wait, but
      // never beyond --backoff-max nor past the current identity's expiry: honouring a
      // `Retry-After: 3600` would let a 1h identity lapse while the agent sits idle.
      const retryAfterMs = Math.min(
        error.retryAfterMs ?? 0,
        options.backoffMaxMs,
        stillValid ? validForMs : Number.POSITIVE_INFINITY,
      );
      const delayMs = Math.max(
        backoffDelay(
          failures,
          { initialMs: options.backoffInitialMs, maxMs: options.backoffMaxMs },
          deps.random,
        ),
        retryAfterMs,
      );
      log("error", "join failed", {
        event: "agent.join",
        outcome: "failure",
        code: error.code,
        message: error.message,
        status: error.status ?? null,
        consecutive_failures: failures,
        identity_expires: current?.expires ?? null,
        identity_valid: stillValid,
        ...(options.oneshot ? {} : { retry_in_ms: delayMs }),
      });
      if (options.oneshot) return 1;
      await deps.sleep(delayMs, signal);
    }
  }
  log("info", "agent stopped", { event: "agent.stop", identity_expires: current?.expires ?? null });
  // A one-shot run stopped before its join succeeded did not do its job (an init container
  // must not let the pod start without an identity).
  return options.oneshot ? 1 : 0;
}

/** Waits `ms` on the real clock; resolves early (never rejects) when `signal` aborts. */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

async function readServiceAccountToken(
  path: string,
  read: ((path: string) => Promise<string>) | undefined,
): Promise<string> {
  let text: string;
  try {
    text = await (read ?? ((p: string) => readFile(p, "utf8")))(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new AgentError("token_unreadable", `cannot read the token file ${path}: ${code}`);
  }
  const token = text.trim();
  if (token === "") throw new AgentError("token_unreadable", `the token file ${path} is empty`);
  return token;
}

function asAgentError(err: unknown): AgentError {
  if (err instanceof AgentError) return err;
  // A bug, not a refusal: keep the agent alive and retrying, but say so plainly.
  return new AgentError("agent_internal", err instanceof Error ? err.message : String(err));
}

/** The pod name of `join_attrs.kubernetes.pod`, flat (`"pod"`) or Teleport-style (`{name}`). */
function podOf(summary: IdentitySummary): string | null {
  const kubernetes = summary.join_attrs["kubernetes"] as { pod?: unknown } | undefined;
  const pod = typeof kubernetes === "object" && kubernetes !== null ? kubernetes.pod : undefined;
  if (typeof pod === "string") return pod;
  const name =
    typeof pod === "object" && pod !== null ? (pod as { name?: unknown }).name : undefined;
  return typeof name === "string" ? name : null;
}
