import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, X509Certificate, type KeyObject } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadOrCreateAuthority } from "../src/ca/authority.ts";
import { readElement } from "../src/ca/der.ts";
import { createCaCertificate, keyIdentifierOf, subjectKeyIdentifierOf } from "../src/ca/x509.ts";
import { botCertificateRequest } from "./support/bot-request.ts";
import { importPeculiarCaKeys, peculiarCaCertificate } from "./support/peculiar-ca.ts";
import { x509 } from "./support/peculiar-x509.ts";
import { systemTool } from "./support/system-tools.ts";

// The self-signed CA certificate is built from src/ca/der.ts; @peculiar/x509 (a dev dependency)
// and openssl are the oracles it is checked against.

const openssl = systemTool("openssl", "openssl");
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const root = mkdtempSync(join(tmpdir(), "kube-join-ca-certificate-"));
after(() => rmSync(root, { recursive: true, force: true }));

const KEYS: ReadonlyArray<[string, () => { privateKey: KeyObject; publicKey: KeyObject }]> = [
  ["ECDSA P-256", () => generateKeyPairSync("ec", { namedCurve: "prime256v1" })],
  ["ECDSA P-384", () => generateKeyPairSync("ec", { namedCurve: "secp384r1" })],
  ["RSA-2048", () => generateKeyPairSync("rsa", { modulusLength: 2048 })],
  ["Ed25519", () => generateKeyPairSync("ed25519")],
];

function tbsOf(der: Uint8Array): Buffer {
  const tbs = readElement(der, readElement(der, 0).valueStart);
  return Buffer.from(der.subarray(tbs.start, tbs.end));
}

/** The extensions `openssl x509 -text` lists, as `name` or `name: critical`. */
function opensslExtensions(pem: string): { text: string; extensions: string[] } {
  const text = execFileSync(openssl.path, ["x509", "-noout", "-text"], { input: pem }).toString();
  const block = /X509v3 extensions:\n([\s\S]*?)\n {4}Signature Algorithm:/.exec(text)?.[1] ?? "";
  const extensions = [...block.matchAll(/^ {12}(\S[^:\n]*):( critical)?\s*$/gm)].map(
    ([, name, critical]) => `${name}${critical ? ": critical" : ""}`,
  );
  return { text, extensions };
}

for (const [keyType, makeKey] of KEYS) {
  for (const name of ["example.com", "Example.COM", "my_cluster"]) {
    test(`CA certificate (${keyType}, ${name}): the same bytes @peculiar/x509 builds`, async () => {
      const { privateKey, publicKey } = makeKey();
      const serial = Buffer.from("4f1e2d3c4b5a69788796a5b4c3d2e1f0", "hex");
      // A validity past 2049 takes GeneralizedTime for notAfter (RFC 5280 4.1.2.5).
      const fields = {
        name,
        notBefore: new Date(Date.UTC(2045, 5, 1, 8, 30, 15)),
        notAfter: new Date(Date.UTC(2055, 5, 1, 8, 30, 15)),
        serial,
      };
      const ours = createCaCertificate({ ...fields, privateKey, publicKey });
      const theirs = await peculiarCaCertificate(await importPeculiarCaKeys(privateKey), fields);
      assert.equal(tbsOf(ours).toString("hex"), tbsOf(theirs).toString("hex"));
      // Without the public half, it is derived from the private key: the same certificate.
      const derived = createCaCertificate({ ...fields, privateKey });
      assert.equal(tbsOf(derived).toString("hex"), tbsOf(ours).toString("hex"));
      // RSA PKCS#1 v1.5 and Ed25519 signatures are deterministic: the whole certificate matches.
      if (keyType === "RSA-2048" || keyType === "Ed25519") {
        assert.equal(ours.toString("hex"), theirs.toString("hex"));
      }
      const cert = new X509Certificate(ours);
      assert.equal(cert.verify(publicKey), true);
      assert.equal(cert.ca, true);
      assert.equal(cert.serialNumber.toLowerCase(), serial.toString("hex"));
    });
  }
}

