/**
 * Bot certificate issuance against the cost of its bare signature (issue 3's speed target:
 * issuing costs at most 2x the raw node:crypto signature of the same key type and message size).
 * Run alone: `node --import tsx bench/ca.ts`.
 */
import { createPrivateKey, randomBytes, sign, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { DATA_DIR_FILES, loadOrCreateAuthority } from "../src/ca/authority.ts";
import { readElement } from "../src/ca/der.ts";
import {
  createSshCertificateIssuer,
  INTERNAL_JOIN_PRINCIPAL,
  SSH_EXTENSION,
} from "../src/ca/ssh.ts";
import { createX509LeafIssuer, keyIdentifierOf } from "../src/ca/x509.ts";
import { botCertificateRequest } from "../test/support/bot-request.ts";

export interface BenchRow {
  name: string;
  value: number;
  unit: string;
}

const TARGET_MS = 1000;
const BATCH = 50;

/**
 * Measures two operations interleaved in batches (so load from other processes hits both
 * alike) until each has run about TARGET_MS; returns microseconds per operation.
 */
function measurePair(a: () => void, b: () => void): [number, number] {
  for (let i = 0; i < 200; i++) {
    a();
    b();
  }
  let timeA = 0n;
  let timeB = 0n;
  let count = 0;
  const budget = BigInt(TARGET_MS) * 1_000_000n;
  while (timeA < budget || timeB < budget) {
    let start = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) a();
    timeA += process.hrtime.bigint() - start;
    start = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) b();
    timeB += process.hrtime.bigint() - start;
    count += BATCH;
  }
  return [Number(timeA) / count / 1000, Number(timeB) / count / 1000];
}

export async function benchCertificates(): Promise<BenchRow[]> {
  const dataDir = mkdtempSync(join(tmpdir(), "kube-join-bench-ca-"));
  try {
    const nowMs = Date.now();
    const ca = await loadOrCreateAuthority({ clusterName: "bench.example.com", dataDir }, nowMs);
    const request = botCertificateRequest({ nowMs });

    // The CA's own keys, read back from its data directory, drive both the raw signatures and
    // each certificate builder on its own; the full issuance (both certificates) is measured too.
    const tlsKey = createPrivateKey(readFileSync(join(dataDir, DATA_DIR_FILES.tlsKeyFile)));
    const sshKey = createPrivateKey(readFileSync(join(dataDir, DATA_DIR_FILES.sshKeyFile)));
    const tlsCert = new X509Certificate(readFileSync(join(dataDir, DATA_DIR_FILES.tlsCertFile)));
    const x509Issuer = createX509LeafIssuer({
      certDer: tlsCert.raw,
      subjectKeyId: keyIdentifierOf(tlsCert.publicKey.export({ type: "spki", format: "der" })),
      privateKey: tlsKey,
    });
    const sshIssuer = createSshCertificateIssuer(sshKey);
    const notBefore = new Date(Math.floor(request.notBeforeMs / 1000) * 1000);
    const notAfter = new Date(Math.floor(request.notAfterMs / 1000) * 1000);
    const issueX509 = () =>
      x509Issuer.issue({
        commonName: `bot-${request.botName}`,
        organizations: request.roles,
        uri: `spiffe://bench.example.com/bot/${request.botName}`,
        botName: request.botName,
        joinAttributesJson: request.joinAttributesJson,
        spkiDer: request.tlsPublicKey.spkiDer,
        notBefore,
        notAfter,
      });
    const issueSsh = () =>
      sshIssuer.issue({
        publicKey: request.sshPublicKey,
        keyId: `bot-${request.botName}`,
        principals: [...request.logins, INTERNAL_JOIN_PRINCIPAL],
        validAfter: notBefore.getTime() / 1000,
        validBefore: notAfter.getTime() / 1000,
        extensions: {
          [SSH_EXTENSION.permitPty]: "",
          [SSH_EXTENSION.permitPortForwarding]: "",
          [SSH_EXTENSION.roles]: JSON.stringify({ version: "v1", roles: request.roles }),
          [SSH_EXTENSION.botName]: request.botName,
          [SSH_EXTENSION.joinAttributes]: request.joinAttributesJson,
        },
      });

    // Raw signatures over messages of the sizes the builders sign.
    const der = issueX509().der;
    const tbs = randomBytes(readElement(der, readElement(der, 0).valueStart).end - 4);
    const sshCert = Buffer.from(issueSsh().line.split(" ")[1] ?? "", "base64");
    const sshMessage = randomBytes(sshCert.length - 87); // minus the signature field

    const [rawP256, x509] = measurePair(() => sign("sha256", tbs, tlsKey), issueX509);
    const [rawEd25519, ssh] = measurePair(() => sign(null, sshMessage, sshKey), issueSsh);
    const [rawBoth, both] = measurePair(
      () => {
        sign("sha256", tbs, tlsKey);
        sign(null, sshMessage, sshKey);
      },
      () => ca.issueBotCertificates(request),
    );
    return [
      { name: "ca raw P-256 sign (TBS-sized)", value: round(rawP256), unit: "us" },
      { name: "ca X.509 issuance per cert", value: round(x509), unit: "us" },
      { name: "ca X.509 issuance / raw P-256 sign", value: round(x509 / rawP256), unit: "ratio" },
      { name: "ca raw Ed25519 sign (SSH-cert-sized)", value: round(rawEd25519), unit: "us" },
      { name: "ca SSH issuance per cert", value: round(ssh), unit: "us" },
      { name: "ca SSH issuance / raw Ed25519 sign", value: round(ssh / rawEd25519), unit: "ratio" },
      { name: "ca issueBotCertificates (both)", value: round(both), unit: "us" },
      {
        name: "ca issueBotCertificates / both raw signs",
        value: round(both / rawBoth),
        unit: "ratio",
      },
    ];
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  for (const row of await benchCertificates()) {
    console.log(`${row.name.padEnd(42)} ${String(row.value).padStart(10)} ${row.unit}`);
  }
}
