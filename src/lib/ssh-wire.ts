/**
 * The SSH wire format (RFC 4251 section 5): what the CA writes into certificates, the CA and the
 * agent write into OpenSSH key files, and both read back from keys and certificates. Leaf module:
 * imports nothing of ours.
 */

export function uint32(value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32BE(value, 0);
  return out;
}

export function uint64(value: bigint): Buffer {
  const out = Buffer.allocUnsafe(8);
  out.writeBigUInt64BE(value, 0);
  return out;
}

/** An SSH `string`: uint32 length, then the bytes (a JS string is written as UTF-8). */
export function sshString(value: Uint8Array | string): Buffer {
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : value;
  const out = Buffer.allocUnsafe(4 + bytes.length);
  out.writeUInt32BE(bytes.length, 0);
  out.set(bytes, 4);
  return out;
}

/** An SSH `mpint` of a non-negative big-endian magnitude: leading zeros dropped, sign byte added. */
export function mpint(magnitude: Uint8Array): Buffer {
  let start = 0;
  while (start < magnitude.length && magnitude[start] === 0) start++;
  const trimmed = magnitude.subarray(start);
  const value =
    trimmed.length > 0 && (trimmed[0]! & 0x80) !== 0
      ? Buffer.concat([Buffer.of(0), trimmed])
      : Buffer.from(trimmed);
  return sshString(value);
}

/** Reads SSH wire-format fields from a blob, refusing truncation (RangeError). */
export class SshReader {
  #offset = 0;
  readonly #buffer: Buffer;

  constructor(buffer: Buffer) {
    this.#buffer = buffer;
  }

  string(): Buffer {
    const length = this.uint32();
    const end = this.#offset + length;
    if (end > this.#buffer.length) throw new RangeError("truncated SSH string");
    const value = this.#buffer.subarray(this.#offset, end);
    this.#offset = end;
    return value;
  }

  uint32(): number {
    if (this.#offset + 4 > this.#buffer.length) throw new RangeError("truncated SSH uint32");
    const value = this.#buffer.readUInt32BE(this.#offset);
    this.#offset += 4;
    return value;
  }

  uint64(): bigint {
    if (this.#offset + 8 > this.#buffer.length) throw new RangeError("truncated SSH uint64");
    const value = this.#buffer.readBigUInt64BE(this.#offset);
    this.#offset += 8;
    return value;
  }

  /** Non-negative mpint magnitude (leading zero bytes stripped); refuses negative values. */
  mpint(): Buffer {
    const raw = this.string();
    if (raw.length > 0 && (raw[0] ?? 0) & 0x80) throw new RangeError("negative SSH mpint");
    let start = 0;
    while (start < raw.length && raw[start] === 0) start++;
    return raw.subarray(start);
  }

  get done(): boolean {
    return this.#offset === this.#buffer.length;
  }
}
