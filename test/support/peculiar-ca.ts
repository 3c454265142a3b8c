import { createPublicKey, webcrypto, type KeyObject } from "node:crypto";
import { x509 } from "./peculiar-x509.ts";

/** The WebCrypto algorithms for a CA key, as @peculiar/x509 wants them. */
function webCryptoAlgorithms(privateKey: KeyObject): {
  key: webcrypto.RsaHashedImportParams | webcrypto.EcKeyImportParams | webcrypto.Algorithm;
  signing: webcrypto.RsaHashedImportParams | webcrypto.EcdsaParams | webcrypto.Algorithm;
} {
  const curve = privateKey.asymmetricKeyDetails?.namedCurve;
  switch (privateKey.asymmetricKeyType) {
    case "rsa": {
      const rsa = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
      return { key: rsa, signing: rsa };
    }
    case "ec":
      if (curve === "prime256v1") {
        return {
          key: { name: "ECDSA", namedCurve: "P-256" },
          signing: { name: "ECDSA", hash: "SHA-256" },
        };
      }
      if (curve === "secp384r1") {
        return {
          key: { name: "ECDSA", namedCurve: "P-384" },
          signing: { name: "ECDSA", hash: "SHA-384" },
        };
      }
      break;
    case "ed25519":
      return { key: { name: "Ed25519" }, signing: { name: "Ed25519" } };
  }
  throw new TypeError(
    `no WebCrypto algorithm for ${privateKey.asymmetricKeyType ?? "?"} ${curve ?? ""}`,
  );
}

/** A CA key imported into WebCrypto once, ready for {@link peculiarCaCertificate}. */
export interface PeculiarCaKeys {
  readonly keys: webcrypto.CryptoKeyPair;
  readonly signing: webcrypto.Algorithm;
}

export async function importPeculiarCaKeys(privateKey: KeyObject): Promise<PeculiarCaKeys> {
  const { key, signing } = webCryptoAlgorithms(privateKey);
  return {
    keys: {
      privateKey: await webcrypto.subtle.importKey(
        "pkcs8",
        privateKey.export({ type: "pkcs8", format: "der" }),
        key,
        false,
        ["sign"],
      ),
      publicKey: await webcrypto.subtle.importKey(
        "spki",
        createPublicKey(privateKey).export({ type: "spki", format: "der" }),
        key,
        true,
        ["verify"],
      ),
    },
    signing,
  };
}

/**
 * The self-signed CA certificate as kube-join built it with @peculiar/x509 before `der.ts` took
 * over (`src/ca/authority.ts` up to issue 12): the oracle `createCaCertificate` is compared
 * with, byte for byte, and the other side of the bench's "general ASN.1 library" row.
 */
export async function peculiarCaCertificate(
  ca: PeculiarCaKeys,
  fields: { name: string; notBefore: Date; notAfter: Date; serial: Buffer },
): Promise<Buffer> {
  const certificate = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: fields.serial.toString("hex"),
      name: [{ O: [fields.name] }, { CN: [fields.name] }],
      notBefore: fields.notBefore,
      notAfter: fields.notAfter,
      keys: ca.keys,
      signingAlgorithm: ca.signing,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(ca.keys.publicKey, false, webcrypto),
      ],
    },
    webcrypto,
  );
  return Buffer.from(certificate.rawData);
}
