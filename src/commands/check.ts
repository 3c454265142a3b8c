/**
 * `kube-join check PATH...`: loads bot and token resources exactly as the service does and
 * reports every problem, or a summary of what would be served.
 */
import { formatDuration } from "../lib/duration.ts";
import { ConfigError } from "../errors.ts";
import { availableParallelism } from "node:os";
import { ResourceLoader } from "../resources/loader.ts";
import { JOIN_METHODS } from "../methods/registry.ts";
import type { JoinToken, ResourceSet } from "../resources/types.ts";

/** Worker threads parsing the files, at most (fewer on fewer cores). */
const CHECK_WORKERS = 2;

const USAGE = `Usage: kube-join check PATH...

Validates bot and token resources (YAML files, or directories whose *.yaml and *.yml files are
read in name order) exactly as the service loads them.

Exit status: 0 when everything loads (a summary with any warnings goes to stdout),
1 when anything is wrong (every problem goes to stderr as file:line:col: field.path: message),
2 for a usage error.`;

export async function run(args: string[]): Promise<number> {
  const paths: string[] = [];
  let optionsDone = false;
  for (const arg of args) {
    if (!optionsDone && arg === "--") optionsDone = true;
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
  console.log(summarize(set, Date.now()));
  return 0;
}

/**
 * The summary `kube-join check` prints for a loaded set: bots with roles and logins; tokens with
 * join method, type, bot, expiry, allow rules and the key ids of static JWKS keys. `nowMs` marks
 * tokens that have already expired.
 */
export function summarize(set: ResourceSet, nowMs: number): string {
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
  if (set.warnings.length > 0) {
    lines.push(`Warnings (${set.warnings.length}):`);
    for (const warning of set.warnings) lines.push(`  ${warning}`);
  }
  const files = set.files.length;
  lines.push(
    `OK: ${set.bots.size} bot(s) and ${set.tokens.size} token(s) from ${files} file${files === 1 ? "" : "s"}` +
      (set.warnings.length > 0 ? `, ${set.warnings.length} warning(s)` : ""),
  );
  return lines.join("\n");
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

function list(items: readonly string[]): string {
  return items.length === 0 ? "(none)" : items.join(", ");
}
