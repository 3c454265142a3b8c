import {
  generateKeyPairSync,
  X509Certificate as NodeX509Certificate,
  type KeyObject,
} from "node:crypto";
import { join } from "node:path";
import { ConfigError, JoinError } from "../errors.ts";
import type { CertificateSerials } from "./serials.ts";
import { BOT_NAME_PATTERN } from "../lib/bot-name.ts";
import { CLUSTER_NAME_PATTERN } from "../lib/cluster-name.ts";
import {
  ensurePrivateDirectory,
  fileExists,
  readPrivateKeyFile,
  readTextFile,
  recoverFileSets,
  writeNewFileSet,
  type NewFile,
} from "./key-files.ts";
import { parseSshPublicKey, type SshPublicKey, type TlsPublicKey } from "./public-keys.ts";
import {
  createSshCertificateIssuer,
  INTERNAL_JOIN_PRINCIPAL,
  SSH_EXTENSION,
  type SshCertificateIssuer,
} from "./ssh.ts";
import {
  createCaCertificate,
  createX509LeafIssuer,
  keyIdentifierOf,
  signatureSchemeOf,
  subjectKeyIdentifierOf,
  toPem,
  type X509LeafIssuer,
} from "./x509.ts";

export interface AuthorityOptions {
  /** The cluster name: CN and O of the CA certificate, trust domain of the bots' SPIFFE IDs. */
  clusterName: string;
  /** Where generated keys live (directory 0700, files 0600, written atomically). */
  dataDir: string;
  /** Key type of a newly generated TLS CA (an existing key is kept whatever its type). */
  tlsKeyAlgorithm?: "ecdsa-p256" | "rsa-2048";
  /** Load the CA from these files instead of `dataDir` (a Kubernetes Secret mount). */
  files?: { tlsKeyFile: string; tlsCertFile: string; sshKeyFile: string };
  /** Further CAs to trust (exported, never used to sign): the old CA during a rotation. */
  extraTrusted?: { tlsCertFiles?: string[]; sshPublicKeyFiles?: string[] };
}

/** Names of the files `loadOrCreateAuthority` keeps in `dataDir`. */
export const DATA_DIR_FILES = {
  tlsKeyFile: "tls-ca.key",
  tlsCertFile: "tls-ca.crt",
  sshKeyFile: "ssh-ca.key",
} as const;

export interface BotCertificateRequest {
  botName: string;
  roles: readonly string[];
  logins: readonly string[];
  /**
   * The join attributes as Teleport's `JoinAttrs` JSON, ready to embed (the join method renders
   * them; the CA writes the same bytes into both certificates).
   */
  joinAttributesJson: string;
  tlsPublicKey: TlsPublicKey;
  sshPublicKey: SshPublicKey;
  /** From `resolveCertificateLifetime`; truncated to whole seconds in the certificates. */
  notBeforeMs: number;
  notAfterMs: number;
  /** Chosen before signing (the join records them first); random when absent. */
  serials?: CertificateSerials;
  /** The recorded bot instance: its id and generation go into both certificates. */
  botInstance?: { readonly id: string; readonly generation: number };
}

export interface IssuedCertificates {
  /** PEM X.509 certificate. */
  tlsCert: string;
  /** `<type>-cert-v01@openssh.com <base64> bot-<name>`. */
  sshCert: string;
  /** Hex serial of the X.509 certificate. */
  tlsSerial: string;
  /** Decimal serial of the SSH certificate. */
  sshSerial: string;
  /** The validity both certificates carry (whole seconds). */
  notBefore: Date;
  notAfter: Date;
}

export interface CertificateAuthority {
  readonly clusterName: string;
  /** What relying parties trust: PEM CA certificates and authorized_keys lines, active CA first. */
  trusted(): { tlsCaCerts: readonly string[]; sshCaKeys: readonly string[] };
  /** Signs a bot's keys. Synchronous: the hot path of a join. */
  issueBotCertificates(request: BotCertificateRequest): IssuedCertificates;
}

const CA_LIFETIME_MS = 3652 * 24 * 3600 * 1000; // 10 years
const MIN_RSA_CA_BITS = 2048;

