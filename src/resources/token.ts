import { parseRfc3339 } from "../lib/rfc3339.ts";
import type { PreparedJoin } from "../methods/join-method.ts";
import { JOIN_METHODS } from "../methods/registry.ts";
import type { FieldReader } from "../yaml/field-reader.ts";
import type { JoinToken } from "./types.ts";

/**
 * Every join method Teleport knows. Tokens of any of them load (so a directory exported from
 * Teleport loads whole); only those of `src/methods/registry.ts` (today `kubernetes`) can join
 * here, the others get `join_method_mismatch`.
 */
export const KNOWN_JOIN_METHODS = [
  "token",
  "ec2",
  "iam",
  "github",
  "circleci",
  "kubernetes",
  "gitlab",
  "gcp",
  "azure",
  "spacelift",
  "tpm",
  "terraform_cloud",
  "bitbucket",
  "oracle",
  "azure_devops",
  "bound_keypair",
] as const;

/**
 * Token names travel in join requests, logs and audit events: printable ASCII without spaces,
 * 1 to 256 characters.
 */
export const TOKEN_NAME_PATTERN = /^[\x21-\x7e]{1,256}$/;

export const TOKEN_FIELDS = ["kind", "version", "metadata", "spec"] as const;
const METADATA_FIELDS = ["name", "description", "labels", "namespace", "revision", "expires"];
// Blocks of the other join methods: accepted without deep validation (they never join here).
const OTHER_METHOD_BLOCKS = KNOWN_JOIN_METHODS.filter(
  (m) => m !== "kubernetes" && m !== "token" && m !== "ec2" && m !== "iam",
);
const SPEC_FIELDS = [
  "roles",
  "bot_name",
  "join_method",
  "kubernetes",
  "allow",
  "aws_iid_ttl",
  "suggested_labels",
  "suggested_agent_matcher_labels",
  ...OTHER_METHOD_BLOCKS,
];

/**
 * Validates one `kind: token` document (kind and version already checked by the caller).
 * `bot_name` naming a loaded bot is checked by the caller, across all files.
 */
export function readToken(r: FieldReader, doc: Record<string, unknown>): JoinToken | undefined {
  const before = r.problemCount;
  r.mapping([], doc, TOKEN_FIELDS);
  const metadata = r.mapping(["metadata"], doc["metadata"] ?? {}, METADATA_FIELDS);
  const name = r.requiredString(["metadata", "name"], metadata?.["name"]);
  if (name !== undefined && !TOKEN_NAME_PATTERN.test(name)) {
    r.error(
      ["metadata", "name"],
      "a token name must be 1 to 256 printable ASCII characters without spaces",
    );
  }
  const expiresAt = readExpires(r, metadata?.["expires"]);
  const spec = r.mapping(["spec"], doc["spec"] ?? {}, SPEC_FIELDS) ?? {};
  const roles = readRoles(r, spec["roles"]);
  const botName = r.optionalString(["spec", "bot_name"], spec["bot_name"]);
  if (roles !== undefined) {
    const isBotToken = roles.includes("Bot");
    if (!isBotToken) {
      r.error(
        ["spec", "roles"],
        'must include "Bot" (any case): kube-join joins bots only, e.g. roles: [Bot]',
      );
    }
    if (isBotToken && botName === undefined) {
      r.error(["spec", "bot_name"], 'token with role "Bot" must set bot_name');
    }
    if (!isBotToken && botName !== undefined) {
      r.error(["spec", "bot_name"], 'can only set bot_name on token with role "Bot"');
    }
  }
  const joinMethod = readJoinMethod(r, spec);
  const method = joinMethod === undefined ? undefined : JOIN_METHODS.get(joinMethod);
  let join: PreparedJoin | undefined;
  if (method !== undefined) {
    join = method.readSpec(r, spec);
  } else if (joinMethod !== undefined) {
    for (const served of JOIN_METHODS.keys()) {
      if (spec[served] !== undefined) {
        r.warn(["spec", served], `ignored: join_method is ${JSON.stringify(joinMethod)}`);
      }
    }
  }
  if (r.problemCount > before || name === undefined || joinMethod === undefined) return undefined;
  return {
    name,
    expiresAt,
    roles: roles ?? [],
    botName,
    joinMethod,
    join,
    source: r.source.positionOf(["metadata", "name"]),
  };
}

/** Roles as written, except that any spelling of `Bot` becomes `Bot`. */
function readRoles(r: FieldReader, value: unknown): string[] | undefined {
  const roles = r.stringList(["spec", "roles"], value);
  if (roles === undefined || roles.length === 0) {
    if (roles !== undefined || value === undefined || value === null) {
      r.error(["spec", "roles"], "provisioning token is missing roles: set roles: [Bot]");
    }
    return undefined;
  }
  const canonical = roles.map((role) => (role.toLowerCase() === "bot" ? "Bot" : role));
  canonical.forEach((role, i) => {
    if (role !== "Bot") {
      r.warn(
        ["spec", "roles", i],
        `role ${JSON.stringify(role)} never joins here: kube-join issues bot certificates only`,
      );
    }
  });
  return [...new Set(canonical)];
}

function readJoinMethod(r: FieldReader, spec: Record<string, unknown>): string | undefined {
  const path = ["spec", "join_method"];
  const method = r.optionalString(path, spec["join_method"]);
  if (method === undefined) {
    if (
      spec["join_method"] !== undefined &&
      spec["join_method"] !== null &&
      spec["join_method"] !== ""
    ) {
      return undefined; // ill-typed, already reported
    }
    for (const served of JOIN_METHODS.keys()) {
      if (spec[served] !== undefined) {
        r.error(
          path,
          `must be set to ${JSON.stringify(served)}: Teleport defaults an empty join method to "token" (or "ec2"), which would ignore the ${served} block`,
        );
        return undefined;
      }
    }
    // Teleport's default, for tokens exported from a cluster that predate join methods.
    return spec["allow"] === undefined ? "token" : "ec2";
  }
  if (!(KNOWN_JOIN_METHODS as readonly string[]).includes(method)) {
    r.error(
      path,
      `unknown join method ${JSON.stringify(method)}; join method must be one of ${KNOWN_JOIN_METHODS.join(", ")}`,
    );
    return undefined;
  }
  return method;
}

function readExpires(r: FieldReader, value: unknown): number | undefined {
  const path = ["metadata", "expires"];
  if (value instanceof Date) return value.getTime(); // only with a YAML 1.1 timestamp tag
  const text = r.optionalString(path, value);
  if (text === undefined) return undefined;
  const ms = parseRfc3339(text);
  if (ms === undefined) {
    r.error(
      path,
      `must be an RFC 3339 timestamp such as "2030-01-31T15:04:05Z", got ${JSON.stringify(text)}`,
    );
  }
  return ms;
}
