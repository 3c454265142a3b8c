import { generateKeyPair } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { promisify } from "node:util";

const generateKeyPairAsync = promisify(generateKeyPair);

/** A fresh key pair for one join, in the encodings the request and the identity files need. */
export interface AgentKey {
  readonly privateKey: KeyObject;
  /** PKCS#8 PEM: `tls.key`, and `ssh_key` too (OpenSSH reads PKCS#8 PEM ECDSA keys). */
  readonly privateKeyPem: string;
  /** SubjectPublicKeyInfo PEM: the request's `public_tls_key`. */
  readonly publicKeyPem: string;
  /** `ecdsa-sha2-nistp256 <base64>`: the request's `public_ssh_key`. */
  readonly sshPublicKey: string;
  /** The uncompressed EC point (0x04 || X || Y), to compare with the point in the SSH cert. */
  readonly publicPoint: Buffer;
}

/**
 * Generates a new ECDSA P-256 key pair. One pair serves both certificates, as in tbot: the two
 * files are written side by side with the same mode, so a second pair would protect nothing.
 */
export async function generateAgentKey(): Promise<AgentKey> {
  const { privateKey, publicKey } = await generateKeyPairAsync("ec", { namedCurve: "P-256" });
  const publicPoint = ecPublicPoint(publicKey);
  return {
    privateKey,
    privateKeyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicKeyPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
    sshPublicKey: `ecdsa-sha2-nistp256 ${sshEcdsaP256Blob(publicPoint).toString("base64")}`,
    publicPoint,
  };
}

/** The raw uncompressed point of a P-256 public key, from its JWK coordinates. */
export function ecPublicPoint(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: "jwk" });
  if (jwk.crv !== "P-256" || jwk.x === undefined || jwk.y === undefined) {
    throw new TypeError("ecPublicPoint: not a P-256 public key");
  }
  return Buffer.concat([
    Buffer.of(4),
    Buffer.from(jwk.x, "base64url"),
    Buffer.from(jwk.y, "base64url"),
  ]);
}

/** RFC 5656 §3.1 public key blob: string "ecdsa-sha2-nistp256", string "nistp256", string Q. */
export function sshEcdsaP256Blob(point: Buffer): Buffer {
  return Buffer.concat([
    sshString(Buffer.from("ecdsa-sha2-nistp256")),
    sshString(Buffer.from("nistp256")),
    sshString(point),
  ]);
}

function sshString(data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
}
