/**
 * Codes the agent reports for failures that happen on its own side, before or after the server
 * answers. Server refusals keep the server's code (`no_matching_allow_rule`, `jwt_expired`, ...),
 * which the agent passes through as a string: an older agent must still report a newer server's
 * codes faithfully.
 */
export const AGENT_LOCAL_CODES = {
  token_unreadable: "The service-account token file is missing, unreadable or empty.",
  server_unreachable: "No HTTP answer: connection refused or reset, DNS, TLS handshake, timeout.",
  bad_response: "The server answered with something that is not a usable identity or error.",
  write_failed: "The identity could not be written to (or read from) a destination.",
  agent_internal: "An unexpected error in the agent itself (a bug); it keeps retrying.",
} as const;

export type AgentLocalCode = keyof typeof AGENT_LOCAL_CODES;

/** A failed join or identity write, with the code the agent logs and exits with. */
export class AgentError extends Error {
  override readonly name = "AgentError";
  /** The server's error code, or one of `AGENT_LOCAL_CODES`. */
  readonly code: string;
  /** HTTP status when the server answered. */
  readonly status: number | undefined;
  /** From a `Retry-After` header (seconds, converted to ms), when the server sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(
    code: AgentLocalCode | (string & {}),
    message: string,
    details: { status?: number; retryAfterMs?: number } = {},
  ) {
    super(message);
    this.code = code;
    this.status = details.status;
    this.retryAfterMs = details.retryAfterMs;
  }
}
