/**
 * Removes bot instances whose latest certificates expired more than `retentionMs` ago: a pod that
 * stopped renewing is kept long enough to be looked at (`kube-join instances show`), then forgotten.
 * Every replica sweeps; the deletes are idempotent, so they need no coordination.
 */
import type { BotInstanceStore } from "../join/bot-instance-store.ts";

export interface SweeperOptions {
  readonly store: Pick<BotInstanceStore, "sweep">;
  readonly retentionMs: number;
  /** Default 10 minutes. */
  readonly intervalMs?: number;
  readonly now?: () => number;
  readonly onSwept?: (removed: number) => void;
  readonly onError?: (err: unknown) => void;
}

export interface Sweeper {
  /** One sweep now; never rejects. */
  sweepOnce(): Promise<void>;
  stop(): void;
}

export function startInstanceSweeper(options: SweeperOptions): Sweeper {
  const now = options.now ?? Date.now;
  const sweepOnce = async (): Promise<void> => {
    try {
      const removed = await options.store.sweep(now() - options.retentionMs);
      if (removed > 0) options.onSwept?.(removed);
    } catch (err) {
      options.onError?.(err);
    }
  };
  const timer = setInterval(() => void sweepOnce(), options.intervalMs ?? 10 * 60_000);
  timer.unref();
  return { sweepOnce, stop: () => clearInterval(timer) };
}
