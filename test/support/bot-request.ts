import { generateKeyPairSync, type KeyObject } from "node:crypto";
import type { BotCertificateRequest } from "../../src/ca/authority.ts";
import { parseSshPublicKey, parseTlsPublicKey } from "../../src/ca/public-keys.ts";
import { ed25519AuthorizedKey } from "../../src/ca/ssh.ts";
import { encodeJoinAttributes } from "../../src/methods/kubernetes/join-attributes.ts";

/** The join attributes every default bot request carries. */
export const BOT_JOIN_ATTRS = {
  namespace: "ci",
  serviceAccount: "runner",
  pod: "runner-5d9f7-abcde",
  tokenName: "ci-token",
  joinMethod: "kubernetes",
} as const;

/**
 * A bot certificate request as the join pipeline builds one: bot `robot` with roles
 * `access, editor` and logins `root, ubuntu`, valid from a minute before `nowMs` for an hour.
 * Keys are generated unless given (`tlsPublicKey` as a KeyObject, `sshPublicLine` as an
 * authorized_keys line); anything else is laid over with `overrides`.
 */
export function botCertificateRequest(options: {
  readonly nowMs: number;
  readonly tlsPublicKey?: KeyObject;
  readonly sshPublicLine?: string;
  readonly overrides?: Partial<BotCertificateRequest>;
}): BotCertificateRequest {
  const tls =
    options.tlsPublicKey ?? generateKeyPairSync("ec", { namedCurve: "prime256v1" }).publicKey;
  const ssh =
    options.sshPublicLine ?? ed25519AuthorizedKey(generateKeyPairSync("ed25519").publicKey);
  return {
    botName: "robot",
    roles: ["access", "editor"],
    logins: ["root", "ubuntu"],
    joinAttributesJson: encodeJoinAttributes(BOT_JOIN_ATTRS),
    tlsPublicKey: parseTlsPublicKey(tls.export({ type: "spki", format: "pem" }) as string),
    sshPublicKey: parseSshPublicKey(ssh),
    notBeforeMs: options.nowMs - 60_000,
    notAfterMs: options.nowMs + 3_600_000,
    ...options.overrides,
  };
}
