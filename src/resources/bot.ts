import { BOT_NAME_PATTERN } from "../lib/bot-name.ts";
import { formatDuration } from "../lib/duration.ts";
import type { FieldReader } from "../yaml/field-reader.ts";
import type { Bot } from "./types.ts";

/** `spec.max_session_ttl` when absent, as in Teleport. */
export const DEFAULT_MAX_SESSION_TTL_MS = 12 * 3_600_000;
/** Bounds kube-join puts on `spec.max_session_ttl` (a bot certificate outliving a week is a mistake). */
export const MIN_MAX_SESSION_TTL_MS = 60_000;
export const MAX_MAX_SESSION_TTL_MS = 7 * 24 * 3_600_000;

export { BOT_NAME_PATTERN };

// `logins` become SSH principals: no whitespace, control characters or commas (the separator of
// principal lists in sshd's AuthorizedPrincipals and in ssh-keygen -n).
const LOGIN_PATTERN = /^[^\s\p{Cc},]{1,256}$/u;

export const BOT_FIELDS = ["kind", "version", "metadata", "spec", "status"] as const;
const METADATA_FIELDS = ["name", "description", "labels", "namespace", "revision", "expires"];
const SPEC_FIELDS = ["roles", "traits", "max_session_ttl"];
const TRAIT_FIELDS = ["name", "values"];

/**
 * Validates one `kind: bot` document (kind and version already checked by the caller). Returns
 * the bot, or undefined when it had problems (all recorded in the reader).
 */
export function readBot(r: FieldReader, doc: Record<string, unknown>): Bot | undefined {
  const before = r.problemCount;
  r.mapping([], doc, BOT_FIELDS);
  const metadata = r.mapping(["metadata"], doc["metadata"] ?? {}, METADATA_FIELDS);
  const name = r.requiredString(["metadata", "name"], metadata?.["name"]);
  if (name !== undefined && !BOT_NAME_PATTERN.test(name)) {
    r.error(
      ["metadata", "name"],
      `bot name ${JSON.stringify(name)} is not allowed: use 1 to 128 characters from [A-Za-z0-9._-], starting with a letter or digit (bot names go into certificates)`,
    );
  }
  if (metadata?.["expires"] !== undefined) {
    r.error(
      ["metadata", "expires"],
      "kube-join does not expire bots: remove it (expire the bot's join token instead)",
    );
  }
  // `status` is what `tctl get bot` prints (user and role names); it is ignored on input.
  const spec = r.mapping(["spec"], doc["spec"] ?? {}, SPEC_FIELDS);
  const roles = r.stringList(["spec", "roles"], spec?.["roles"]) ?? [];
  const traits = readTraits(r, spec?.["traits"]);
  const maxSessionTtlMs = readMaxSessionTtl(r, spec?.["max_session_ttl"]);
  if (r.problemCount > before || name === undefined || traits === undefined) return undefined;
  return {
    name,
    roles,
    traits,
    maxSessionTtlMs: maxSessionTtlMs ?? DEFAULT_MAX_SESSION_TTL_MS,
    source: r.source.positionOf(["metadata", "name"]),
  };
}

function readTraits(
  r: FieldReader,
  value: unknown,
): ReadonlyMap<string, readonly string[]> | undefined {
  const traits = new Map<string, readonly string[]>();
  const list = r.optionalList(["spec", "traits"], value);
  if (list === undefined) return value === undefined || value === null ? traits : undefined;
  list.forEach((item, i) => {
    const path = ["spec", "traits", i];
    const trait = r.mapping(path, item, TRAIT_FIELDS);
    if (trait === undefined) return;
    const name = r.requiredString([...path, "name"], trait["name"]);
    const values = r.stringList([...path, "values"], trait["values"]) ?? [];
    if (name === undefined) return;
    if (traits.has(name)) {
      r.error([...path, "name"], `duplicate trait ${JSON.stringify(name)}: list its values once`);
      return;
    }
    if (name === "logins") {
      values.forEach((login, j) => {
        if (!LOGIN_PATTERN.test(login)) {
          r.error(
            [...path, "values", j],
            "a login must not contain whitespace, control characters or commas (logins become SSH principals)",
          );
        }
      });
    }
    traits.set(name, values);
  });
  return traits;
}

function readMaxSessionTtl(r: FieldReader, value: unknown): number | undefined {
  const path = ["spec", "max_session_ttl"];
  const ms = r.optionalDuration(path, value);
  if (ms === undefined) return undefined;
  if (ms < MIN_MAX_SESSION_TTL_MS || ms > MAX_MAX_SESSION_TTL_MS) {
    r.error(
      path,
      `must be between ${formatDuration(MIN_MAX_SESSION_TTL_MS)} and ${formatDuration(MAX_MAX_SESSION_TTL_MS)}, got ${String(value)}`,
    );
    return undefined;
  }
  return ms;
}
