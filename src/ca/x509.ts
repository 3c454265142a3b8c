import { createHash, createPublicKey, randomBytes, sign, type KeyObject } from "node:crypto";
import { takeRandomBytes } from "./random-pool.ts";
import {
  bitString,
  boolean,
  explicit,
  implicitPrimitive,
  nullValue,
  octetString,
  oid,
  readElement,
  sequence,
  set,
  smallInteger,
  tlv,
  TAG,
  time,
  utf8String,
} from "./der.ts";

/** Teleport's OID for the Machine ID bot name (`BotASN1ExtensionOID`). */
export const BOT_NAME_OID = "1.3.9999.2.18";
/** Teleport's OID for the join attributes (`JoinAttributesASN1ExtensionOID`). */
export const JOIN_ATTRIBUTES_OID = "1.3.9999.2.21";
/** Teleport's OID for the bot instance id (`BotInstanceASN1ExtensionOID`). */
export const BOT_INSTANCE_OID = "1.3.9999.2.20";
/** Teleport's OID for the generation (`GenerationASN1ExtensionOID`). */
export const GENERATION_OID = "1.3.9999.1.14";

/** The per-certificate (variable) fields of a bot's X.509 certificate. */
export interface LeafFields {
  readonly commonName: string;
  readonly organizations: readonly string[];
  readonly uri: string;
  readonly botName: string;
  /** Already-encoded join attributes (`BotCertificateRequest.joinAttributesJson`). */
  readonly joinAttributesJson: string;
  /** DER SubjectPublicKeyInfo of the bot's key. */
  readonly spkiDer: Buffer;
  /** Whole seconds: the caller truncates, so the returned dates equal what the certificate says. */
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Chosen by the caller (see `newCertificateSerials`); random when absent. */
  readonly serial?: Buffer;
  /** The bot instance (docs/store.md), when the join recorded one. */
  readonly botInstance?: { readonly id: string; readonly generation: number } | undefined;
}

export interface IssuedX509 {
  readonly pem: string;
  readonly der: Buffer;
  /** Lowercase hex of the serial number's 16 bytes. */
  readonly serialHex: string;
}

/** Issues bot certificates from one CA; everything constant is encoded once, at creation. */
export interface X509LeafIssuer {
  issue(fields: LeafFields): IssuedX509;
}

interface SignatureScheme {
  readonly algorithmIdentifier: Buffer;
  /** Digest for node:crypto `sign`, or null for Ed25519 (which hashes internally). */
  readonly digest: string | null;
}

/** Signature algorithm of certificates signed by `key` (RFC 5758, RFC 4055, RFC 8410). */
export function signatureSchemeOf(key: KeyObject): SignatureScheme {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  switch (key.asymmetricKeyType) {
    case "ec":
      if (curve === "prime256v1") {
        return { algorithmIdentifier: sequence(oid("1.2.840.10045.4.3.2")), digest: "sha256" };
      }
      if (curve === "secp384r1") {
        return { algorithmIdentifier: sequence(oid("1.2.840.10045.4.3.3")), digest: "sha384" };
      }
      break;
    case "rsa":
      return {
        algorithmIdentifier: sequence(oid("1.2.840.113549.1.1.11"), nullValue()),
        digest: "sha256",
      };
    case "ed25519":
      return { algorithmIdentifier: sequence(oid("1.3.101.112")), digest: null };
  }
  throw new TypeError(
    `unsupported CA key type ${key.asymmetricKeyType ?? "unknown"}${curve ? ` (${curve})` : ""}`,
  );
}

