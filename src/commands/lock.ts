/**
 * `kube-join lock create|list|delete`: locks in the store, enforced by every `serve` on that
 * store within 5 seconds (they poll), without a restart. A lock stops new certificates only:
 * certificates already issued stay valid until they expire (at most `certs.max_ttl`).
 */
import { formatDuration, parseDuration } from "../lib/duration.ts";
import { LockExistsError } from "../join/lock-store.ts";
import { formatTarget, type Lock, type LockTargetField } from "../locks/lock.ts";
import { DNS_LABEL, DNS_SUBDOMAIN } from "../methods/kubernetes/names.ts";
import { isoSeconds, table, takeConfigOption, withConfiguredStore } from "./store-command.ts";

const USAGE = `Usage:
  kube-join lock create TARGET... [--message TEXT] [--ttl DURATION] [--name NAME] [--config FILE]
  kube-join lock list [--json] [--config FILE]
  kube-join lock delete NAME [--config FILE]

TARGET (one or more; a join is refused when it matches all of them):
  --bot NAME                  the bot (Teleport's target user: bot-NAME)
  --token NAME                the join token
  --instance ID               one bot instance (see kube-join instances list)
  --service-account NS:NAME   a Kubernetes service account
  --namespace NS              every service account of a namespace

A lock refuses new joins (join_locked) on every serve using the store within 5 s; certificates
already issued stay valid until they expire (at most certs.max_ttl). --message is shown to the
refused bot; --ttl (e.g. 1h) makes the lock expire; without it the lock lasts until deleted.
The name defaults to a new UUID.`;

const TARGET_OPTIONS: Readonly<Record<string, LockTargetField>> = {
  "--bot": "user",
  "--token": "join_token",
  "--instance": "bot_instance_id",
  "--service-account": "kubernetes_service_account",
  "--namespace": "kubernetes_namespace",
};

export async function run(args: string[]): Promise<number> {
  const { configFile, rest, error } = takeConfigOption(args);
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  if (error !== undefined) return usageError(error);
  const [sub, ...options] = rest;
  switch (sub) {
    case "create":
      return create(configFile, options);
    case "list": {
      const json = options.includes("--json");
      const extra = options.filter((o) => o !== "--json");
      if (extra.length > 0) return usageError(`unexpected argument ${JSON.stringify(extra[0])}`);
      return withConfiguredStore("lock list", configFile, async (store) => {
        const locks = await store.listLocks();
        const now = Date.now();
        console.log(json ? JSON.stringify(locks.map(toJson), null, 2) : listTable(locks, now));
        return 0;
      });
    }
    case "delete": {
      const [name, ...extra] = options;
      if (name === undefined || name.startsWith("-") || extra.length > 0) {
        return usageError("delete needs one lock NAME");
      }
      return withConfiguredStore("lock delete", configFile, async (store) => {
        if (!(await store.deleteLock(name))) {
          console.error(`kube-join lock delete: no lock ${JSON.stringify(name)} in the store`);
          return 1;
        }
        console.log(`Deleted lock ${name}; serve processes lift it within 5 s.`);
        return 0;
      });
    }
    default:
      return usageError(
        sub === undefined ? "no subcommand" : `unknown subcommand ${JSON.stringify(sub)}`,
      );
  }
}

function usageError(message: string): number {
  console.error(`kube-join lock: ${message}\n\n${USAGE}`);
  return 2;
}

