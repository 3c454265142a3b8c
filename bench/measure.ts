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

/**
 * Measures several operations interleaved, so load from other processes on this shared machine
 * falls on all of them alike: each round runs every operation for about `sliceMs` (batch sizes are
 * calibrated per operation), until each has run about `ms` milliseconds in all. Returns
 * microseconds per call for each name.
 */
export function measureInterleaved(
  fns: Readonly<Record<string, () => unknown>>,
  ms = 1000,
  sliceMs = 5,
): Record<string, number> {
  const entries = Object.entries(fns);
  const batches = entries.map(([, fn]) => {
    const estimateUs = microsPerCall(fn, 50);
    return Math.max(1, Math.round((sliceMs * 1000) / estimateUs));
  });
  const spent = entries.map(() => 0n);
  const calls = entries.map(() => 0);
  const budget = BigInt(ms) * 1_000_000n;
  while (spent.some((t) => t < budget)) {
    entries.forEach(([, fn], i) => {
      const start = process.hrtime.bigint();
      for (let j = 0; j < batches[i]!; j++) fn();
      spent[i]! += process.hrtime.bigint() - start;
      calls[i]! += batches[i]!;
    });
  }
  return Object.fromEntries(
    entries.map(([name], i) => [name, Number(spent[i]!) / calls[i]! / 1000]),
  );
}
