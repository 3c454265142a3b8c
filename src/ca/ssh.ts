import { sign, type KeyObject } from "node:crypto";
import { sshString, uint32, uint64 } from "../lib/ssh-wire.ts";
import { takeRandomBytes } from "./random-pool.ts";
import type { SshPublicKey } from "./public-keys.ts";

/**
 * OpenSSH user certificates (PROTOCOL.certkeys), built by hand: the wire format is a flat list
 * of length-prefixed fields, so per certificate we only concatenate and sign once.
 */

/** Extension names of kube-join's SSH certificates (see docs/ca.md). */
export const SSH_EXTENSION = {
  botName: "bot-name@goteleport.com",
  /** Teleport's `CertExtensionBotInstanceID`. */
  botInstanceId: "bot-instance-id@goteleport.com",
  /** Teleport's `CertExtensionGeneration`: the decimal generation. */
  generation: "generation",
  joinAttributes: "join-attributes@kube-join",
  permitPortForwarding: "permit-port-forwarding",
  permitPty: "permit-pty",
  roles: "teleport-roles",
} as const;

/** Teleport's principal that lets a bot join sessions; never a valid Unix login. */
export const INTERNAL_JOIN_PRINCIPAL = "-teleport-internal-join";

const SSH_CERT_TYPE_USER = 1;

/** The per-certificate fields of a bot's SSH certificate. */
export interface SshCertificateFields {
  readonly publicKey: SshPublicKey;
  readonly keyId: string;
  readonly principals: readonly string[];
  /** Unix seconds. */
  readonly validAfter: number;
  readonly validBefore: number;
  /** Extension name -> value ("" for a flag); the issuer sorts them as OpenSSH requires. */
  readonly extensions: Readonly<Record<string, string>>;
  /** Chosen by the caller (see `newCertificateSerials`); random when absent. */
  readonly serial?: bigint;
}

export interface IssuedSshCertificate {
  /** authorized_keys form: `<type>-cert-v01@openssh.com <base64> <key id>`. */
  readonly line: string;
  /** The serial as a decimal string (a uint64 does not fit a JS number). */
  readonly serial: string;
}

export interface SshCertificateIssuer {
  /** The CA's public key as an authorized_keys line (for `TrustedUserCAKeys`). */
  readonly caPublicKeyLine: string;
  issue(fields: SshCertificateFields): IssuedSshCertificate;
}

/** The wire blob of an Ed25519 key's public half (RFC 8709); private keys give their public half. */
export function ed25519PublicBlob(key: KeyObject): Buffer {
  const jwk = key.export({ format: "jwk" });
  if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || typeof jwk.x !== "string") {
    throw new TypeError("an Ed25519 key is required");
  }
  return Buffer.concat([sshString("ssh-ed25519"), sshString(Buffer.from(jwk.x, "base64url"))]);
}

/**
 * An Ed25519 key's public half as an authorized_keys line.
 *
 * @example ed25519AuthorizedKey(publicKey, "tbot") // "ssh-ed25519 AAAAC3Nza... tbot"
 */
export function ed25519AuthorizedKey(key: KeyObject, comment?: string): string {
  const line = `ssh-ed25519 ${ed25519PublicBlob(key).toString("base64")}`;
  return comment === undefined ? line : `${line} ${comment}`;
}

/**
 * Prepares issuance from an Ed25519 SSH user CA: its key blob (the certificate's signature key)
 * is encoded once.
 */
export function createSshCertificateIssuer(caPrivateKey: KeyObject): SshCertificateIssuer {
  if (caPrivateKey.asymmetricKeyType !== "ed25519") {
    throw new TypeError("the SSH CA key must be Ed25519");
  }
  const caBlob = ed25519PublicBlob(caPrivateKey);
  const signatureKey = sshString(caBlob);
  const signatureType = sshString("ssh-ed25519");
  const emptyString = sshString(Buffer.alloc(0));
  const userType = uint32(SSH_CERT_TYPE_USER);

  return {
    caPublicKeyLine: ed25519AuthorizedKey(caPrivateKey),
    issue(fields: SshCertificateFields): IssuedSshCertificate {
      const random = takeRandomBytes(40);
      const nonce = random.subarray(0, 32);
      const serial = fields.serial ?? random.readBigUInt64BE(32);
      const certType = `${fields.publicKey.type}-cert-v01@openssh.com`;

      const principals = Buffer.concat(fields.principals.map((principal) => sshString(principal)));
      // OpenSSH refuses certificates whose extensions are not in lexical (byte) order.
      // Names are ASCII, where UTF-16 order (the default sort) equals byte order.
      const names = Object.keys(fields.extensions).sort();
      const extensionParts: Buffer[] = [];
      for (const name of names) {
        const value = fields.extensions[name] ?? "";
        extensionParts.push(
          sshString(name),
          // A flag has empty data; a value is itself an SSH string inside the data string.
          value === "" ? emptyString : sshString(sshString(value)),
        );
      }

      const body = Buffer.concat([
        sshString(certType),
        sshString(nonce),
        fields.publicKey.publicFields,
        uint64(serial),
        userType,
        sshString(fields.keyId),
        sshString(principals),
        uint64(BigInt(fields.validAfter)),
        uint64(BigInt(fields.validBefore)),
        emptyString, // critical options: none
        sshString(Buffer.concat(extensionParts)),
        emptyString, // reserved
        signatureKey,
      ]);
      const signature = sign(null, body, caPrivateKey);
      const certificate = Buffer.concat([
        body,
        sshString(Buffer.concat([signatureType, sshString(signature)])),
      ]);
      return {
        line: `${certType} ${certificate.toString("base64")} ${fields.keyId}`,
        serial: serial.toString(),
      };
    },
  };
}
