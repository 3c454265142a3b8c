import { randomFillSync } from "node:crypto";

/**
 * Cryptographically random bytes for serials and nonces, drawn from a pooled buffer: each
 * `randomBytes(16)` call crosses into C++ and costs about a tenth of a signature, a slice of a
 * refilled pool almost nothing. Every byte is handed out once; the returned buffer is a copy.
 */
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let offset = POOL_SIZE;

export function takeRandomBytes(count: number): Buffer {
  if (count > POOL_SIZE) throw new RangeError("takeRandomBytes: too many bytes");
  if (offset + count > POOL_SIZE) {
    randomFillSync(pool);
    offset = 0;
  }
  const out = Buffer.from(pool.subarray(offset, offset + count));
  pool.fill(0, offset, offset + count);
  offset += count;
  return out;
}
