/**
 * Per-client token buckets, as Teleport's connection limiter: each client address may make
 * `average` requests per `period` on average, with bursts of up to `burst`. Buckets live in an LRU
 * so a flood of distinct addresses costs bounded memory (the least recently seen client is
 * forgotten, which at worst gives it a fresh, full bucket).
 */
import { LRUCache } from "lru-cache";

export interface RateLimitOptions {
  readonly average: number;
  readonly periodMs: number;
  readonly burst: number;
  /** Bound on tracked client addresses. */
  readonly maxClients?: number;
  /** Milliseconds; default `Date.now`. */
  readonly now?: () => number;
}

export type RateDecision =
  { readonly allowed: true } | { readonly allowed: false; readonly retryAfterSeconds: number };

interface Bucket {
  tokens: number;
  updatedMs: number;
}

const DEFAULT_MAX_CLIENTS = 65_536;

export class RateLimiter {
  readonly #buckets: LRUCache<string, Bucket>;
  readonly #ratePerMs: number;
  readonly #burst: number;
  readonly #now: () => number;
  /** The most client addresses tracked at once (`maxClients`). */
  readonly capacity: number;

  constructor(options: RateLimitOptions) {
    for (const name of ["average", "periodMs", "burst"] as const) {
      if (!(options[name] > 0)) throw new TypeError(`${name} must be positive`);
    }
    this.#ratePerMs = options.average / options.periodMs;
    this.#burst = options.burst;
    this.#now = options.now ?? Date.now;
    this.capacity = options.maxClients ?? DEFAULT_MAX_CLIENTS;
    this.#buckets = new LRUCache({ max: this.capacity });
  }

  /** Takes one token from `client`'s bucket, or says how long until one is available. */
  take(client: string): RateDecision {
    const now = this.#now();
    const bucket = this.#buckets.get(client) ?? { tokens: this.#burst, updatedMs: now };
    const elapsed = Math.max(0, now - bucket.updatedMs);
    bucket.tokens = Math.min(this.#burst, bucket.tokens + elapsed * this.#ratePerMs);
    bucket.updatedMs = now;
    this.#buckets.set(client, bucket);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true };
    }
    const waitMs = (1 - bucket.tokens) / this.#ratePerMs;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
  }

  /** Number of client addresses tracked now (bounded by `maxClients`). */
  get clients(): number {
    return this.#buckets.size;
  }
}
