import { X509Certificate } from "node:crypto";
import type { JoinAttrsWire, JoinResponseWire } from "../lib/join-wire.ts";
import { AgentError } from "./agent-error.ts";
import type { AgentKey } from "./keys.ts";
import { parseSshCertificate } from "./ssh-certificate.ts";

/**
 * The server's answer after every check: what an output renders files from. Text fields are
 * normalised (one trailing newline per PEM block or line), so every output writes the same bytes.
 */
export interface CheckedIdentity {
  /** The key pair this join generated; both certificates certify its public half. */
  readonly key: AgentKey;
  readonly botName: string;
  readonly user: string;
  /** RFC 3339, as the server returned it. */
  readonly expires: string;
  /** PEM, ending in a newline. */
  readonly tlsCert: string;
  /** PEM each, ending in a newline; one of them signs `tlsCert`. */
  readonly tlsCaCerts: readonly string[];
  /** The certificate line, ending in a newline. */
  readonly sshCert: string;
  /** authorized_keys lines of the SSH CA(s), trimmed, without newline. */
  readonly sshCaKeys: readonly string[];
  /** Lowercase hex, as kube-join's audit line records it. */
  readonly tlsSerial: string;
  /** Decimal, as `ssh-keygen -L` prints it. */
  readonly sshSerial: string;
  readonly sshPrincipals: readonly string[];
  readonly joinAttrs: JoinAttrsWire;
  /** When the agent checked (and so renewed) it. */
  readonly checkedAt: Date;
}

const SSH_PUBLIC_KEY_LINE = /^[a-z0-9@.-]+ [A-Za-z0-9+/]+=*( [^\r\n]*)?$/;

/**
 * The shape of a 200 answer of `POST /v1/join`: every field of the wire contract present with its
 * type, CA lists non-empty. Returns `undefined` for anything else (the caller reports
 * `bad_response`). Unknown fields are ignored, as a newer server may send more.
 */
export function parseJoinResponse(value: unknown): JoinResponseWire | undefined {
  if (!isRecord(value)) return undefined;
  const { bot_name, user, expires, tls_cert, ssh_cert, tls_ca_certs, ssh_ca_keys, join_attrs } =
    value;
  if (
    typeof bot_name !== "string" ||
    typeof user !== "string" ||
    typeof expires !== "string" ||
    typeof tls_cert !== "string" ||
    typeof ssh_cert !== "string" ||
    !isStringArray(tls_ca_certs) ||
    !isStringArray(ssh_ca_keys) ||
    (join_attrs !== undefined && !isRecord(join_attrs))
  ) {
    return undefined;
  }
  return {
    bot_name,
    user,
    expires,
    tls_cert,
    ssh_cert,
    tls_ca_certs,
    ssh_ca_keys,
    join_attrs: joinAttrsOf(join_attrs),
  };
}

/**
 * Checks that the server's answer certifies the key this join generated (TLS and SSH), that the
 * TLS certificate is signed by one of the returned CAs, and that every field is usable. Throws
 * `AgentError("bad_response")` otherwise: nothing is rendered, let alone written, from an answer
 * that fails here.
 */
export function checkJoinResponse(
  response: JoinResponseWire,
  key: AgentKey,
  now: Date,
): CheckedIdentity {
  const bad = (message: string): AgentError => new AgentError("bad_response", message);

  let cert: X509Certificate;
  let cas: X509Certificate[];
  try {
    cert = new X509Certificate(response.tls_cert);
    cas = response.tls_ca_certs.map((pem) => new X509Certificate(pem));
  } catch {
    throw bad("tls_cert or tls_ca_certs is not a PEM certificate");
  }
  if (!cert.checkPrivateKey(key.privateKey)) {
    throw bad("tls_cert does not certify the public key this join sent");
  }
  if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
    throw bad("tls_cert is not signed by any of tls_ca_certs");
  }
  const ssh = parseSshCertificate(response.ssh_cert);
  if (ssh === undefined) {
    throw bad("ssh_cert is not an ecdsa-sha2-nistp256-cert-v01@openssh.com certificate");
  }
  if (!ssh.publicPoint.equals(key.publicPoint)) {
    throw bad("ssh_cert does not certify the public key this join sent");
  }
  if (!response.ssh_ca_keys.every((line) => SSH_PUBLIC_KEY_LINE.test(line.trim()))) {
    throw bad("ssh_ca_keys holds something that is not an authorized_keys line");
  }
  if (Number.isNaN(Date.parse(response.expires))) {
    throw bad("expires is not an RFC 3339 time");
  }
  return {
    key,
    botName: response.bot_name,
    user: response.user,
    expires: response.expires,
    // Re-encoded from what was parsed and checked, never the server's text as sent: anything
    // around a PEM block or after the certificate's base64 (a second line, say an injected
    // `@cert-authority` one) would otherwise be copied into the files, the identity file too.
    tlsCert: pemOf(cert),
    tlsCaCerts: cas.map(pemOf),
    sshCert: `${ssh.keyType} ${response.ssh_cert.trim().split(/\s+/)[1]!}\n`,
    sshCaKeys: response.ssh_ca_keys.map((k) => k.trim()),
    tlsSerial: cert.serialNumber.toLowerCase(),
    sshSerial: ssh.serial.toString(10),
    sshPrincipals: ssh.principals,
    joinAttrs: response.join_attrs,
    checkedAt: now,
  };
}

function pemOf(cert: X509Certificate): string {
  const pem = cert.toString();
  return pem.endsWith("\n") ? pem : `${pem}\n`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === "string");
}

/** Per-method attribute blocks; an entry that is not a mapping says nothing usable and is dropped. */
function joinAttrsOf(value: Record<string, unknown> | undefined): JoinAttrsWire {
  const entries = Object.entries(value ?? {}).filter(([, attrs]) => isRecord(attrs));
  return Object.fromEntries(entries) as JoinAttrsWire;
}
