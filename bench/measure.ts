/** Tiny side-by-side timing helpers for `npm run bench`. Never used by tests. */

export interface BenchRow {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
}

/**
 * Runs `fn` repeatedly for about `ms` milliseconds after a warm-up and returns the mean time per
 * call in microseconds. Calls are batched so the clock read is negligible.
 */
export function microsPerCall(fn: () => unknown, ms = 1000): number {
  const deadline = (target: number) => {
    const start = process.hrtime.bigint();
    let calls = 0;
    let batch = 1;
    for (;;) {
      for (let i = 0; i < batch; i++) fn();
      calls += batch;
      const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
      if (elapsed >= target) return (elapsed * 1000) / calls;
      batch = Math.min(batch * 2, 4096);
    }
  };
  deadline(Math.max(50, ms / 5)); // warm-up: JIT, caches
  return deadline(ms);
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