for (const algorithm of ["ecdsa-p256", "rsa-2048"] as const) {
  test(
    `generated CA (${algorithm}): openssl and @peculiar/x509 see exactly the expected extensions`,
    { skip: openssl.skip },
    async () => {
      const dataDir = mkdtempSync(join(root, `${algorithm}-`));
      const ca = await loadOrCreateAuthority(
        { clusterName: "example.com", dataDir, tlsKeyAlgorithm: algorithm },
        NOW,
      );
      const pem = ca.trusted().tlsCaCerts[0] ?? "";
      const caFile = join(dataDir, "tls-ca.crt");
      assert.equal(readFileSync(caFile, "utf8"), pem);

      const { text, extensions } = opensslExtensions(pem);
      assert.deepEqual(extensions, [
        "X509v3 Basic Constraints: critical",
        "X509v3 Key Usage: critical",
        "X509v3 Subject Key Identifier",
      ]);
      assert.match(text, /Version: 3 \(0x2\)/);
      assert.match(text, /Basic Constraints: critical\n *CA:TRUE\n/);
      assert.match(text, /Key Usage: critical\n *Certificate Sign, CRL Sign\n/);
      assert.match(text, /Issuer: O = example.com, CN = example.com\n/);
      assert.match(text, /Subject: O = example.com, CN = example.com\n/);
      assert.match(text, /Not Before: Jan 15 11:59:00 2026 GMT/);
      assert.match(text, /Not After : Jan 15 12:00:00 2036 GMT/);
      assert.match(
        text,
        algorithm === "rsa-2048"
          ? /Signature Algorithm: sha256WithRSAEncryption[\s\S]*Public-Key: \(2048 bit\)/
          : /Signature Algorithm: ecdsa-with-SHA256[\s\S]*NIST CURVE: P-256/,
      );
      // Self-signed and a CA: openssl accepts it as its own trust anchor (-attime: the fixed clock).
      const verified = execFileSync(openssl.path, [
        "verify",
        "-attime",
        String(NOW / 1000),
        "-CAfile",
        caFile,
        caFile,
      ]).toString();
      assert.equal(verified.trim(), `${caFile}: OK`);

      const cert = new x509.X509Certificate(pem);
      assert.deepEqual(
        Array.from(cert.extensions, (extension) => [extension.type, extension.critical]),
        [
          ["2.5.29.19", true],
          ["2.5.29.15", true],
          ["2.5.29.14", false],
        ],
      );
      assert.equal(await cert.isSelfSigned(), true);
      const spki = new X509Certificate(pem).publicKey.export({ type: "spki", format: "der" });
      assert.equal(
        cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
        keyIdentifierOf(spki).toString("hex"),
      );
      assert.equal(cert.getExtension(x509.BasicConstraintsExtension)?.pathLength, undefined);
    },
  );
}

test(
  "a loaded CA's own subject key identifier goes into the leaves, or method 1 without one",
  { skip: openssl.skip },
  async () => {
    for (const [skiOption, expected] of [
      ["subjectKeyIdentifier=0102030405060708090a0b0c0d0e0f10", "0102030405060708090a0b0c0d0e0f10"],
      ["subjectKeyIdentifier=none", undefined],
    ] as const) {
      const dir = mkdtempSync(join(root, "loaded-"));
      const keyFile = join(dir, "tls.key");
      const certFile = join(dir, "tls.crt");
      // openssl 3 adds an AKI to a self-signed certificate unless told not to.
      execFileSync(
        openssl.path,
        [
          ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
          ...["-keyout", keyFile, "-out", certFile, "-days", "30", "-subj", "/CN=example.com"],
          ...["-addext", "basicConstraints=critical,CA:TRUE", "-addext", skiOption],
          ...["-addext", "authorityKeyIdentifier=none"],
        ],
        { stdio: "pipe" },
      );
      chmodSync(keyFile, 0o600);
      const certDer = new X509Certificate(readFileSync(certFile)).raw;
      const keyId =
        expected ??
        keyIdentifierOf(
          new X509Certificate(certDer).publicKey.export({ type: "spki", format: "der" }),
        ).toString("hex");
      assert.equal(subjectKeyIdentifierOf(certDer)?.toString("hex"), expected);

      const sshKeyFile = join(dir, "ssh.key");
      writeFileSync(
        sshKeyFile,
        generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }),
        { mode: 0o600 },
      );
      const now = Date.now();
      const ca = await loadOrCreateAuthority(
        {
          clusterName: "example.com",
          dataDir: join(dir, "data"),
          files: { tlsKeyFile: keyFile, tlsCertFile: certFile, sshKeyFile },
        },
        now,
      );
      const leaf = new x509.X509Certificate(
        ca.issueBotCertificates(botCertificateRequest({ nowMs: now })).tlsCert,
      );
      assert.equal(leaf.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId, keyId);
    }
  },
);

test("createCaCertificate refuses a serial that is not 16 positive bytes", () => {
  const privateKey = generateKeyPairSync("ec", { namedCurve: "prime256v1" }).privateKey;
  const base = { name: "example.com", notBefore: new Date(NOW), notAfter: new Date(NOW + 1000) };
  for (const serial of [Buffer.alloc(15, 1), Buffer.alloc(16, 0xff), Buffer.alloc(16, 0)]) {
    assert.throws(() => createCaCertificate({ ...base, privateKey, serial }), TypeError);
  }
});

test("the service loads without a Reflect metadata polyfill", () => {
  // A process of its own: this one has @peculiar/x509 and the tests' polyfill loaded.
  const script = [
    'await import("./src/cli.ts");',
    'const { loadOrCreateAuthority } = await import("./src/ca/authority.ts");',
    'const { mkdtempSync } = await import("node:fs");',
    `await loadOrCreateAuthority({ clusterName: "example.com", dataDir: mkdtempSync(${JSON.stringify(join(root, "no-reflect-"))}) });`,
    "console.log(typeof Reflect.getMetadata);",
  ].join("\n");
  const output = execFileSync(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "--eval", script],
    { cwd: join(import.meta.dirname, ".."), stdio: "pipe" },
  ).toString();
  assert.equal(output.trim(), "undefined");
});