/** Parses `lock create`'s options into a lock; a string is a usage error. */
export function parseCreate(options: readonly string[], nowMs: number): Lock | string {
  const target: Partial<Record<LockTargetField, string>> = {};
  let message: string | undefined;
  let ttlMs: number | undefined;
  let name: string = crypto.randomUUID();
  for (let i = 0; i < options.length; i++) {
    const raw = options[i] ?? "";
    const eq = raw.indexOf("=");
    const option = raw.startsWith("--") && eq > 0 ? raw.slice(0, eq) : raw;
    const value = raw.startsWith("--") && eq > 0 ? raw.slice(eq + 1) : options[++i];
    if (value === undefined) return `${option} needs a value`;
    const field = TARGET_OPTIONS[option];
    if (field !== undefined) {
      if (target[field] !== undefined) return `${option} given twice`;
      const problem = checkTarget(option, value);
      if (problem !== undefined) return problem;
      target[field] = field === "user" ? `bot-${value}` : value;
    } else if (option === "--message") {
      if (value.length > 1024) return "--message is longer than 1024 characters";
      message = value;
    } else if (option === "--ttl") {
      try {
        ttlMs = parseDuration(value);
      } catch (err) {
        return `--ttl: ${(err as Error).message}`;
      }
      if (ttlMs < 1000) return "--ttl must be at least 1s";
    } else if (option === "--name") {
      if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(value)) {
        return "--name must be letters, digits, '.', '_' or '-' (at most 128)";
      }
      name = value;
    } else return `unknown option ${JSON.stringify(option)}`;
  }
  if (Object.keys(target).length === 0) {
    return "a lock needs a target: --bot, --token, --instance, --service-account or --namespace";
  }
  return {
    name,
    target,
    message,
    expiresAtMs: ttlMs === undefined ? undefined : nowMs + Math.ceil(ttlMs),
    createdAtMs: nowMs,
    origin: "store",
  };
}

function checkTarget(option: string, value: string): string | undefined {
  switch (option) {
    case "--namespace":
      return DNS_LABEL.test(value)
        ? undefined
        : `--namespace ${JSON.stringify(value)} is not a namespace name`;
    case "--service-account": {
      const [ns, sa, ...more] = value.split(":");
      return more.length === 0 &&
        ns !== undefined &&
        sa !== undefined &&
        DNS_LABEL.test(ns) &&
        DNS_SUBDOMAIN.test(sa)
        ? undefined
        : `--service-account ${JSON.stringify(value)} is not NAMESPACE:NAME`;
    }
    default:
      return value === "" || /\s/.test(value)
        ? `${option} must be a non-empty name without spaces`
        : undefined;
  }
}

async function create(configFile: string, options: readonly string[]): Promise<number> {
  const now = Date.now();
  const lock = parseCreate(options, now);
  if (typeof lock === "string") return usageError(lock);
  return withConfiguredStore("lock create", configFile, async (store) => {
    try {
      await store.createLock(lock);
    } catch (err) {
      if (err instanceof LockExistsError) {
        console.error(`kube-join lock create: ${err.message}`);
        return 1;
      }
      throw err;
    }
    const until =
      lock.expiresAtMs === undefined
        ? "until deleted"
        : `until ${isoSeconds(lock.expiresAtMs)} (${formatDuration(lock.expiresAtMs - now)})`;
    console.log(
      `Created lock ${lock.name} on ${formatTarget(lock.target)}, ${until}.\n` +
        "Every serve on this store refuses matching joins within 5 s; certificates already " +
        "issued stay valid until they expire.",
    );
    return 0;
  });
}

function toJson(lock: Lock): Record<string, unknown> {
  return {
    kind: "lock",
    version: "v2",
    metadata: { name: lock.name },
    spec: {
      target: lock.target,
      ...(lock.message === undefined ? {} : { message: lock.message }),
      ...(lock.expiresAtMs === undefined
        ? {}
        : { expires: new Date(lock.expiresAtMs).toISOString() }),
      ...(lock.createdAtMs === undefined
        ? {}
        : { created_at: new Date(lock.createdAtMs).toISOString() }),
    },
  };
}

export function listTable(locks: readonly Lock[], nowMs: number): string {
  if (locks.length === 0) return "No locks in the store.";
  return table(
    ["NAME", "TARGET", "STATE", "EXPIRES", "MESSAGE"],
    locks.map((l) => [
      l.name,
      formatTarget(l.target),
      l.expiresAtMs !== undefined && l.expiresAtMs <= nowMs ? "expired" : "in force",
      l.expiresAtMs === undefined ? "never" : isoSeconds(l.expiresAtMs),
      l.message ?? "",
    ]),
  );
}
