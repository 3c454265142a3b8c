import { generateKeyPair, randomBytes } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { promisify } from "node:util";
import { mpint, sshString, uint32 } from "../lib/ssh-wire.ts";

const generateKeyPairAsync = promisify(generateKeyPair);

/** A fresh key pair for one join, in the encodings the request and the identity files need. */
export interface AgentKey {
  readonly privateKey: KeyObject;
  /** PKCS#8 PEM: `tls.key`. */
  readonly privateKeyPem: string;
  /**
   * The same private key in OpenSSH's own format: `ssh_key`. OpenSSH would read the PKCS#8 PEM
   * too, but it cannot take the public half from a PEM file without a `.pub` beside it, and then
   * never pairs the key with a certificate given by `CertificateFile`; this format carries the
   * public key, so `ssh -i ssh_key -o CertificateFile=ssh_cert` works under any file names.
   */
  readonly sshPrivateKey: string;
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
    sshPrivateKey: openSshPrivateKey(privateKey, publicPoint),
    sshPublicKey: `ecdsa-sha2-nistp256 ${sshEcdsaP256Blob(publicPoint).toString("base64")}`,
    publicPoint,
  };
}

/** The raw uncompressed point of a P-256 public key, from its JWK coordinates. */
function ecPublicPoint(publicKey: KeyObject): Buffer {
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
function sshEcdsaP256Blob(point: Buffer): Buffer {
  return Buffer.concat([
    sshString(Buffer.from("ecdsa-sha2-nistp256")),
    sshString(Buffer.from("nistp256")),
    sshString(point),
  ]);
}

/**
 * An unencrypted `openssh-key-v1` private key file (PROTOCOL.key in OpenSSH's sources) holding
 * one ECDSA P-256 key, as `ssh-keygen -t ecdsa -N ""` writes it.
 */
function openSshPrivateKey(privateKey: KeyObject, publicPoint: Buffer): string {
  const jwk = privateKey.export({ format: "jwk" });
  if (jwk.crv !== "P-256" || jwk.d === undefined) {
    throw new TypeError("openSshPrivateKey: not a P-256 private key");
  }
  const check = randomBytes(4);
  const unpadded = Buffer.concat([
    check,
    check,
    sshString(Buffer.from("ecdsa-sha2-nistp256")),
    sshString(Buffer.from("nistp256")),
    sshString(publicPoint),
    mpint(Buffer.from(jwk.d, "base64url")),
    sshString(Buffer.alloc(0)), // comment
  ]);
  const padding = Buffer.from(
    Array.from({ length: (8 - (unpadded.length % 8)) % 8 }, (_, i) => i + 1),
  );
  const none = sshString(Buffer.from("none"));
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    none, // cipher
    none, // kdf
    sshString(Buffer.alloc(0)), // kdf options
    uint32(1),
    sshString(sshEcdsaP256Blob(publicPoint)),
    sshString(Buffer.concat([unpadded, padding])),
  ]);
  const lines = body.toString("base64").match(/.{1,70}/g) ?? [];
  return [
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    ...lines,
    "-----END OPENSSH PRIVATE KEY-----",
    "",
  ].join("\n");
}
