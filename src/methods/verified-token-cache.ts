/**
 * The verified-token cache (the fast path of issue 5): a JWT that verified once under a key set is
 * not verified again while it is still valid. Only the signature/claims check is cached; token
 * existence, token expiry, role and allow rules are checked on every join because a reload can
 * change them.
 *
 * Correctness rests on the key: sha256 of the JWT *and* the key set's `revision` (and the expected
 * audience/issuer). A reload that changes a token's keys changes the revision, so entries verified
 * under the old keys can never be reached again (they age out of the LRU). Entries live until the
 * JWT's own `exp` plus the verifier's leeway, never beyond it, measured on the injected clock.
 * Failures are never cached.
 */
import { hash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { CLOCK_LEEWAY_SECONDS } from "../jwt/verify.ts";

export interface VerifiedTokenCacheOptions {
  /** Bound on entries (config `cache.max_entries`, default 100k). */
  readonly maxEntries: number;
  /** Milliseconds since the epoch; the same clock the join pipeline uses. */
  readonly now: () => number;
}

/** What can be cached: anything that knows when the proof it came from expires. */
export interface Expiring {
  /** Seconds since the epoch (a JWT's `exp`). */
  readonly expiresAt: number;
}

interface Entry<T> {
  readonly value: T;
  readonly validUntilMs: number;
}

/**
 * A verified value is a handful of short strings (DNS names, UIDs, an issuer URL); this generous
 * per-entry estimate bounds memory even if a token carries unusually long claims.
 */
const BASE_ENTRY_BYTES = 256;
const AVERAGE_ENTRY_BYTES = 1024;

/**
 * The cache, of the values a join method derives from a verified token (for the kubernetes method:
 * the service-account identity and its rendered join attributes).
 */
export class VerifiedTokenCache<T extends Expiring = Expiring> {
  readonly #lru: LRUCache<string, Entry<T>>;
  readonly #now: () => number;

  constructor(options: VerifiedTokenCacheOptions) {
    if (!Number.isSafeInteger(options.maxEntries) || options.maxEntries < 1) {
      throw new TypeError("maxEntries must be a whole number of at least 1");
    }
    this.#now = options.now;
    this.#lru = new LRUCache<string, Entry<T>>({
      max: options.maxEntries,
      maxSize: options.maxEntries * AVERAGE_ENTRY_BYTES,
      sizeCalculation: (entry, key) => BASE_ENTRY_BYTES + key.length + valueBytes(entry.value, 0),
      // No lru-cache TTL: each entry carries its own deadline, checked on every `get` against the
      // injected clock, and expired entries are evicted as the LRU fills; TTL bookkeeping would
      // only add a second clock read to the hit path.
    });
  }

  /**
   * The cache key of one verification: what was verified (the JWT, hashed so the cache never holds
   * a token), under which keys and for which expected claims.
   */
  static keyOf(
    jwt: string,
    keyRevision: string,
    audience: string,
    issuer: string | undefined,
  ): string {
    // One-shot hash: no Hash object per lookup (this is the whole cost of a cache hit).
    const digest = hash("sha256", jwt, "base64url");
    return `${digest}|${keyRevision}|${audience}|${issuer ?? ""}`;
  }

  /** The value verified under `key`, if still within its JWT's lifetime. */
  get(key: string): T | undefined {
    const entry = this.#lru.get(key);
    if (entry === undefined) return undefined;
    if (this.#now() >= entry.validUntilMs) {
      this.#lru.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Remembers a successful verification until the JWT's `exp` plus leeway. */
  set(key: string, value: T): void {
    const validUntilMs = (value.expiresAt + CLOCK_LEEWAY_SECONDS) * 1000;
    const ttl = validUntilMs - this.#now();
    if (!(ttl > 0)) return;
    this.#lru.set(key, { value, validUntilMs });
  }

  get size(): number {
    return this.#lru.size;
  }

  clear(): void {
    this.#lru.clear();
  }
}

/** An estimate of a value's size: strings count two bytes a character, nested objects to depth 3. */
function valueBytes(value: unknown, depth: number): number {
  if (typeof value === "string") return value.length * 2;
  if (typeof value !== "object" || value === null || depth > 3) return 8;
  let n = 8;
  for (const member of Object.values(value)) n += valueBytes(member, depth + 1);
  return n;
}
