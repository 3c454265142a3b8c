/** Retry delays after failed joins: exponential, capped, with jitter. */
export interface BackoffPolicy {
  readonly initialMs: number;
  readonly maxMs: number;
}

/**
 * The delay before retry number `failures` (1 after the first failure): a ceiling of
 * `initialMs * 2^(failures-1)`, capped at `maxMs`, and a delay drawn uniformly from
 * [ceiling/2, ceiling] ("equal jitter"), so agents that failed together spread out but never
 * retry sooner than half the ceiling. `random` returns a number in [0, 1).
 *
 * @example backoffDelay(3, { initialMs: 1000, maxMs: 300_000 }, () => 0) === 2000
 */
export function backoffDelay(
  failures: number,
  policy: BackoffPolicy,
  random: () => number,
): number {
  if (!Number.isInteger(failures) || failures < 1) {
    throw new TypeError(`backoffDelay: failures must be a positive integer, got ${failures}`);
  }
  // 2^40 already exceeds any sane cap; clamping the exponent keeps the arithmetic finite.
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(failures - 1, 40));
  const jitter = Math.min(Math.max(random(), 0), 1);
  return Math.round(ceiling / 2 + (ceiling / 2) * jitter);
}
