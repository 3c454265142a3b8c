import { SshReader } from "../lib/ssh-wire.ts";

/** The fields of an OpenSSH ECDSA P-256 user certificate the agent checks and records. */
export interface SshCertificateInfo {
  readonly keyType: "ecdsa-sha2-nistp256-cert-v01@openssh.com";
  /** The certified public key's uncompressed point. */
  readonly publicPoint: Buffer;
  readonly serial: bigint;
  /** 1 = user, 2 = host. */
  readonly certType: number;
  readonly keyId: string;
  readonly principals: readonly string[];
  readonly validAfter: bigint;
  readonly validBefore: bigint;
}

const CERT_TYPE = "ecdsa-sha2-nistp256-cert-v01@openssh.com";

/**
 * Parses the head of an `ecdsa-sha2-nistp256-cert-v01@openssh.com <base64> [comment]` line
 * (PROTOCOL.certkeys) up to `valid before`. It does not verify the CA signature: the agent only
 * checks that the server certified the key it sent. Returns `undefined` for anything else.
 */
export function parseSshCertificate(line: string): SshCertificateInfo | undefined {
  const [type, b64] = line.trim().split(/\s+/);
  if (type !== CERT_TYPE || b64 === undefined || !/^[A-Za-z0-9+/]+=*$/.test(b64)) {
    return undefined;
  }
  const reader = new SshReader(Buffer.from(b64, "base64"));
  try {
    if (reader.string().toString() !== CERT_TYPE) return undefined;
    reader.string(); // nonce
    if (reader.string().toString() !== "nistp256") return undefined;
    const publicPoint = reader.string();
    const serial = reader.uint64();
    const certType = reader.uint32();
    const keyId = reader.string().toString();
    const principalsReader = new SshReader(reader.string());
    const principals: string[] = [];
    while (!principalsReader.done) principals.push(principalsReader.string().toString());
    const validAfter = reader.uint64();
    const validBefore = reader.uint64();
    return {
      keyType: CERT_TYPE,
      publicPoint,
      serial,
      certType,
      keyId,
      principals,
      validAfter,
      validBefore,
    };
  } catch {
    return undefined;
  }
}