/** The subject Name of a certificate, byte for byte (so the leaves' issuer matches exactly). */
export function certificateSubjectDer(certDer: Uint8Array): Buffer {
  const certificate = readElement(certDer, 0);
  const tbs = readElement(certDer, certificate.valueStart);
  let at = tbs.valueStart;
  const fields = [];
  while (at < tbs.end && fields.length < 6) {
    const element = readElement(certDer, at);
    fields.push(element);
    at = element.end;
  }
  // [0] version is optional; with it the subject is the 6th field, without it the 5th.
  const hasVersion = fields[0]?.tag === 0xa0;
  const subject = fields[hasVersion ? 5 : 4];
  if (!subject || subject.tag !== TAG.sequence) throw new RangeError("certificate has no subject");
  return Buffer.from(certDer.subarray(subject.start, subject.end));
}

/** RFC 5280 4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING's bytes. */
export function keyIdentifierOf(spkiDer: Uint8Array): Buffer {
  const spki = readElement(spkiDer, 0);
  const algorithm = readElement(spkiDer, spki.valueStart);
  const key = readElement(spkiDer, algorithm.end);
  return createHash("sha1")
    .update(spkiDer.subarray(key.valueStart + 1, key.end))
    .digest();
}

function extension(id: string, critical: boolean, value: Buffer): Buffer {
  return critical
    ? sequence(oid(id), boolean(true), octetString(value))
    : sequence(oid(id), octetString(value));
}

const OID_COMMON_NAME = oid("2.5.4.3");
const OID_ORGANIZATION = oid("2.5.4.10");
const OID_SUBJECT_ALT_NAME = oid("2.5.29.17");
const OID_SUBJECT_KEY_IDENTIFIER = oid("2.5.29.14");
const OID_BOT_NAME = oid(BOT_NAME_OID);
const OID_JOIN_ATTRIBUTES = oid(JOIN_ATTRIBUTES_OID);
const OID_BOT_INSTANCE = oid(BOT_INSTANCE_OID);
const EMPTY = Buffer.alloc(0);
/** ASN.1 PrintableString; a UUID and a decimal number are within its alphabet. */
const PRINTABLE_STRING = 0x13;
const OID_GENERATION = oid(GENERATION_OID);

/**
 * Prepares issuance from a CA: its certificate (for the issuer name), its subject key identifier
 * (for the leaves' authority key identifier) and its private key.
 */
