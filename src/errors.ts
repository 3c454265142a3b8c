/**
 * The one registry of error codes kube-join returns to callers. Leaf module: imports nothing.
 *
 * Each code has a fixed HTTP status and a one-line meaning; `docs/errors.md` documents the same
 * table and `test/errors.test.ts` fails when the two drift apart.
 */
export const ERROR_REGISTRY = {
  // Presented service-account JWT (verification order, see docs/verification.md).
  jwt_malformed: [
    401,
    "The JWT is larger than 16 KiB, not a compact JWS, or its header or claims are not valid JSON objects.",
  ],
  jwt_algorithm_not_allowed: [
    401,
    "The JWT's `alg` is not an allowed asymmetric algorithm or does not fit the key type.",
  ],
  jwt_signature_invalid: [
    401,
    "No trusted key of the token's `kid` (or, without a kid, none of the first `max_keys_without_kid` keys of the right type) verifies the signature.",
  ],
  jwt_audience_mismatch: [401, "`aud` does not contain the cluster name kube-join expects."],
  jwt_issuer_mismatch: [401, "`iss` does not equal the issuer configured for an `oidc` token."],
  jwt_expired: [401, "`exp` is in the past (beyond 10 s of leeway)."],
  jwt_not_yet_valid: [401, "`nbf` or `iat` is in the future (beyond 10 s of leeway)."],
  jwt_missing_claim: [
    401,
    "`exp` or `iat` is missing, or a time claim (`exp`, `iat`, `nbf`) is not a finite number.",
  ],
  jwt_not_pod_bound: [
    401,
    "The token is not bound to a pod (`kubernetes.io.pod.name` missing): legacy secret tokens never join.",
  ],
  jwt_ttl_too_long: [401, "`exp - iat` exceeds 30 minutes."],
  jwt_not_service_account: [401, "`sub` is not `system:serviceaccount:NAMESPACE:NAME`."],
  jwt_claims_inconsistent: [
    401,
    "`sub` disagrees with `kubernetes.io.namespace` or `kubernetes.io.serviceaccount.name`.",
  ],
  keys_unavailable: [
    503,
    "No keys are available for an `oidc` token: its issuer has not been reachable yet.",
  ],
  // Join token and allow rules.
  token_not_found: [403, "No join token of that name is loaded."],
  token_expired: [403, "The join token's `metadata.expires` has passed."],
  join_method_mismatch: [403, "The join token's join method is not `kubernetes`."],
  role_mismatch: [403, "The requested role is not among the join token's roles."],
  no_matching_allow_rule: [
    403,
    "No allow rule of the join token matches the token's service account.",
  ],
  join_locked: [
    403,
    "A lock in force targets the bot, token, instance, service account or namespace; the message may carry the lock's own message.",
  ],
  // Request shape and certificate parameters.
  bad_request: [400, "The body is not JSON, or a field is missing or of the wrong type."],
  invalid_public_key: [
    400,
    "A public key is unparsable, of an unsupported type or size, or not a public key.",
  ],
  invalid_ttl: [400, "The requested expiry is less than 1 minute away or in the past."],
  not_found: [404, "No such endpoint."],
  method_not_allowed: [405, "The endpoint exists but not for this HTTP method."],
  payload_too_large: [413, "The request body is larger than 64 KiB."],
  unsupported_media_type: [415, "The request body is not `application/json`."],
  rate_limited: [
    429,
    "Too many requests from this client address; retry after `Retry-After` seconds.",
  ],
  internal: [500, "An unexpected error; details are only in the server log."],
  not_ready: [503, "Resources or the certificate authority are not loaded yet."],
  audit_unavailable: [
    503,
    "The audit trail cannot be written (full disk, I/O error, removed directory): no certificate is issued; retry after `Retry-After` seconds.",
  ],
  store_unavailable: [
    503,
    "The bot instance could not be recorded (the store is unreachable); nothing was issued. Retry after `Retry-After` seconds.",
  ],
} as const satisfies Record<string, readonly [number, string]>;

export type ErrorCode = keyof typeof ERROR_REGISTRY;

/** What a caller sees of anything unexpected (code `internal`); the details go to the log only. */
export const INTERNAL_MESSAGE = "internal error; the details are in the server log";

export const ERROR_CODES = Object.keys(ERROR_REGISTRY) as ErrorCode[];

/** HTTP status of a registered code. */
export function statusOf(code: ErrorCode): number {
  return ERROR_REGISTRY[code][0];
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === "string" && Object.hasOwn(ERROR_REGISTRY, value);
}

/**
 * An error caused by untrusted input (a caller's JWT, request or keys). Its message is safe to
 * return to that caller: it never contains the JWT, key material, server paths or other tokens'
 * configuration.
 */
export class JoinError extends Error {
  override readonly name = "JoinError";
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/**
 * An admin's mistake in configuration or resources, found at load. Carries every problem, each
 * already formatted as `file:line:col: field.path: message`.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(problems.join("\n"));
    this.problems = problems;
  }
}
