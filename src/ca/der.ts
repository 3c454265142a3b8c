/**
 * The few DER (X.690) encodings kube-join's certificates (the bot leaves and the self-signed CA)
 * need, written by hand so that issuing a certificate costs little more than its signature
 * (`npm run bench` compares a CA certificate built here with one from @peculiar/x509, which the
 * tests keep as their ASN.1 oracle). Every function returns finished TLV bytes; callers
 * concatenate them.
 */

/** Tag numbers used by kube-join's certificates (universal class unless noted). */
export const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  null: 0x05,
  oid: 0x06,
  utf8String: 0x0c,
  printableString: 0x13,
  utcTime: 0x17,
  generalizedTime: 0x18,
  sequence: 0x30,
  set: 0x31,
} as const;

function lengthOfLength(length: number): number {
  if (length < 0x80) return 1;
  if (length < 0x100) return 2;
  if (length < 0x10000) return 3;
  if (length < 0x1000000) return 4;
  throw new RangeError(`DER value of ${length} bytes is too large`);
}

/**
 * A TLV with the given tag byte whose value is the concatenation of `parts`. One allocation
 * per element: this runs a few dozen times per certificate.
 */
export function tlv(tag: number, ...parts: readonly Uint8Array[]): Buffer {
  let length = 0;
  for (const part of parts) length += part.length;
  const header = 1 + lengthOfLength(length);
  const out = Buffer.allocUnsafe(header + length);
  out[0] = tag;
  if (header === 2) {
    out[1] = length;
  } else {
    out[1] = 0x80 | (header - 2);
    for (let i = header - 1, rest = length; i >= 2; i--, rest >>>= 8) out[i] = rest & 0xff;
  }
  let at = header;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function sequence(...parts: readonly Uint8Array[]): Buffer {
  return tlv(TAG.sequence, ...parts);
}

/** A SET OF whose elements the caller has already put in DER order (or which has one element). */
export function set(...parts: readonly Uint8Array[]): Buffer {
  return tlv(TAG.set, ...parts);
}

/** `[n] EXPLICIT` (constructed, context-specific). */
export function explicit(tagNumber: number, ...parts: readonly Uint8Array[]): Buffer {
  return tlv(0xa0 | tagNumber, ...parts);
}

/** `[n] IMPLICIT` of a primitive type (context-specific, primitive). */
export function implicitPrimitive(tagNumber: number, value: Uint8Array): Buffer {
  return tlv(0x80 | tagNumber, value);
}

export function smallInteger(value: number): Buffer {
  if (!Number.isInteger(value) || value < 0 || value > 0x7f) {
    throw new RangeError(`smallInteger accepts 0..127, got ${value}`);
  }
  return Buffer.of(TAG.integer, 1, value);
}

export function boolean(value: boolean): Buffer {
  return Buffer.of(TAG.boolean, 1, value ? 0xff : 0x00);
}

export function nullValue(): Buffer {
  return Buffer.of(TAG.null, 0);
}

/** OBJECT IDENTIFIER from dotted text, e.g. `oid("2.5.29.15")`. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split(".").map((arc) => {
    if (!/^\d+$/.test(arc)) throw new TypeError(`invalid OID ${dotted}`);
    return Number(arc);
  });
  const [first, second, ...rest] = arcs;
  if (first === undefined || second === undefined || first > 2 || (first < 2 && second > 39)) {
    throw new TypeError(`invalid OID ${dotted}`);
  }
  const bytes: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const base128: number[] = [arc & 0x7f];
    for (let rest = Math.floor(arc / 128); rest > 0; rest = Math.floor(rest / 128)) {
      base128.unshift((rest & 0x7f) | 0x80);
    }
    bytes.push(...base128);
  }
  return tlv(TAG.oid, Buffer.from(bytes));
}

export function utf8String(text: string): Buffer {
  return tlv(TAG.utf8String, Buffer.from(text, "utf8"));
}

export function octetString(...parts: readonly Uint8Array[]): Buffer {
  return tlv(TAG.octetString, ...parts);
}

/** BIT STRING of whole bytes (no unused bits). */
export function bitString(bytes: Uint8Array): Buffer {
  return tlv(TAG.bitString, Buffer.of(0), bytes);
}

function writeDigits(out: Buffer, at: number, value: number, digits: number): void {
  for (let i = at + digits - 1; i >= at; i--, value = Math.floor(value / 10)) {
    out[i] = 0x30 + (value % 10);
  }
}

/**
 * RFC 5280 4.1.2.5: UTCTime for years 1950-2049, GeneralizedTime otherwise; whole seconds, UTC.
 * Digits are written straight into the element (string formatting cost more than a signature's
 * tenth).
 */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  if (year < 0 || year > 9999) throw new RangeError(`year ${year} cannot be encoded`);
  const utc = year >= 1950 && year < 2050;
  const yearDigits = utc ? 2 : 4;
  const out = Buffer.allocUnsafe(2 + yearDigits + 11);
  out[0] = utc ? TAG.utcTime : TAG.generalizedTime;
  out[1] = yearDigits + 11;
  writeDigits(out, 2, utc ? year % 100 : year, yearDigits);
  let at = 2 + yearDigits;
  for (const part of [
    date.getUTCMonth() + 1,
    date.getUTCDate(),
    date.getUTCHours(),
    date.getUTCMinutes(),
    date.getUTCSeconds(),
  ]) {
    writeDigits(out, at, part, 2);
    at += 2;
  }
  out[at] = 0x5a; // "Z"
  return out;
}

/** One element found by {@link readElement}: its tag, where its value starts and ends. */
export interface DerElement {
  readonly tag: number;
  readonly start: number;
  readonly valueStart: number;
  readonly end: number;
}

/**
 * Reads the TLV at `offset` (single-byte tags, definite lengths only: what DER allows for the
 * certificates we parse). Used off the hot path to take a CA certificate's subject verbatim.
 */
export function readElement(der: Uint8Array, offset: number): DerElement {
  const tag = der[offset];
  let lengthByte = der[offset + 1];
  if (tag === undefined || lengthByte === undefined || (tag & 0x1f) === 0x1f) {
    throw new RangeError("truncated or unsupported DER element");
  }
  let valueStart = offset + 2;
  let length = lengthByte;
  if (lengthByte & 0x80) {
    const count = lengthByte & 0x7f;
    if (count === 0 || count > 3) throw new RangeError("unsupported DER length");
    length = 0;
    for (let i = 0; i < count; i++) {
      lengthByte = der[valueStart + i];
      if (lengthByte === undefined) throw new RangeError("truncated DER length");
      length = length * 256 + lengthByte;
    }
    valueStart += count;
  }
  const end = valueStart + length;
  if (end > der.length) throw new RangeError("truncated DER value");
  return { tag, start: offset, valueStart, end };
}