export function createX509LeafIssuer(ca: {
  readonly certDer: Buffer;
  readonly subjectKeyId: Buffer;
  readonly privateKey: KeyObject;
}): X509LeafIssuer {
  const scheme = signatureSchemeOf(ca.privateKey);
  const version = explicit(0, smallInteger(2));
  const algorithmAndIssuer = Buffer.concat([
    scheme.algorithmIdentifier,
    certificateSubjectDer(ca.certDer),
  ]);
  const constantExtensions = Buffer.concat([
    // keyUsage: digitalSignature only (bit 0; 7 unused bits), critical.
    extension("2.5.29.15", true, Buffer.of(TAG.bitString, 2, 7, 0x80)),
    // extKeyUsage: clientAuth.
    extension("2.5.29.37", false, sequence(oid("1.3.6.1.5.5.7.3.2"))),
    // basicConstraints: cA defaults to FALSE, so the sequence is empty; critical as in RFC 5280.
    extension("2.5.29.19", true, sequence()),
    // authorityKeyIdentifier: [0] keyIdentifier.
    extension("2.5.29.35", false, sequence(implicitPrimitive(0, ca.subjectKeyId))),
  ]);
  const { digest } = scheme;
  const privateKey = ca.privateKey;

  return {
    issue(fields: LeafFields): IssuedX509 {
      let serial = fields.serial;
      if (serial === undefined) {
        serial = takeRandomBytes(16);
        // Positive (top bit clear) and 16 bytes long, so its DER is minimal without a sign byte.
        serial[0] = (serial[0] ?? 0) & 0x7f || 0x01;
      }
      const instance = fields.botInstance;

      const subjectParts: Buffer[] = [];
      let instanceExtensions = EMPTY;
      for (const organization of fields.organizations) {
        subjectParts.push(set(sequence(OID_ORGANIZATION, utf8String(organization))));
      }
      subjectParts.push(set(sequence(OID_COMMON_NAME, utf8String(fields.commonName))));
      if (instance !== undefined) {
        // Where Teleport puts them: attributes of the subject name (`tlsca.Identity.Subject`),
        // the generation as decimal text, both PrintableStrings as Go's encoding/asn1 writes a
        // UUID and digits; and, as kube-join does for the bot name, extensions too.
        const generation = String(instance.generation);
        subjectParts.push(
          set(sequence(OID_GENERATION, tlv(PRINTABLE_STRING, Buffer.from(generation, "latin1")))),
          set(
            sequence(OID_BOT_INSTANCE, tlv(PRINTABLE_STRING, Buffer.from(instance.id, "latin1"))),
          ),
        );
        instanceExtensions = Buffer.concat([
          sequence(OID_BOT_INSTANCE, octetString(utf8String(instance.id))),
          sequence(OID_GENERATION, octetString(utf8String(generation))),
        ]);
      }

      const extensions = explicit(
        3,
        sequence(
          constantExtensions,
          // subjectAltName: one uniformResourceIdentifier ([6] IA5String; the URI is ASCII).
          sequence(
            OID_SUBJECT_ALT_NAME,
            octetString(sequence(implicitPrimitive(6, Buffer.from(fields.uri, "latin1")))),
          ),
          sequence(OID_BOT_NAME, octetString(utf8String(fields.botName))),
          sequence(OID_JOIN_ATTRIBUTES, octetString(utf8String(fields.joinAttributesJson))),
          instanceExtensions,
        ),
      );
      const tbs = sequence(
        version,
        tlv(TAG.integer, serial),
        algorithmAndIssuer,
        sequence(time(fields.notBefore), time(fields.notAfter)),
        sequence(...subjectParts),
        fields.spkiDer,
        extensions,
      );
      const signature = sign(digest, tbs, privateKey);
      const der = sequence(tbs, scheme.algorithmIdentifier, bitString(signature));
      return { der, pem: toPem("CERTIFICATE", der), serialHex: serial.toString("hex") };
    },
  };
}

/** What the self-signed CA certificate says; everything else follows from the key. */
export interface CaCertificateFields {
  /** Subject and issuer: `O=<name>, CN=<name>`. */
  readonly name: string;
  /** Truncated to whole seconds, as in every certificate. */
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** The CA's key: the certificate is signed with it. */
  readonly privateKey: KeyObject;
  /**
   * Its public half, as `generateKeyPairSync` returns it; derived from `privateKey` when absent
   * (node:crypto's `createPublicKey` of a private key costs a few signatures).
   */
  readonly publicKey?: KeyObject;
  /** 16 bytes, top bit clear; random by default (tests pass one to compare certificates). */
  readonly serial?: Buffer;
}

