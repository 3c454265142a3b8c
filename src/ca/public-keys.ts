import { createPublicKey, type KeyObject } from "node:crypto";
import { JoinError } from "../errors.ts";
import { SshReader } from "../lib/ssh-wire.ts";
import { isOnCurve } from "./ec-point.ts";

/**
 * Parsing of the public keys a bot presents. Everything here is untrusted input: errors are
 * `JoinError("invalid_public_key")` whose message names at most the key type, never key bytes.
 */

/** Key types a bot may use for its TLS certificate. */
export type TlsKeyType = "ecdsa-p256" | "ecdsa-p384" | "ed25519" | "rsa";

/** A bot's TLS public key, checked and normalised (parse once, then issue from it). */
export interface TlsPublicKey {
  readonly type: TlsKeyType;
  /** DER SubjectPublicKeyInfo in canonical form: goes into the certificate verbatim. */
  readonly spkiDer: Buffer;
  /** The key in node:crypto (imported on first access: issuance never needs it). */
  readonly keyObject: KeyObject;
}

/**
 * The exact DER a canonical SubjectPublicKeyInfo of each common bot key type starts with; the rest
 * is the public point. Recognising them lets the join skip node:crypto's key import and re-export
 * (about 100-170 us each under OpenSSL 3, several times the certificate's own signature) while
 * accepting exactly the same keys: EC points are checked to lie on their curve. Anything else
 * (RSA, compressed points, non-canonical encodings) takes the general path.
 */
const CANONICAL_SPKI: ReadonlyArray<{
  readonly type: TlsKeyType;
  readonly prefix: Buffer;
  readonly length: number;
}> = [
  {
    type: "ecdsa-p256",
    prefix: Buffer.from("3059301306072a8648ce3d020106082a8648ce3d030107034200", "hex"),
    length: 91,
  },
  {
    type: "ecdsa-p384",
    prefix: Buffer.from("3076301006072a8648ce3d020106052b81040022036200", "hex"),
    length: 120,
  },
  { type: "ed25519", prefix: Buffer.from("302a300506032b6570032100", "hex"), length: 44 },
];

function canonicalTlsKey(der: Buffer): TlsPublicKey | undefined {
  const known = CANONICAL_SPKI.find(
    (k) => der.length === k.length && der.subarray(0, k.prefix.length).equals(k.prefix),
  );
  if (known === undefined) return undefined;
  const point = der.subarray(known.prefix.length);
  if (known.type === "ecdsa-p256" || known.type === "ecdsa-p384") {
    if (!isOnCurve(known.type === "ecdsa-p256" ? "P-256" : "P-384", point)) {
      throw invalid("the TLS public key is not a point on its elliptic curve");
    }
  }
  return new LazyTlsPublicKey(known.type, der);
}

/*
 * The two parsed-key classes below exist for the garbage collector. An object literal with a
 * getter (`{ get keyObject() { ... } }`) holds a new closure each time it is evaluated, so V8 keeps
 * every such object in dictionary mode with an accessor pair of its own, allocated in the old
 * generation; the pair keeps the getter, its scope and the key bytes alive until the next full
 * mark-compact. At a thousand joins a second that pinned about 7 MiB of Buffer pool slabs a second
 * (the key bytes are slices of them) and drove a mark-compact every second, the paced p99. A class
 * keeps its accessor on the prototype and its instances in one fast-mode shape.
 */

/** A canonical TLS key: the KeyObject is imported on first access (issuance never needs it). */
class LazyTlsPublicKey implements TlsPublicKey {
  readonly type: TlsKeyType;
  readonly spkiDer: Buffer;
  #keyObject: KeyObject | undefined;

  constructor(type: TlsKeyType, spkiDer: Buffer) {
    this.type = type;
    this.spkiDer = spkiDer;
  }

  get keyObject(): KeyObject {
    this.#keyObject ??= createPublicKey({ key: this.spkiDer, format: "der", type: "spki" });
    return this.#keyObject;
  }
}

/** A checked SSH key: the KeyObject is built on first access (issuance never needs it). */
class LazySshPublicKey implements SshPublicKey {
  readonly type: SshKeyType;
  readonly blob: Buffer;
  readonly publicFields: Buffer;
  readonly #makeKeyObject: () => KeyObject;
  #keyObject: KeyObject | undefined;

  constructor(type: SshKeyType, blob: Buffer, publicFields: Buffer, make: () => KeyObject) {
    this.type = type;
    this.blob = blob;
    this.publicFields = publicFields;
    this.#makeKeyObject = make;
  }

