/**
 * Bot certificate issuance against the cost of its bare signature (issue 3's speed target:
 * issuing costs at most 2x the raw node:crypto signature of the same key type and message size),
 * and the self-signed CA certificate from der.ts against @peculiar/x509 (issue 12: what a
 * general ASN.1 library costs). Run alone: `node --import tsx bench/ca.ts`.
 */
import {
  createPrivateKey,
  createPublicKey,
  randomBytes,
  sign,
  webcrypto,
  X509Certificate,
  type KeyObject,
} from "node:crypto";
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
import { createCaCertificate, createX509LeafIssuer, keyIdentifierOf } from "../src/ca/x509.ts";
import { botCertificateRequest } from "../test/support/bot-request.ts";
import { importPeculiarCaKeys, peculiarCaCertificate } from "../test/support/peculiar-ca.ts";

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

/**
 * Like {@link measurePair} for any number of operations, sync or async (a promise is awaited
 * inside the timed batch); returns microseconds per operation, in the order given.
 */
async function measureInterleaved<const Ops extends readonly (() => unknown)[]>(
  ops: Ops,
): Promise<{ -readonly [K in keyof Ops]: number }> {
  const run = async (op: () => unknown, times: number): Promise<bigint> => {
    const start = process.hrtime.bigint();
    for (let i = 0; i < times; i++) {
      const result = op();
      if (result instanceof Promise) await result;
    }
    return process.hrtime.bigint() - start;
  };
  for (const op of ops) await run(op, 20);
  const times = ops.map(() => 0n);
  const budget = BigInt(TARGET_MS) * 1_000_000n;
  let count = 0;
  while (times.some((time) => time < budget)) {
    for (const [index, op] of ops.entries())
      times[index] = (times[index] ?? 0n) + (await run(op, BATCH));
    count += BATCH;
  }
  return times.map((time) => Number(time) / count / 1000) as { -readonly [K in keyof Ops]: number };
}

/**
 * The self-signed CA certificate built by `createCaCertificate` (der.ts, node:crypto sign) and
 * by @peculiar/x509 (a general ASN.1 library, WebCrypto sign; the way kube-join built it before
 * issue 12) from the same P-256 key, serial and validity, with the two raw signatures of a
 * TBS-sized message, all interleaved in one run. What each spends beyond its own signature
 * (encoding, the SPKI export and SKI hash both do, WebCrypto's async hops) is given in node:crypto
 * P-256 signatures (docs/ca.md, Speed).
 */
async function benchCaCertificate(tlsKey: KeyObject, nowMs: number): Promise<BenchRow[]> {
  const fields = {
    name: "bench.example.com",
    notBefore: new Date(nowMs - 60_000),
    notAfter: new Date(nowMs + 3652 * 24 * 3600 * 1000),
    serial: Buffer.from("4f1e2d3c4b5a69788796a5b4c3d2e1f0", "hex"),
  };
  // Both builders get the key pair prepared once (the WebCrypto import, the public KeyObject).
  const peculiarKeys = await importPeculiarCaKeys(tlsKey);
  const keys = { privateKey: tlsKey, publicKey: createPublicKey(tlsKey) };
  const ours = createCaCertificate({ ...fields, ...keys });
  const tbs = randomBytes(readElement(ours, readElement(ours, 0).valueStart).end - 4);
  const [derTs, peculiar, rawNode, rawWebCrypto] = await measureInterleaved([
    () => createCaCertificate({ ...fields, ...keys }),
    () => peculiarCaCertificate(peculiarKeys, fields),
    () => sign("sha256", tbs, tlsKey),
    () =>
      webcrypto.subtle.sign({ name: "ECDSA", hash: "SHA-256" }, peculiarKeys.keys.privateKey, tbs),
  ]);
  return [
    { name: "ca CA cert, der.ts + node:crypto sign", value: round(derTs), unit: "us" },
    { name: "ca CA cert, @peculiar/x509 + WebCrypto sign", value: round(peculiar), unit: "us" },
    { name: "ca raw P-256 sign, node:crypto (CA-TBS-sized)", value: round(rawNode), unit: "us" },
    { name: "ca raw P-256 sign, WebCrypto (CA-TBS-sized)", value: round(rawWebCrypto), unit: "us" },
    { name: "ca CA cert @peculiar/x509 / der.ts", value: round(peculiar / derTs), unit: "ratio" },
    {
      name: "ca CA cert beyond its sign, @peculiar/x509 (in P-256 signs)",
      value: round((peculiar - rawWebCrypto) / rawNode),
      unit: "ratio",
    },
    {
      name: "ca CA cert beyond its sign, der.ts (in P-256 signs)",
      value: round((derTs - rawNode) / rawNode),
      unit: "ratio",
    },
  ];
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
    const caCertificate = await benchCaCertificate(tlsKey, nowMs);
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
      ...caCertificate,
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