// The characters of a PrintableString (X.680 41.4); any other text is a UTF8String.
const PRINTABLE = /^[A-Za-z0-9 '()+,\-./:=?]*$/;

/**
 * RFC 5280 DirectoryString the way OpenSSL and @peculiar/x509 choose it: PrintableString when
 * every character allows, else UTF8String (a cluster name may carry `_`).
 */
function directoryString(text: string): Buffer {
  return PRINTABLE.test(text)
    ? tlv(TAG.printableString, Buffer.from(text, "latin1"))
    : utf8String(text);
}

/**
 * The self-signed CA certificate: v3, random positive 128-bit serial, `O=<name>, CN=<name>` as
 * subject and issuer, basicConstraints critical `CA:TRUE` (no path length), keyUsage critical
 * `keyCertSign, cRLSign`, and a subject key identifier (RFC 5280 method 1), in that order. Off
 * the hot path (once per CA), but built here from the same DER pieces as the leaves, so the
 * service needs no ASN.1 library; `test/ca-authority.test.ts` checks it byte for byte against
 * @peculiar/x509's. Returns DER.
 *
 * @example const der = createCaCertificate({ name: "example.com", notBefore, notAfter, privateKey });
 */
export function createCaCertificate(fields: CaCertificateFields): Buffer {
  const scheme = signatureSchemeOf(fields.privateKey);
  let serial = fields.serial;
  if (serial === undefined) {
    serial = randomBytes(16);
    // Positive (top bit clear) and 16 bytes long, so its DER is minimal without a sign byte.
    serial[0] = (serial[0] ?? 0) & 0x7f || 0x01;
  } else if (serial.length !== 16 || (serial[0] ?? 0x80) & 0x80 || serial[0] === 0) {
    throw new TypeError("serial must be 16 bytes, positive, without a leading zero byte");
  }
  const publicKey = fields.publicKey ?? createPublicKey(fields.privateKey);
  const spkiDer = publicKey.export({ type: "spki", format: "der" });
  const name = sequence(
    set(sequence(OID_ORGANIZATION, directoryString(fields.name))),
    set(sequence(OID_COMMON_NAME, directoryString(fields.name))),
  );
  const tbs = sequence(
    explicit(0, smallInteger(2)),
    tlv(TAG.integer, serial),
    scheme.algorithmIdentifier,
    name,
    sequence(time(fields.notBefore), time(fields.notAfter)),
    name,
    spkiDer,
    explicit(
      3,
      sequence(
        // basicConstraints: cA TRUE, no pathLenConstraint.
        extension("2.5.29.19", true, sequence(boolean(true))),
        // keyUsage: keyCertSign (bit 5) and cRLSign (bit 6); 1 unused bit.
        extension("2.5.29.15", true, Buffer.of(TAG.bitString, 2, 1, 0x06)),
        // subjectKeyIdentifier: what the leaves' authorityKeyIdentifier repeats.
        extension("2.5.29.14", false, octetString(keyIdentifierOf(spkiDer))),
      ),
    ),
  );
  const signature = sign(scheme.digest, tbs, fields.privateKey);
  return sequence(tbs, scheme.algorithmIdentifier, bitString(signature));
}

/**
 * The subject key identifier a certificate carries, or undefined without one. Reads only the
 * TBSCertificate's extensions; `certDer` is a certificate node:crypto has already parsed.
 */
export function subjectKeyIdentifierOf(certDer: Uint8Array): Buffer | undefined {
  const certificate = readElement(certDer, 0);
  const tbs = readElement(certDer, certificate.valueStart);
  for (let at = tbs.valueStart; at < tbs.end;) {
    const field = readElement(certDer, at);
    at = field.end;
    if (field.tag !== 0xa3) continue; // [3] extensions, the last field of a v3 TBSCertificate
    const extensions = readElement(certDer, field.valueStart);
    for (let next = extensions.valueStart; next < extensions.end;) {
      const ext = readElement(certDer, next);
      next = ext.end;
      const id = readElement(certDer, ext.valueStart);
      if (!OID_SUBJECT_KEY_IDENTIFIER.equals(certDer.subarray(id.start, id.end))) continue;
      let value = readElement(certDer, id.end);
      if (value.tag === TAG.boolean) value = readElement(certDer, value.end);
      const keyId = readElement(certDer, value.valueStart);
      if (value.tag !== TAG.octetString || keyId.tag !== TAG.octetString) {
        throw new RangeError("malformed subjectKeyIdentifier");
      }
      return Buffer.from(certDer.subarray(keyId.valueStart, keyId.end));
    }
  }
  return undefined;
}

/** PEM with 64-character lines (RFC 7468). */
export function toPem(label: string, der: Uint8Array): string {
  const base64 = Buffer.from(der).toString("base64");
  let body = "";
  for (let i = 0; i < base64.length; i += 64) body += base64.slice(i, i + 64) + "\n";
  return `-----BEGIN ${label}-----\n${body}-----END ${label}-----\n`;
}
