import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync, webcrypto, X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  loadOrCreateAuthority,
  type BotCertificateRequest,
  type CertificateAuthority,
} from "../src/ca/authority.ts";
import { readElement } from "../src/ca/der.ts";
import { x509 } from "./support/peculiar-x509.ts";
import { botCertificateRequest } from "./support/bot-request.ts";
import { systemTool } from "./support/system-tools.ts";
import { mutualTlsHandshake } from "./support/tls.ts";

const openssl = systemTool("openssl", "openssl");

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const NOW_SECONDS = NOW / 1000;
const root = mkdtempSync(join(tmpdir(), "kube-join-ca-x509-"));
let ca: CertificateAuthority;
let otherCa: CertificateAuthority;

before(async () => {
  ca = await loadOrCreateAuthority({ clusterName: "example.com", dataDir: join(root, "ca") }, NOW);
  otherCa = await loadOrCreateAuthority(
    { clusterName: "example.com", dataDir: join(root, "other") },
    NOW,
  );
});
after(() => rmSync(root, { recursive: true, force: true }));

function botKeys(
  type: "ec" | "ed25519" | "rsa" = "ec",
  options: object = { namedCurve: "prime256v1" },
) {
  return generateKeyPairSync(type as "ec", options as { namedCurve: string });
}

function request(
  keys: ReturnType<typeof botKeys>,
  overrides: Partial<BotCertificateRequest> = {},
): BotCertificateRequest {
  return botCertificateRequest({ nowMs: NOW, tlsPublicKey: keys.publicKey, overrides });
}

function writeTemp(name: string, contents: string): string {
  const file = join(mkdtempSync(join(root, "files-")), name);
  writeFileSync(file, contents);
  return file;
}

function verify(caPems: readonly string[], leafPem: string): { ok: boolean; output: string } {
  const args = [
    "verify",
    "-attime",
    String(NOW_SECONDS),
    "-CAfile",
    writeTemp("ca.pem", caPems.join("")),
  ];
  try {
    const output = execFileSync(openssl.path, [...args, writeTemp("leaf.pem", leafPem)], {
      stdio: "pipe",
    });
    return { ok: true, output: output.toString() };
  } catch (error) {
    const { stdout, stderr } = error as { stdout: Buffer; stderr: Buffer };
    return { ok: false, output: `${stdout}${stderr}` };
  }
}

test(
  "openssl verify accepts the bot certificate with the exported CA and rejects it with another",
  { skip: openssl.skip },
  () => {
    const issued = ca.issueBotCertificates(request(botKeys()));
    const accepted = verify(ca.trusted().tlsCaCerts, issued.tlsCert);
    assert.ok(accepted.ok, accepted.output);
    assert.match(accepted.output, /: OK/);
    const refused = verify(otherCa.trusted().tlsCaCerts, issued.tlsCert);
    assert.equal(refused.ok, false);
    assert.match(refused.output, /unable to get local issuer certificate/);
    // With the other CA also exported (a rotation), both verify.
    assert.ok(
      verify([...otherCa.trusted().tlsCaCerts, ...ca.trusted().tlsCaCerts], issued.tlsCert).ok,
    );
  },
);

test(
  "openssl verify accepts certificates for every supported bot key type",
  { skip: openssl.skip },
  () => {
    const cases = [
      botKeys("ec", { namedCurve: "secp384r1" }),
      botKeys("ed25519", {}),
      botKeys("rsa", { modulusLength: 2048 }),
    ];
    for (const keys of cases) {
      const issued = ca.issueBotCertificates(request(keys));
      const result = verify(ca.trusted().tlsCaCerts, issued.tlsCert);
      assert.ok(result.ok, result.output);
    }
  },
);