/**
 * Loads the bot CA, generating it on first start. With `files`, loads a TLS key + certificate
 * and an SSH key from there; otherwise uses (and fills) `dataDir`. Never overwrites a key.
 * Throws ConfigError naming the file when a key or certificate is missing, unreadable, corrupt,
 * mismatched, or a key is readable by group or others.
 *
 * @example const ca = await loadOrCreateAuthority({ clusterName: "example.com", dataDir: "/var/lib/kube-join" });
 */
export async function loadOrCreateAuthority(
  options: AuthorityOptions,
  nowMs: number = Date.now(),
): Promise<CertificateAuthority> {
  const { clusterName } = options;
  if (typeof clusterName !== "string" || !CLUSTER_NAME_PATTERN.test(clusterName)) {
    throw new ConfigError([
      "clusterName: must be letters, digits, '.', '-' or '_' (lower-cased, it becomes the SPIFFE trust domain)",
    ]);
  }
  const algorithm = options.tlsKeyAlgorithm ?? "ecdsa-p256";
  if (algorithm !== "ecdsa-p256" && algorithm !== "rsa-2048") {
    throw new ConfigError(["tlsKeyAlgorithm: must be ecdsa-p256 or rsa-2048"]);
  }

  let tls: TlsCa;
  let sshKey: KeyObject;
  if (options.files) {
    tls = loadTlsCa(options.files.tlsKeyFile, options.files.tlsCertFile, nowMs);
    sshKey = loadSshCaKey(options.files.sshKeyFile);
  } else {
    ensurePrivateDirectory(options.dataDir);
    // Whatever a crash in an earlier first start left: finished or removed, never half.
    recoverFileSets(options.dataDir);
    const keyFile = join(options.dataDir, DATA_DIR_FILES.tlsKeyFile);
    const certFile = join(options.dataDir, DATA_DIR_FILES.tlsCertFile);
    const sshKeyFile = join(options.dataDir, DATA_DIR_FILES.sshKeyFile);
    const created: NewFile[] = [];
    // One of the TLS pair without the other is damage to repair by hand, never a reason to
    // replace a key: loadTlsCa names the missing file.
    if (!fileExists(keyFile) && !fileExists(certFile)) {
      created.push(...newTlsCaFiles(clusterName, algorithm, nowMs));
    }
    if (!fileExists(sshKeyFile)) created.push(newSshCaFile());
    // All new CA files move into place as one set (crash-safe, see writeNewFileSet).
    if (created.length > 0) writeNewFileSet(options.dataDir, created);
    tls = loadTlsCa(keyFile, certFile, nowMs);
    sshKey = loadSshCaKey(sshKeyFile);
  }

  const tlsCaCerts = [tls.certPem, ...loadExtraTlsCerts(options.extraTrusted?.tlsCertFiles ?? [])];
  const ssh = createSshCertificateIssuer(sshKey);
  const sshCaKeys = [
    ssh.caPublicKeyLine,
    ...loadExtraSshKeys(options.extraTrusted?.sshPublicKeyFiles ?? []),
  ];
  const leafIssuer = createX509LeafIssuer({
    certDer: tls.certDer,
    subjectKeyId: tls.subjectKeyId,
    privateKey: tls.key,
  });
  return new BotCertificateAuthority(
    clusterName,
    Object.freeze({
      tlsCaCerts: Object.freeze([...new Set(tlsCaCerts)]),
      sshCaKeys: Object.freeze([...new Set(sshCaKeys)]),
    }),
    leafIssuer,
    ssh,
  );
}

class BotCertificateAuthority implements CertificateAuthority {
  constructor(
    readonly clusterName: string,
    private readonly exported: { tlsCaCerts: readonly string[]; sshCaKeys: readonly string[] },
    private readonly x509Issuer: X509LeafIssuer,
    private readonly sshIssuer: SshCertificateIssuer,
  ) {}

  trusted(): { tlsCaCerts: readonly string[]; sshCaKeys: readonly string[] } {
    return this.exported;
  }

