/**
 * Certificate serials chosen before signing: the join records them with the bot instance (one
 * durable write) and only then signs, so the instance id and generation the record assigns can go
 * into the very certificates whose serials it holds.
 */
import { takeRandomBytes } from "./random-pool.ts";

export interface CertificateSerials {
  /** 16 bytes, positive (top bit clear), no leading zero byte: minimal DER without a sign byte. */
  readonly tls: Buffer;
  readonly ssh: bigint;
}

export function newCertificateSerials(): CertificateSerials {
  const random = takeRandomBytes(24);
  const tls = random.subarray(0, 16);
  tls[0] = (tls[0] ?? 0) & 0x7f || 0x01;
  return { tls: Buffer.from(tls), ssh: random.readBigUInt64BE(16) };
}

/** The X.509 serial as kube-join prints it (lowercase hex, as `tls_serial`). */
export function tlsSerialHex(serials: CertificateSerials): string {
  return serials.tls.toString("hex");
}