  get keyObject(): KeyObject {
    this.#keyObject ??= this.#makeKeyObject();
    return this.#keyObject;
  }
}

/** SSH key types a bot may use (the authorized_keys type names). */
export type SshKeyType = "ssh-ed25519" | "ecdsa-sha2-nistp256" | "ecdsa-sha2-nistp384" | "ssh-rsa";

/** A bot's SSH public key, checked: `blob` is its wire encoding (RFC 4253 6.6). */
export interface SshPublicKey {
  readonly type: SshKeyType;
  readonly blob: Buffer;
  /** The key's public fields: the wire blob without its leading type string (for certificates). */
  readonly publicFields: Buffer;
  /** The key in node:crypto (built on first access: issuance never needs it). */
  readonly keyObject: KeyObject;
}

/** Upper bound on an encoded key: an RSA-16384 key is about 3 KiB of base64. */
const MAX_KEY_TEXT = 16 * 1024;
const MIN_RSA_BITS = 2048;

function invalid(message: string): JoinError {
  return new JoinError("invalid_public_key", message);
}

const PEM_BLOCK = /^-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)\r?\n?-----END \1-----$/;

/**
 * Parses a bot's TLS public key: one PEM `PUBLIC KEY` block (SubjectPublicKeyInfo) holding an
 * ECDSA P-256/P-384, Ed25519 or RSA (>= 2048 bits) key.
 *
 * @example parseTlsPublicKey(publicKey.export({ type: "spki", format: "pem" }) as string)
 */
export function parseTlsPublicKey(pem: string): TlsPublicKey {
  if (typeof pem !== "string" || pem.length === 0) throw invalid("the TLS public key is empty");
  if (pem.length > MAX_KEY_TEXT) throw invalid("the TLS public key is too large");
  const block = PEM_BLOCK.exec(pem.trim());
  if (!block) {
    throw invalid("the TLS public key is not a single PEM block");
  }
  const label = block[1];
  if (label !== "PUBLIC KEY") {
    // A private key or certificate would otherwise yield a public key: refuse by label first.
    const what = /PRIVATE KEY/.test(label ?? "")
      ? "a private key"
      : /CERTIFICATE/.test(label ?? "")
        ? "a certificate"
        : `a PEM "${label}" block`;
    throw invalid(
      `the TLS public key is ${what}; expected a PEM "PUBLIC KEY" (SubjectPublicKeyInfo)`,
    );
  }
  const der = Buffer.from(block[2] ?? "", "base64");
  const canonical = canonicalTlsKey(der);
  if (canonical !== undefined) return canonical;
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({ key: der, format: "der", type: "spki" });
  } catch {
    throw invalid("the TLS public key is not a valid SubjectPublicKeyInfo");
  }
  const type = tlsKeyType(keyObject);
  return { type, spkiDer: keyObject.export({ type: "spki", format: "der" }), keyObject };
}

function tlsKeyType(key: KeyObject): TlsKeyType {
  const details = key.asymmetricKeyDetails ?? {};
  switch (key.asymmetricKeyType) {
    case "ec":
      if (details.namedCurve === "prime256v1") return "ecdsa-p256";
      if (details.namedCurve === "secp384r1") return "ecdsa-p384";
      throw invalid("the TLS public key's elliptic curve is not supported (use P-256 or P-384)");
    case "ed25519":
      return "ed25519";
    case "rsa":
      if ((details.modulusLength ?? 0) < MIN_RSA_BITS) {
        throw invalid(
          `the TLS public key is RSA of ${details.modulusLength} bits; at least ${MIN_RSA_BITS} are required`,
        );
      }
      return "rsa";
    default:
      throw invalid(
        `the TLS public key type ${key.asymmetricKeyType ?? "unknown"} is not supported (use ECDSA P-256/P-384, Ed25519 or RSA >= ${MIN_RSA_BITS})`,
      );
  }
}

const SSH_TYPES: Record<string, SshKeyType> = {
  "ssh-ed25519": "ssh-ed25519",
  "ecdsa-sha2-nistp256": "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384": "ecdsa-sha2-nistp384",
  "ssh-rsa": "ssh-rsa",
};

const ECDSA_CURVES = {
  "ecdsa-sha2-nistp256": { name: "nistp256", crv: "P-256", size: 32 },
  "ecdsa-sha2-nistp384": { name: "nistp384", crv: "P-384", size: 48 },
} as const;