  issueBotCertificates(request: BotCertificateRequest): IssuedCertificates {
    checkRequest(request);
    const notBeforeSeconds = Math.floor(request.notBeforeMs / 1000);
    const notAfterSeconds = Math.floor(request.notAfterMs / 1000);
    const notBefore = new Date(notBeforeSeconds * 1000);
    const notAfter = new Date(notAfterSeconds * 1000);
    const keyId = `bot-${request.botName}`;
    const { joinAttributesJson } = request;
    const instance = request.botInstance;

    const tls = this.x509Issuer.issue({
      commonName: keyId,
      organizations: request.roles,
      // SPIFFE trust domains are lower case; the cluster name keeps its case as the JWT audience.
      uri: `spiffe://${this.clusterName.toLowerCase()}/bot/${request.botName}`,
      botName: request.botName,
      joinAttributesJson,
      spkiDer: request.tlsPublicKey.spkiDer,
      notBefore,
      notAfter,
      serial: request.serials?.tls,
      botInstance: request.botInstance,
    });
    const ssh = this.sshIssuer.issue({
      publicKey: request.sshPublicKey,
      keyId,
      principals: [...new Set([...request.logins, INTERNAL_JOIN_PRINCIPAL])],
      validAfter: notBeforeSeconds,
      validBefore: notAfterSeconds,
      extensions: {
        [SSH_EXTENSION.permitPty]: "",
        [SSH_EXTENSION.permitPortForwarding]: "",
        [SSH_EXTENSION.roles]: JSON.stringify({ version: "v1", roles: request.roles }),
        [SSH_EXTENSION.botName]: request.botName,
        [SSH_EXTENSION.joinAttributes]: joinAttributesJson,
        ...(instance === undefined
          ? {}
          : {
              [SSH_EXTENSION.botInstanceId]: instance.id,
              [SSH_EXTENSION.generation]: String(instance.generation),
            }),
      },
      serial: request.serials?.ssh,
    });
    return {
      tlsCert: tls.pem,
      sshCert: ssh.line,
      tlsSerial: tls.serialHex,
      sshSerial: ssh.serial,
      notBefore,
      notAfter,
    };
  }
}

/** The request comes from verified, validated data: a bad one is a programming error. */
function checkRequest(request: BotCertificateRequest): void {
  if (!BOT_NAME_PATTERN.test(request.botName)) {
    throw new TypeError("botName must be letters, digits, '.', '-' or '_'");
  }
  if (typeof request.joinAttributesJson !== "string" || request.joinAttributesJson === "") {
    throw new TypeError("joinAttributesJson must be a non-empty string");
  }
  for (const [field, values] of [
    ["roles", request.roles],
    ["logins", request.logins],
  ] as const) {
    if (!values.every((value) => typeof value === "string" && value.length > 0)) {
      throw new TypeError(`${field} must be non-empty strings`);
    }
  }
  if (
    !Number.isFinite(request.notBeforeMs) ||
    !Number.isFinite(request.notAfterMs) ||
    Math.floor(request.notAfterMs / 1000) <= Math.floor(request.notBeforeMs / 1000)
  ) {
    throw new TypeError("notAfterMs must be at least a second after notBeforeMs");
  }
}

interface TlsCa {
  readonly key: KeyObject;
  readonly certPem: string;
  readonly certDer: Buffer;
  readonly subjectKeyId: Buffer;
}

/** A new TLS CA key and its self-signed certificate, as files to write. */
function newTlsCaFiles(
  clusterName: string,
  algorithm: "ecdsa-p256" | "rsa-2048",
  nowMs: number,
): NewFile[] {
  const { privateKey, publicKey } =
    algorithm === "rsa-2048"
      ? generateKeyPairSync("rsa", { modulusLength: 2048 })
      : generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const certDer = createCaCertificate({
    name: clusterName,
    notBefore: new Date(nowMs - 60_000),
    notAfter: new Date(nowMs + CA_LIFETIME_MS),
    privateKey,
    publicKey,
  });
  return [
    {
      name: DATA_DIR_FILES.tlsKeyFile,
      contents: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
      mode: 0o600,
    },
    { name: DATA_DIR_FILES.tlsCertFile, contents: toPem("CERTIFICATE", certDer), mode: 0o600 },
  ];
}

