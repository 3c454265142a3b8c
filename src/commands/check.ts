/**
 * `kube-join check PATH...`: loads bot and token resources exactly as the service does and
 * reports every problem, or a summary of what would be served.
 */
import { CONFIG_DEFAULTS } from "../config/config.ts";
import { formatDuration } from "../lib/duration.ts";
import { ALLOWED_ALGORITHMS } from "../jwt/keys.ts";
import { kubernetesSpecOf } from "../methods/kubernetes/method.ts";
import { ConfigError } from "../errors.ts";
import { availableParallelism } from "node:os";
import { ResourceLoader } from "../resources/loader.ts";
import { formatTarget } from "../locks/lock.ts";
import { JOIN_METHODS } from "../methods/registry.ts";
import type { JoinToken, ResourceSet } from "../resources/types.ts";

/** Worker threads parsing the files, at most (fewer on fewer cores). */
const CHECK_WORKERS = 2;

const USAGE = `Usage: kube-join check [--max-keys-without-kid N] PATH...

Validates bot, token and lock resources (YAML files, or directories whose *.yaml and *.yml files
are read in name order) exactly as the service loads them. Warns about a static JWKS with more keys
of one type than a JWT without a kid is tried against (the service's max_keys_without_kid,
default ${CONFIG_DEFAULTS.max_keys_without_kid}; give the configured value with --max-keys-without-kid).

Exit status: 0 when everything loads (a summary with any warnings goes to stdout),
1 when anything is wrong (every problem goes to stderr as file:line:col: field.path: message),
2 for a usage error.`;

export async function run(args: string[]): Promise<number> {
  const paths: string[] = [];
  let optionsDone = false;
  let maxKeysWithoutKid: number = CONFIG_DEFAULTS.max_keys_without_kid;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (!optionsDone && arg === "--max-keys-without-kid") {
      const value = Number(args[++i]);
      if (!Number.isSafeInteger(value) || value < 1) {
        console.error(
          `kube-join check: --max-keys-without-kid needs a whole number >= 1\n\n${USAGE}`,
        );
        return 2;
      }
      maxKeysWithoutKid = value;
    } else if (!optionsDone && arg === "--") optionsDone = true;
    else if (!optionsDone && (arg === "--help" || arg === "-h")) {
      console.log(USAGE);
      return 0;
    } else if (!optionsDone && arg.startsWith("-") && arg !== "-") {
      console.error(`kube-join check: unknown option ${JSON.stringify(arg)}\n\n${USAGE}`);
      return 2;
    } else paths.push(arg);
  }
  if (paths.length === 0) {
    console.error(`kube-join check: no PATH given\n\n${USAGE}`);
    return 2;
  }
  let set: ResourceSet;
  // The same loader as the service's start-up: files parsed in workers, one per core (up to two).
  const loader = new ResourceLoader();
  try {
    set = await loader.load(paths, { workers: Math.min(CHECK_WORKERS, availableParallelism()) });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const problem of err.problems) console.error(problem);
    const count = err.problems.length;
    console.error(`\n${count} problem${count === 1 ? "" : "s"}: nothing would be loaded.`);
    return 1;
  } finally {
    loader.close();
  }
  console.log(summarize(set, Date.now(), { maxKeysWithoutKid }));
  return 0;
}

/**
 * The summary `kube-join check` prints for a loaded set: bots with roles and logins; tokens with
 * join method, type, bot, expiry, allow rules and the key ids of static JWKS keys. `nowMs` marks
 * tokens that have already expired.
 */