/**
 * Parses a bot's SSH public key in authorized_keys form (`<type> <base64> [comment]`, no
 * options): ssh-ed25519, ecdsa-sha2-nistp256/384 or ssh-rsa (>= 2048 bits). The blob's inner
 * type must equal the line's type and the key must import into node:crypto.
 *
 * @example parseSshPublicKey("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI... bot@pod")
 */
export function parseSshPublicKey(line: string): SshPublicKey {
  if (typeof line !== "string" || line.trim().length === 0)
    throw invalid("the SSH public key is empty");
  if (line.length > MAX_KEY_TEXT) throw invalid("the SSH public key is too large");
  const text = line.trim();
  if (text.startsWith("-----BEGIN")) {
    throw invalid(
      /PRIVATE KEY/.test(text)
        ? "the SSH public key is a private key; expected an authorized_keys line"
        : "the SSH public key is PEM; expected an authorized_keys line",
    );
  }
  if (/[\r\n]/.test(text)) {
    throw invalid("the SSH public key must be a single authorized_keys line");
  }
  const [lineType = "", base64 = ""] = text.split(/[ \t]+/);
  if (lineType.endsWith("-cert-v01@openssh.com")) {
    throw invalid("the SSH public key is a certificate; expected a plain public key");
  }
  const type = Object.hasOwn(SSH_TYPES, lineType) ? SSH_TYPES[lineType] : undefined;
  if (type === undefined) {
    const shown = /^[a-z0-9@.-]{1,64}$/.test(lineType) ? `"${lineType}"` : "(unrecognised)";
    throw invalid(
      `the SSH public key type ${shown} is not supported (use ssh-ed25519, ecdsa-sha2-nistp256/384 or ssh-rsa >= ${MIN_RSA_BITS} bits)`,
    );
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) throw invalid(`the ${type} key is not valid base64`);
  const blob = Buffer.from(base64, "base64");
  try {
    const reader = new SshReader(blob);
    const innerType = reader.string().toString("latin1");
    if (innerType !== type) {
      throw invalid(`the ${type} key's encoded type does not match the line's type`);
    }
    const makeKeyObject = checkSshKey(type, reader);
    if (!reader.done) throw invalid(`the ${type} key has trailing bytes`);
    return new LazySshPublicKey(type, blob, blob.subarray(4 + type.length), makeKeyObject);
  } catch (error) {
    if (error instanceof JoinError) throw error;
    throw invalid(`the ${type} key is malformed`);
  }
}

function b64url(bytes: Buffer): string {
  return bytes.toString("base64url");
}

/**
 * Checks an SSH key's public fields and returns how to build its KeyObject. Ed25519 and ECDSA keys
 * are checked without node:crypto (any 32 bytes are an Ed25519 key to OpenSSL too; EC points are
 * checked on the curve), since the join only copies the fields into the certificate; the KeyObject
 * is built on first use.
 */
function checkSshKey(type: SshKeyType, reader: SshReader): () => KeyObject {
  switch (type) {
    case "ssh-ed25519": {
      const point = reader.string();
      if (point.length !== 32) throw invalid("the ssh-ed25519 key is not 32 bytes");
      return () =>
        createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: b64url(point) }, format: "jwk" });
    }
    case "ecdsa-sha2-nistp256":
    case "ecdsa-sha2-nistp384": {
      const curve = ECDSA_CURVES[type];
      if (reader.string().toString("latin1") !== curve.name) {
        throw invalid(`the ${type} key names another curve`);
      }
      const point = reader.string();
      if (point.length !== 1 + 2 * curve.size || point[0] !== 0x04) {
        throw invalid(`the ${type} key is not an uncompressed ${curve.crv} point`);
      }
      if (!isOnCurve(curve.crv, point))
        throw invalid(`the ${type} key is not a point on ${curve.crv}`);
      return () =>
        createPublicKey({
          key: {
            kty: "EC",
            crv: curve.crv,
            x: b64url(point.subarray(1, 1 + curve.size)),
            y: b64url(point.subarray(1 + curve.size)),
          },
          format: "jwk",
        });
    }
    case "ssh-rsa": {
      const e = reader.mpint();
      const n = reader.mpint();
      const bits = n.length === 0 ? 0 : (n.length - 1) * 8 + (32 - Math.clz32(n[0] ?? 0));
      if (bits < MIN_RSA_BITS) {
        throw invalid(`the ssh-rsa key has ${bits} bits; at least ${MIN_RSA_BITS} are required`);
      }
      // Rare, and the import is what proves n and e form a usable key: done now.
      const key = createPublicKey({
        key: { kty: "RSA", n: b64url(n), e: b64url(e) },
        format: "jwk",
      });
      return () => key;
    }
  }
}