function loadTlsCa(keyFile: string, certFile: string, nowMs: number): TlsCa {
  const key = readPrivateKeyFile(keyFile, "the TLS CA private key");
  try {
    signatureSchemeOf(key);
  } catch {
    throw new ConfigError([
      `${keyFile}: the TLS CA key type is not supported (use ECDSA P-256/P-384, RSA or Ed25519)`,
    ]);
  }
  const rsaBits =
    key.asymmetricKeyType === "rsa" ? key.asymmetricKeyDetails?.modulusLength : undefined;
  if (rsaBits !== undefined && rsaBits < MIN_RSA_CA_BITS) {
    // Bots must present RSA keys of at least 2048 bits; their CA is held to the same bar.
    throw new ConfigError([
      `${keyFile}: the TLS CA key is RSA of ${rsaBits} bits; at least ${MIN_RSA_CA_BITS} are required`,
    ]);
  }
  const certText = readTextFile(certFile, "the TLS CA certificate");
  let cert: NodeX509Certificate;
  try {
    cert = new NodeX509Certificate(certText);
  } catch {
    throw new ConfigError([`${certFile}: the TLS CA certificate is not a valid PEM certificate`]);
  }
  if (!cert.ca) {
    throw new ConfigError([
      `${certFile}: the certificate is not a CA certificate (basicConstraints)`,
    ]);
  }
  if (!cert.checkPrivateKey(key)) {
    throw new ConfigError([
      `${certFile}: the certificate does not match the private key ${keyFile}`,
    ]);
  }
  if (Date.parse(cert.validTo) <= nowMs) {
    throw new ConfigError([`${certFile}: the TLS CA certificate expired on ${cert.validTo}`]);
  }
  const certDer = cert.raw;
  let subjectKeyId: Buffer;
  try {
    subjectKeyId =
      subjectKeyIdentifierOf(certDer) ??
      keyIdentifierOf(cert.publicKey.export({ type: "spki", format: "der" }));
  } catch {
    throw new ConfigError([`${certFile}: the TLS CA certificate's extensions cannot be read`]);
  }
  return { key, certPem: toPem("CERTIFICATE", certDer), certDer, subjectKeyId };
}

/** A new SSH CA key, as a file to write. */
function newSshCaFile(): NewFile {
  const { privateKey } = generateKeyPairSync("ed25519");
  return {
    name: DATA_DIR_FILES.sshKeyFile,
    contents: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    mode: 0o600,
  };
}

function loadSshCaKey(keyFile: string): KeyObject {
  const key = readPrivateKeyFile(keyFile, "the SSH CA private key");
  if (key.asymmetricKeyType !== "ed25519") {
    throw new ConfigError([`${keyFile}: the SSH CA key must be Ed25519`]);
  }
  return key;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function loadExtraTlsCerts(files: readonly string[]): string[] {
  const pems: string[] = [];
  for (const file of files) {
    const blocks = readTextFile(file, "the trusted TLS CA certificate file").match(PEM_CERTIFICATE);
    if (!blocks) throw new ConfigError([`${file}: contains no PEM certificate`]);
    blocks.forEach((block, index) => {
      let cert: NodeX509Certificate;
      try {
        cert = new NodeX509Certificate(block);
      } catch {
        throw new ConfigError([`${file}: certificate ${index + 1} is not a valid certificate`]);
      }
      if (!cert.ca)
        throw new ConfigError([`${file}: certificate ${index + 1} is not a CA certificate`]);
      pems.push(toPem("CERTIFICATE", cert.raw));
    });
  }
  return pems;
}

function loadExtraSshKeys(files: readonly string[]): string[] {
  const lines: string[] = [];
  for (const file of files) {
    const before = lines.length;
    const text = readTextFile(file, "the trusted SSH CA key file");
    text.split("\n").forEach((line, index) => {
      if (line.trim() === "" || line.trim().startsWith("#")) return;
      try {
        const key = parseSshPublicKey(line);
        lines.push(`${key.type} ${key.blob.toString("base64")}`);
      } catch (error) {
        if (!(error instanceof JoinError)) throw error;
        throw new ConfigError([`${file}:${index + 1}: ${error.message}`]);
      }
    });
    if (lines.length === before) throw new ConfigError([`${file}: contains no SSH public key`]);
  }
  return lines;
}