export function summarize(
  set: ResourceSet,
  nowMs: number,
  options: { readonly maxKeysWithoutKid?: number } = {},
): string {
  const bound = options.maxKeysWithoutKid ?? CONFIG_DEFAULTS.max_keys_without_kid;
  const warnings = [...set.warnings, ...keylessBoundWarnings(set, bound)];
  const lines: string[] = [];
  lines.push(`Bots (${set.bots.size}):`);
  for (const bot of set.bots.values()) {
    const logins = bot.traits.get("logins") ?? [];
    lines.push(`  ${bot.name}`);
    lines.push(`    roles: ${list(bot.roles)}`);
    lines.push(`    logins: ${list(logins)}`);
    const otherTraits = [...bot.traits.keys()].filter((t) => t !== "logins");
    if (otherTraits.length > 0) lines.push(`    other traits: ${otherTraits.join(", ")}`);
    lines.push(`    max_session_ttl: ${formatDuration(bot.maxSessionTtlMs)}`);
  }
  lines.push(`Tokens (${set.tokens.size}):`);
  for (const token of set.tokens.values()) lines.push(...describeToken(token, nowMs));
  if (set.locks.size > 0) {
    lines.push(`Locks (${set.locks.size}):`);
    for (const lock of set.locks.values()) {
      lines.push(`  ${lock.name}`);
      lines.push(`    target: ${formatTarget(lock.target)}`);
      lines.push(`    expires: ${lockExpiry(lock.expiresAtMs, nowMs)}`);
      if (lock.message !== undefined) lines.push(`    message: ${lock.message}`);
    }
  }
  if (warnings.length > 0) {
    lines.push(`Warnings (${warnings.length}):`);
    for (const warning of warnings) lines.push(`  ${warning}`);
  }
  const files = set.files.length;
  lines.push(
    `OK: ${set.bots.size} bot(s) and ${set.tokens.size} token(s)` +
      (set.locks.size > 0 ? ` and ${set.locks.size} lock(s)` : "") +
      ` from ${files} file${files === 1 ? "" : "s"}` +
      (warnings.length > 0 ? `, ${warnings.length} warning(s)` : ""),
  );
  return lines.join("\n");
}

/**
 * A static JWKS with more keys of one algorithm than a kid-less JWT is tried against: such a
 * token signed by one of the later keys fails (`jwt_signature_invalid`), whoever holds the key.
 */
function keylessBoundWarnings(set: ResourceSet, bound: number): string[] {
  const warnings: string[] = [];
  for (const token of set.tokens.values()) {
    const k = kubernetesSpecOf(token.join);
    if (k?.type !== "static_jwks") continue;
    const most = Math.max(
      ...ALLOWED_ALGORITHMS.map(
        (alg) => k.keySet.keys.filter((key) => key.algorithms.has(alg)).length,
      ),
    );
    if (most > bound) {
      warnings.push(
        `token ${token.name}: its static JWKS has ${most} keys of one type, more than the ${bound} a JWT without a kid (kube < 1.16) is tried against (max_keys_without_kid): such a JWT signed by another of them gets jwt_signature_invalid`,
      );
    }
  }
  return warnings;
}

function describeToken(token: JoinToken, nowMs: number): string[] {
  const lines = [`  ${token.name}`];
  lines.push(`    roles: ${list(token.roles)}; bot: ${token.botName ?? "(none)"}`);
  lines.push(`    expires: ${expiry(token.expiresAt, nowMs)}`);
  if (token.join === undefined) {
    lines.push(
      `    join_method: ${token.joinMethod} (loaded, but only ${servedMethods()} joins through kube-join)`,
    );
    return lines;
  }
  for (const line of token.join.describe()) lines.push(`    ${line}`);
  return lines;
}

function servedMethods(): string {
  return [...JOIN_METHODS.keys()].map((name) => JSON.stringify(name)).join(" or ");
}

function expiry(expiresAt: number | undefined, nowMs: number): string {
  if (expiresAt === undefined) return "never";
  const at = new Date(expiresAt).toISOString();
  return expiresAt <= nowMs ? `${at} (EXPIRED: every join gets token_expired)` : at;
}

function lockExpiry(expiresAt: number | undefined, nowMs: number): string {
  if (expiresAt === undefined) return "never (until removed)";
  const at = new Date(expiresAt).toISOString();
  return expiresAt <= nowMs ? `${at} (passed: not in force)` : at;
}

function list(items: readonly string[]): string {
  return items.length === 0 ? "(none)" : items.join(", ");
}
