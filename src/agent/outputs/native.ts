import type { JoinAttrsWire } from "../../lib/join-wire.ts";
import type { FileSet, SetFile } from "../destinations/destination.ts";
import type { CheckedIdentity } from "../identity.ts";
import type { Output } from "./output.ts";

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
  readonly join_attrs: JoinAttrsWire;
}

/** The files of kube-join's own layout (docs/agent.md, "Files"), in write order. */
export const NATIVE_FILE_NAMES = [
  "tls.crt",
  "tls.key",
  "ca.pem",
  "ssh_cert",
  "ssh_key",
  "ssh_known_ca",
  "identity.json",
] as const;

export type NativeFileName = (typeof NATIVE_FILE_NAMES)[number];

/** The summary `identity.json` holds for this identity. */
export function nativeSummary(identity: CheckedIdentity): IdentitySummary {
  return {
    bot: identity.botName,
    user: identity.user,
    expires: identity.expires,
    tls_serial: identity.tlsSerial,
    ssh_serial: identity.sshSerial,
    ssh_principals: identity.sshPrincipals,
    renewed_at: identity.checkedAt.toISOString(),
    join_attrs: identity.joinAttrs,
  };
}

/**
 * kube-join's own layout: the `--output DIR` files of every release so far, and what the agent
 * keeps in its storage. `identity.json` comes last, so a destination writing in order finishes
 * with the file that says the set is complete.
 */
export function renderNativeFiles(identity: CheckedIdentity): FileSet {
  const text = (contents: string, mode: SetFile["mode"] = 0o644): SetFile => ({
    contents: Buffer.from(contents, "utf8"),
    mode,
  });
  const files: Array<[NativeFileName, SetFile]> = [
    ["tls.crt", text(identity.tlsCert)],
    ["tls.key", text(identity.key.privateKeyPem, 0o600)],
    ["ca.pem", text(identity.tlsCaCerts.join(""))],
    ["ssh_cert", text(identity.sshCert)],
    ["ssh_key", text(identity.key.sshPrivateKey, 0o600)],
    ["ssh_known_ca", text(identity.sshCaKeys.map((k) => `@cert-authority * ${k}\n`).join(""))],
    ["identity.json", text(`${JSON.stringify(nativeSummary(identity), null, 2)}\n`)],
  ];
  return new Map(files);
}

/** The native output, as an `Output`. */
export const nativeOutput: Output = { type: "native", render: renderNativeFiles };

/**
 * The summary of a native set read back from a destination, or `undefined` when the set has no
 * readable `identity.json` (none written yet, or not a native set).
 */
export function readNativeSummary(set: FileSet | undefined): IdentitySummary | undefined {
  const file = set?.get("identity.json");
  if (file === undefined) return undefined;
  try {
    const summary = JSON.parse(file.contents.toString("utf8")) as unknown;
    if (typeof summary !== "object" || summary === null) return undefined;
    const { expires } = summary as { expires?: unknown };
    return typeof expires === "string" ? (summary as IdentitySummary) : undefined;
  } catch {
    return undefined;
  }
}