test("openssl x509 -text shows each field of the bot certificate", { skip: openssl.skip }, () => {
  const issued = ca.issueBotCertificates(request(botKeys()));
  const text = execFileSync(openssl.path, ["x509", "-noout", "-text"], {
    input: issued.tlsCert,
  }).toString();
  const caText = execFileSync(openssl.path, ["x509", "-noout", "-text"], {
    input: ca.trusted().tlsCaCerts[0],
  }).toString();
  const ski = /Subject Key Identifier: *\n *([0-9A-F:]+)/.exec(caText)?.[1];
  assert.ok(ski);
  const expected = [
    /Version: 3 \(0x2\)/,
    new RegExp(`Serial Number: *\\n *${issued.tlsSerial.match(/../g)?.join(":")}`),
    /Signature Algorithm: ecdsa-with-SHA256/,
    /Issuer: O = example.com, CN = example.com/,
    /Not Before: Jan 15 11:59:00 2026 GMT/,
    /Not After : Jan 15 13:00:00 2026 GMT/,
    /Subject: O = access, O = editor, CN = bot-robot/,
    /NIST CURVE: P-256/,
    /X509v3 Key Usage: critical\n *Digital Signature\n/,
    /X509v3 Extended Key Usage: *\n *TLS Web Client Authentication\n/,
    /X509v3 Basic Constraints: critical\n *CA:FALSE\n/,
    new RegExp(`X509v3 Authority Key Identifier: *\\n *(keyid:)?${ski}\\n`),
    /X509v3 Subject Alternative Name: *\n *URI:spiffe:\/\/example.com\/bot\/robot\n/,
    /1\.3\.9999\.2\.18: *\n *\.\.robot\n/,
    /1\.3\.9999\.2\.21: *\n *\.\.\.\{"meta":\{"join_token_name":"ci-token","join_method":"kubernetes"\}/,
  ];
  for (const pattern of expected) assert.match(text, pattern);
  assert.equal(issued.notBefore.toISOString(), "2026-01-15T11:59:00.000Z");
  assert.equal(issued.notAfter.toISOString(), "2026-01-15T13:00:00.000Z");
});

/** The DER value inside an extension's OCTET STRING: [tag, content]. */
function innerValue(extension: x509.Extension): [number, string] {
  const value = Buffer.from(extension.value);
  const element = readElement(value, 0);
  assert.equal(element.end, value.length);
  return [element.tag, value.subarray(element.valueStart, element.end).toString("utf8")];
}

test("ASN.1 cross-check: @peculiar/x509 parses the hand-built certificate to the same fields", async () => {
  const keys = botKeys();
  const issued = ca.issueBotCertificates(request(keys));
  const cert = new x509.X509Certificate(issued.tlsCert);
  const caCert = new x509.X509Certificate(ca.trusted().tlsCaCerts[0] ?? "");
  assert.equal(cert.serialNumber.toLowerCase(), issued.tlsSerial);
  assert.match(issued.tlsSerial, /^[0-7][0-9a-f]{31}$/);
  assert.equal(cert.subject, "O=access, O=editor, CN=bot-robot");
  assert.equal(cert.issuer, caCert.subject);
  assert.equal(cert.notBefore.getTime(), issued.notBefore.getTime());
  assert.equal(cert.notAfter.getTime(), issued.notAfter.getTime());
  assert.equal(
    Buffer.from(cert.publicKey.rawData).toString("base64"),
    keys.publicKey.export({ type: "spki", format: "der" }).toString("base64"),
  );
  assert.equal(await cert.verify({ publicKey: caCert, signatureOnly: true }, webcrypto), true);
  const otherCaCert = new x509.X509Certificate(otherCa.trusted().tlsCaCerts[0] ?? "");
  assert.equal(
    await cert.verify({ publicKey: otherCaCert, signatureOnly: true }, webcrypto),
    false,
  );

  const keyUsage = cert.getExtension(x509.KeyUsagesExtension);
  assert.equal(keyUsage?.usages, x509.KeyUsageFlags.digitalSignature);
  assert.equal(keyUsage?.critical, true);
  const extendedKeyUsage = cert.getExtension(x509.ExtendedKeyUsageExtension);
  assert.deepEqual([...(extendedKeyUsage?.usages ?? [])], ["1.3.6.1.5.5.7.3.2"]);
  assert.equal(extendedKeyUsage?.critical, false);
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  assert.equal(basic?.ca, false);
  assert.equal(basic?.critical, true);
  assert.equal(
    cert.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
    caCert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
  );
  assert.deepEqual(cert.getExtension(x509.SubjectAlternativeNameExtension)?.names.toJSON(), [
    { type: "url", value: "spiffe://example.com/bot/robot" },
  ]);
  const botName = cert.getExtension("1.3.9999.2.18");
  const joinAttributes = cert.getExtension("1.3.9999.2.21");
  assert.ok(botName && joinAttributes);
  assert.equal(botName.critical, false);
  assert.deepEqual(innerValue(botName), [0x0c, "robot"]);
  const [tag, json] = innerValue(joinAttributes);
  assert.equal(tag, 0x0c);
  assert.deepEqual(JSON.parse(json), {
    meta: { join_token_name: "ci-token", join_method: "kubernetes" },
    kubernetes: {
      subject: "system:serviceaccount:ci:runner",
      pod: { name: "runner-5d9f7-abcde" },
      service_account: { name: "runner", namespace: "ci" },
    },
  });
  assert.equal(cert.extensions.length, 7);
  // node's own parser agrees on the essentials too.
  const nodeCert = new X509Certificate(issued.tlsCert);
  assert.equal(nodeCert.ca, false);
  assert.equal(nodeCert.checkIssued(new X509Certificate(ca.trusted().tlsCaCerts[0] ?? "")), true);
});

test("serials are random, positive and 16 bytes; dates from 2050 on use GeneralizedTime", () => {
  const keys = botKeys();
  const serials = new Set<string>();
  for (let i = 0; i < 64; i++) {
    const { tlsSerial } = ca.issueBotCertificates(request(keys));
    assert.match(tlsSerial, /^[0-7][0-9a-f]{31}$/);
    assert.notEqual(tlsSerial, "0".repeat(32));
    serials.add(tlsSerial);
  }
  assert.equal(serials.size, 64);

  const notBeforeMs = Date.UTC(2049, 11, 31, 23, 0, 0);
  const notAfterMs = Date.UTC(2050, 0, 1, 1, 0, 0, 999);
  const issued = ca.issueBotCertificates(request(keys, { notBeforeMs, notAfterMs }));
  const cert = new x509.X509Certificate(issued.tlsCert);
  assert.equal(cert.notBefore.toISOString(), "2049-12-31T23:00:00.000Z");
  assert.equal(cert.notAfter.toISOString(), "2050-01-01T01:00:00.000Z");
  assert.equal(issued.notAfter.toISOString(), "2050-01-01T01:00:00.000Z");
  const der = Buffer.from(cert.rawData);
  assert.ok(der.includes(Buffer.from("491231230000Z")), "UTCTime before 2050");
  assert.ok(der.includes(Buffer.from("20500101010000Z")), "GeneralizedTime from 2050");
});

test("a request that validation should have stopped is a TypeError, not a certificate", () => {
  const keys = botKeys();
  const cases: Array<Partial<BotCertificateRequest>> = [
    { botName: "" },
    { botName: "robot/../admin" },
    { roles: [""] },
    { logins: [42 as unknown as string] },
    { notAfterMs: NOW - 60_000 },
    { notBeforeMs: Number.NaN },
  ];
  for (const overrides of cases) {
    assert.throws(
      () => ca.issueBotCertificates(request(keys, overrides)),
      TypeError,
      JSON.stringify(overrides),
    );
  }
});

test("mutual TLS: a server requiring client certificates from the CA accepts the bot and refuses a self-signed certificate", async () => {
  const keys = botKeys();
  const now = Date.now(); // the TLS stack checks validity against the real clock
  const issued = ca.issueBotCertificates(
    request(keys, { notBeforeMs: now - 60_000, notAfterMs: now + 3_600_000 }),
  );
  const clientKey = keys.privateKey.export({ type: "pkcs8", format: "pem" }) as string;

  const accepted = await mutualTlsHandshake({
    trustedCaCerts: ca.trusted().tlsCaCerts,
    clientKey,
    clientCert: issued.tlsCert,
  });
  assert.equal(accepted.authorized, true, accepted.error);
  assert.equal(accepted.peerCertificate?.subject.CN, "bot-robot");
  assert.equal(accepted.peerCertificate?.subjectaltname, "URI:spiffe://example.com/bot/robot");

  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const selfSigned = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: "O=access, CN=bot-robot",
      notBefore: new Date(now - 60_000),
      notAfter: new Date(now + 3_600_000),
      keys: {
        privateKey: await webcrypto.subtle.importKey(
          "pkcs8",
          keys.privateKey.export({ type: "pkcs8", format: "der" }),
          algorithm,
          false,
          ["sign"],
        ),
        publicKey: await webcrypto.subtle.importKey(
          "spki",
          keys.publicKey.export({ type: "spki", format: "der" }),
          algorithm,
          true,
          ["verify"],
        ),
      },
      signingAlgorithm: algorithm,
      extensions: [new x509.ExtendedKeyUsageExtension(["1.3.6.1.5.5.7.3.2"])],
    },
    webcrypto,
  );
  const refused = await mutualTlsHandshake({
    trustedCaCerts: ca.trusted().tlsCaCerts,
    clientKey,
    clientCert: selfSigned.toString("pem"),
  });
  assert.equal(refused.authorized, false);
  assert.equal(refused.error, "DEPTH_ZERO_SELF_SIGNED_CERT");

  const fromOtherCa = otherCa.issueBotCertificates(
    request(keys, { notBeforeMs: now - 60_000, notAfterMs: now + 3_600_000 }),
  );
  const refusedOther = await mutualTlsHandshake({
    trustedCaCerts: ca.trusted().tlsCaCerts,
    clientKey,
    clientCert: fromOtherCa.tlsCert,
  });
  assert.equal(refusedOther.authorized, false);
  assert.match(
    refusedOther.error ?? "",
    /UNABLE_TO_(GET_ISSUER_CERT_LOCALLY|VERIFY_LEAF_SIGNATURE)/,
  );
});
