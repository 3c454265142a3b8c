import type { FileSet, SetFile } from "../destinations/destination.ts";
import type { CheckedIdentity } from "../identity.ts";
import type { Output } from "./output.ts";

/**
 * tbot's `identity` output (docs/agent.md, "The identity output"), as far as kube-join can
 * honour it. tbot also writes `teleport-host-ca.crt`, `teleport-database-ca.crt`, `known_hosts`
 * and `ssh_config`; kube-join has no host or database CA and no proxy to tunnel through, so those
 * files are not written rather than filled with a CA that means something else.
 */
export const IDENTITY_OUTPUT_FILE_NAMES = [
  "identity",
  "tlscert",
  "key",
  "key.pub",
  "key-cert.pub",
  "teleport-user-ca.crt",
] as const;

/**
 * The `identity` file as `tsh -i` reads it (Teleport's `api/identityfile`): the private key PEM,
 * the SSH certificate line, the TLS certificate PEM, the SSH CA lines in known_hosts
 * `@cert-authority` form, then the TLS CA PEMs; each part ends in a newline.
 */
export function renderIdentityFile(identity: CheckedIdentity): string {
  return [
    identity.key.privateKeyPem,
    identity.sshCert,
    identity.tlsCert,
    ...identity.sshCaKeys.map((key) => `@cert-authority * ${key}\n`),
    ...identity.tlsCaCerts,
  ]
    .map((part) => (part.endsWith("\n") ? part : `${part}\n`))
    .join("");
}

/** The files of the `identity` output, in write order; the private key material 0600. */
export function renderIdentityOutput(identity: CheckedIdentity): FileSet {
  const file = (contents: string, mode: SetFile["mode"] = 0o644): SetFile => ({
    contents: Buffer.from(contents, "utf8"),
    mode,
  });
  const files: Array<[(typeof IDENTITY_OUTPUT_FILE_NAMES)[number], SetFile]> = [
    ["identity", file(renderIdentityFile(identity), 0o600)],
    ["tlscert", file(identity.tlsCert)],
    ["key", file(identity.key.privateKeyPem, 0o600)],
    ["key.pub", file(`${identity.key.sshPublicKey}\n`)],
    ["key-cert.pub", file(identity.sshCert)],
    // Teleport's user CA signs user and bot certificates; kube-join's one TLS CA signs the
    // bot's, so this is the file whose meaning it honours.
    ["teleport-user-ca.crt", file(identity.tlsCaCerts.join(""))],
  ];
  return new Map(files);
}

export const identityOutput: Output = { type: "identity", render: renderIdentityOutput };
