import { X509Certificate } from "node:crypto";
import { AgentError } from "./agent-error.ts";
import type { JoinResponseBody } from "./client.ts";
import type { AgentKey } from "./keys.ts";
import { parseSshCertificate } from "./ssh-certificate.ts";

/** `identity.json`: what a workload or an operator needs to know about the current set. */
export interface IdentitySummary {
  readonly bot: string;
  readonly user: string;
  /** RFC 3339, as the server returned it. */
  readonly expires: string;
  /** Lowercase hex, as kube-join's audit line records it. */
  readonly tls_serial: string;
  /** Decimal, as `ssh-keygen -L` prints it. */
  readonly ssh_serial: string;
  readonly ssh_principals: readonly string[];
  readonly renewed_at: string;
  readonly join_attrs: Readonly<Record<string, unknown>>;
}

/** File name -> contents and mode, for one complete identity set. */
export interface IdentityFile {
  readonly name: IdentityFileName;
  readonly contents: string;
  readonly mode: 0o600 | 0o644;
}

/** The files of a set; `identity.json` is always written last. */
export const IDENTITY_FILE_NAMES = [
  "tls.crt",
  "tls.key",
  "ca.pem",
  "ssh_cert",
  "ssh_key",
  "ssh_known_ca",
  "identity.json",
] as const;

export type IdentityFileName = (typeof IDENTITY_FILE_NAMES)[number];

const SSH_PUBLIC_KEY_LINE = /^[a-z0-9@.-]+ [A-Za-z0-9+/]+=*( [^\r\n]*)?$/;

/**
 * Checks that the server's answer certifies the key this join generated (TLS and SSH), that the
 * TLS certificate is signed by one of the returned CAs, and turns it into the files of the set.
 * Throws `AgentError("bad_response")` otherwise: a set is only written when it is usable.
 */
export function buildIdentityFiles(
  response: JoinResponseBody,
  key: AgentKey,
  now: Date,
): { files: IdentityFile[]; summary: IdentitySummary } {
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

  const summary: IdentitySummary = {
    bot: response.bot_name,
    user: response.user,
    expires: response.expires,
    tls_serial: cert.serialNumber.toLowerCase(),
    ssh_serial: ssh.serial.toString(10),
    ssh_principals: ssh.principals,
    renewed_at: now.toISOString(),
    join_attrs: response.join_attrs,
  };
  const line = (text: string): string => (text.endsWith("\n") ? text : `${text}\n`);
  const files: IdentityFile[] = [
    { name: "tls.crt", contents: line(response.tls_cert.trim()), mode: 0o644 },
    { name: "tls.key", contents: key.privateKeyPem, mode: 0o600 },
    {
      name: "ca.pem",
      contents: response.tls_ca_certs.map((p) => line(p.trim())).join(""),
      mode: 0o644,
    },
    { name: "ssh_cert", contents: line(response.ssh_cert.trim()), mode: 0o644 },
    { name: "ssh_key", contents: key.sshPrivateKey, mode: 0o600 },
    {
      name: "ssh_known_ca",
      contents: response.ssh_ca_keys.map((k) => `@cert-authority * ${k.trim()}\n`).join(""),
      mode: 0o644,
    },
    { name: "identity.json", contents: `${JSON.stringify(summary, null, 2)}\n`, mode: 0o644 },
  ];
  return { files, summary };
}
