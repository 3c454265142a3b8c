import { JoinError } from "../errors.ts";

/** Bounds on a bot certificate's lifetime (all in milliseconds). */
export interface LifetimeLimits {
  /** Lifetime when the bot asks for none (kube-join's default: 1 hour). */
  readonly defaultTtlMs: number;
  /** The service-wide cap (kube-join's default: 24 hours). */
  readonly maxTtlMs: number;
  /** The bot resource's `max_session_ttl`. */
  readonly botMaxSessionTtlMs: number;
}

/** Backdating for clock skew between kube-join and whoever checks the certificate. */
export const BACKDATE_MS = 60_000;
/** A requested expiry must be at least this far away. */
export const MIN_TTL_MS = 60_000;

/**
 * Resolves the validity window of a bot's certificates. Pure: the time is an argument.
 *
 * Without a request the lifetime is `defaultTtlMs`; a requested expiry is honoured up to
 * `min(maxTtlMs, botMaxSessionTtlMs)` and capped there (the caller reports the real expiry).
 * A request under 1 minute away, or in the past, is `invalid_ttl`. `notBefore` is backdated
 * 1 minute.
 *
 * @example resolveCertificateLifetime(undefined, now, { defaultTtlMs: 3_600_000, maxTtlMs: 86_400_000, botMaxSessionTtlMs: 43_200_000 })
 */
export function resolveCertificateLifetime(
  requestedNotAfterMs: number | undefined,
  nowMs: number,
  limits: LifetimeLimits,
): { notBeforeMs: number; notAfterMs: number } {
  if (!Number.isFinite(nowMs)) throw new TypeError("nowMs must be a finite number");
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isFinite(value) || value < MIN_TTL_MS) {
      throw new TypeError(`limits.${name} must be a number of milliseconds >= ${MIN_TTL_MS}`);
    }
  }
  const capMs = Math.min(limits.maxTtlMs, limits.botMaxSessionTtlMs);
  const notBeforeMs = nowMs - BACKDATE_MS;
  if (requestedNotAfterMs === undefined) {
    return { notBeforeMs, notAfterMs: nowMs + Math.min(limits.defaultTtlMs, capMs) };
  }
  if (!Number.isFinite(requestedNotAfterMs)) {
    throw new JoinError("invalid_ttl", "the requested expiry is not a valid time");
  }
  if (requestedNotAfterMs - nowMs < MIN_TTL_MS) {
    throw new JoinError(
      "invalid_ttl",
      requestedNotAfterMs <= nowMs
        ? "the requested expiry is in the past"
        : "the requested expiry is less than 1 minute away",
    );
  }
  return { notBeforeMs, notAfterMs: Math.min(requestedNotAfterMs, nowMs + capMs) };
}
