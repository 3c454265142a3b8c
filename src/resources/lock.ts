import { parseRfc3339 } from "../lib/rfc3339.ts";
import { LOCK_TARGET_FIELDS, type Lock, type LockTargetField } from "../locks/lock.ts";
import { DNS_LABEL, DNS_SUBDOMAIN } from "../methods/kubernetes/names.ts";
import type { FieldReader } from "../yaml/field-reader.ts";
import { BOT_NAME_PATTERN } from "./bot.ts";

export const LOCK_FIELDS = ["kind", "version", "metadata", "spec"] as const;
const METADATA_FIELDS = ["name", "description", "labels", "namespace", "revision"];
// `created_at` and `created_by` are what `tctl get lock` prints; accepted and ignored.
const SPEC_FIELDS = ["target", "message", "expires", "created_at", "created_by"];

/** Teleport's lock targets that kube-join has nothing to match against (no sessions, no MFA). */
const TELEPORT_ONLY_TARGETS = [
  "role",
  "login",
  "node",
  "server_id",
  "mfa_device",
  "windows_desktop",
  "access_request",
  "device",
];

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Longer messages are refused: the message goes into every refused join's response. */
export const MAX_LOCK_MESSAGE_LENGTH = 1024;

/**
 * Validates one `kind: lock`, `version: v2` document as Teleport writes it (kind and version
 * already checked). A target field kube-join cannot enforce is a problem, never silently
 * dropped: a lock that matches nothing would look like protection and give none.
 */
export function readLock(
  r: FieldReader,
  doc: Record<string, unknown>,
  nowMs: number,
): Lock | undefined {
  const before = r.problemCount;
  r.mapping([], doc, LOCK_FIELDS);
  const metadata = r.mapping(["metadata"], doc["metadata"] ?? {}, METADATA_FIELDS);
  const name = r.requiredString(["metadata", "name"], metadata?.["name"]);
  const spec = r.mapping(["spec"], doc["spec"] ?? {}, SPEC_FIELDS);
  const target = readTarget(r, spec?.["target"]);
  const message = r.optionalString(["spec", "message"], spec?.["message"]);
  if (message !== undefined && message.length > MAX_LOCK_MESSAGE_LENGTH) {
    r.error(["spec", "message"], `must be at most ${MAX_LOCK_MESSAGE_LENGTH} characters`);
  }
  const expiresText = r.optionalString(["spec", "expires"], spec?.["expires"]);
  let expiresAtMs: number | undefined;
  if (expiresText !== undefined) {
    expiresAtMs = parseRfc3339(expiresText);
    if (expiresAtMs === undefined) {
      r.error(["spec", "expires"], "must be an RFC 3339 date-time such as 2026-12-31T23:59:59Z");
    } else if (expiresAtMs <= nowMs) {
      r.warn(["spec", "expires"], "has passed: the lock is not in force");
    }
  }
  if (r.problemCount > before || name === undefined || target === undefined) return undefined;
  const at = r.source.positionOf(["metadata", "name"]);
  return {
    name,
    target,
    message,
    expiresAtMs,
    createdAtMs: undefined,
    origin: `${at.file}:${at.line}`,
  };
}

function readTarget(
  r: FieldReader,
  value: unknown,
): Partial<Record<LockTargetField, string>> | undefined {
  const path = ["spec", "target"];
  if (value === undefined || value === null) {
    r.error(path, `must be set, with one or more of: ${LOCK_TARGET_FIELDS.join(", ")}`);
    return undefined;
  }
  const raw = r.mapping(path, value, [...LOCK_TARGET_FIELDS, ...TELEPORT_ONLY_TARGETS]);
  if (raw === undefined) return undefined;
  const target: Partial<Record<LockTargetField, string>> = {};
  let ok = true;
  for (const key of Object.keys(raw)) {
    if (TELEPORT_ONLY_TARGETS.includes(key)) {
      r.error(
        [...path, key],
        `kube-join cannot enforce a lock on ${key}; it locks: ${LOCK_TARGET_FIELDS.join(", ")}`,
      );
      ok = false;
    }
  }
  for (const field of LOCK_TARGET_FIELDS) {
    const text = r.optionalString([...path, field], raw[field]);
    if (text === undefined) continue;
    const problem = targetProblem(field, text);
    if (problem !== undefined) {
      r.error([...path, field], problem);
      ok = false;
    } else target[field] = text;
  }
  if (ok && Object.keys(target).length === 0) {
    r.error(path, `must name one or more of: ${LOCK_TARGET_FIELDS.join(", ")}`);
    return undefined;
  }
  return ok ? target : undefined;
}

function targetProblem(field: LockTargetField, value: string): string | undefined {
  switch (field) {
    case "user":
      return value.startsWith("bot-") && BOT_NAME_PATTERN.test(value.slice(4))
        ? undefined
        : `must be bot-NAME (Teleport's user of a bot; kube-join joins bots only), got ${JSON.stringify(value)}`;
    case "join_token":
      return undefined;
    case "bot_instance_id":
      return UUID.test(value)
        ? undefined
        : "must be a bot instance id (a lowercase UUID, as kube-join instances list shows)";
    case "kubernetes_service_account": {
      const [ns, sa, ...more] = value.split(":");
      return more.length === 0 &&
        ns !== undefined &&
        sa !== undefined &&
        DNS_LABEL.test(ns) &&
        DNS_SUBDOMAIN.test(sa)
        ? undefined
        : `must be NAMESPACE:NAME, got ${JSON.stringify(value)}`;
    }
    case "kubernetes_namespace":
      return DNS_LABEL.test(value)
        ? undefined
        : `must be a namespace name (a DNS label), got ${JSON.stringify(value)}`;
  }
}
