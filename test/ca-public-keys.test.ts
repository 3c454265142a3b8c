import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { JoinError } from "../src/errors.ts";
import { parseSshPublicKey, parseTlsPublicKey } from "../src/ca/public-keys.ts";
import { systemTool } from "./support/system-tools.ts";

const sshKeygen = systemTool("ssh-keygen", "openssh-client");
const openssl = systemTool("openssl", "openssl");

function spkiPem(type: "ec" | "ed25519" | "rsa", options: object = {}): string {
  const { publicKey } = generateKeyPairSync(type as "ec", options as { namedCurve: string });
  return publicKey.export({ type: "spki", format: "pem" }) as string;
}

function pemOfDer(der: Buffer): string {
  return `-----BEGIN PUBLIC KEY-----\n${der.toString("base64")}\n-----END PUBLIC KEY-----\n`;
}

function withLastByteFlipped(der: Buffer): Buffer {
  const copy = Buffer.from(der);
  copy[copy.length - 1]! ^= 1;
  return copy;
}

function isInvalidPublicKey(message: RegExp) {
  return (error: unknown) =>
    error instanceof JoinError &&
    error.code === "invalid_public_key" &&
    message.test(error.message);
}

test("TLS public keys: each supported type parses to its type and the same SPKI", () => {
  const cases = [
    { pem: spkiPem("ec", { namedCurve: "prime256v1" }), type: "ecdsa-p256" },
    { pem: spkiPem("ec", { namedCurve: "secp384r1" }), type: "ecdsa-p384" },
    { pem: spkiPem("ed25519"), type: "ed25519" },
    { pem: spkiPem("rsa", { modulusLength: 2048 }), type: "rsa" },
  ];
  for (const { pem, type } of cases) {
    const key = parseTlsPublicKey(pem);
    assert.equal(key.type, type);
    assert.equal(key.spkiDer.toString("base64"), pem.replace(/-----[^-]+-----|\s/g, ""), type);
  }
});

test("parsed keys import their KeyObject once, lazily, through an accessor no key owns", () => {
  // A per-object accessor (an object literal with a getter) costs V8 an old-generation
  // AccessorPair per join that holds the key bytes until the next full mark-compact: at a thousand
  // joins a second, a mark-compact a second. The accessor lives on the class's prototype instead.
  const { publicKey: ed } = generateKeyPairSync("ed25519");
  const keys = [
    parseTlsPublicKey(spkiPem("ec", { namedCurve: "prime256v1" })),
    parseTlsPublicKey(spkiPem("ed25519")),
    parseSshPublicKey(`ssh-ed25519 ${sshBlobOf(ed).toString("base64")} bot@pod`),
  ];
  for (const key of keys) {
    assert.equal(Object.getOwnPropertyDescriptor(key, "keyObject"), undefined, key.type);
    assert.equal(key.keyObject, key.keyObject, `${key.type}: imported once`);
    assert.equal(key.keyObject.type, "public");
  }
  assert.equal(keys[2]!.keyObject.export({ format: "jwk" }).x, ed.export({ format: "jwk" }).x);
});

test("TLS public keys: everything else is invalid_public_key, without echoing the key", () => {
  const ec = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const p256Pem = ec.publicKey.export({ type: "spki", format: "pem" }) as string;
  const body = p256Pem.split("\n")[1] ?? "";
  const cases = [
    { name: "empty", pem: "", message: /empty/ },
    { name: "garbage", pem: "not a key at all", message: /not a single PEM block/ },
    { name: "two PEM blocks", pem: p256Pem + p256Pem, message: /not a single PEM block/ },
    {
      name: "a private key (PKCS#8)",
      pem: ec.privateKey.export({ type: "pkcs8", format: "pem" }) as string,
      message: /is a private key/,
    },
    {
      name: "a private key (SEC1)",
      pem: ec.privateKey.export({ type: "sec1", format: "pem" }) as string,
      message: /is a private key/,
    },
    {
      name: "a certificate",
      pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
      message: /is a certificate/,
    },
    {
      name: "PKCS#1 RSA public key",
      pem: generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey.export({
        type: "pkcs1",
        format: "pem",
      }) as string,
      message: /PEM "RSA PUBLIC KEY" block/,
    },
    {
      name: "corrupt SubjectPublicKeyInfo",
      pem: `-----BEGIN PUBLIC KEY-----\n${body.slice(0, 30)}AAAA\n-----END PUBLIC KEY-----\n`,
      message: /not a valid SubjectPublicKeyInfo/,
    },
    { name: "RSA-1024", pem: spkiPem("rsa", { modulusLength: 1024 }), message: /1024 bits/ },
    {
      name: "P-256 point off the curve (canonical SPKI layout)",
      pem: pemOfDer(withLastByteFlipped(ec.publicKey.export({ type: "spki", format: "der" }))),
      message: /not a point on its elliptic curve/,
    },
    {
      name: "P-384 point off the curve (canonical SPKI layout)",
      pem: pemOfDer(
        withLastByteFlipped(
          generateKeyPairSync("ec", { namedCurve: "secp384r1" }).publicKey.export({
            type: "spki",
            format: "der",
          }),
        ),
      ),
      message: /not a point on its elliptic curve/,
    },
    {
      name: "P-256 coordinate not below p",
      pem: pemOfDer(
        Buffer.concat([
          ec.publicKey.export({ type: "spki", format: "der" }).subarray(0, 27),
          Buffer.alloc(64, 0xff),
        ]),
      ),
      message: /not a point on its elliptic curve/,
    },
    {
      name: "P-521",
      pem: spkiPem("ec", { namedCurve: "secp521r1" }),
      message: /curve is not supported/,
    },
    {
      name: "secp256k1",
      pem: spkiPem("ec", { namedCurve: "secp256k1" }),
      message: /curve is not supported/,
    },
    {
      name: "X25519 (not a signing key)",
      pem: spkiPem("x25519" as "ec"),
      message: /type x25519 is not supported/,
    },
    {
      name: "DSA",
      pem: spkiPem("dsa" as "ec", { modulusLength: 1024, divisorLength: 160 }),
      message: /type dsa is not supported/,
    },
    { name: "too large", pem: "A".repeat(20_000), message: /too large/ },
  ];
  for (const { name, pem, message } of cases) {
    assert.throws(() => parseTlsPublicKey(pem), isInvalidPublicKey(message), name);
    try {
      parseTlsPublicKey(pem);
    } catch (error) {
      assert.ok(!(error as Error).message.includes(body.slice(0, 20)), `${name}: echoes key bytes`);
    }
  }
});

let dir = "";
const sshLines: Record<string, string> = {};

before(() => {
  if (sshKeygen.skip) return;
  dir = mkdtempSync(join(tmpdir(), "kube-join-ssh-keys-"));
  for (const [name, args] of Object.entries({
    ed25519: ["-t", "ed25519"],
    p256: ["-t", "ecdsa", "-b", "256"],
    p384: ["-t", "ecdsa", "-b", "384"],
    rsa2048: ["-t", "rsa", "-b", "2048"],
    rsa1024: ["-t", "rsa", "-b", "1024"],
  })) {
    const file = join(dir, name);
    execFileSync(sshKeygen.path, ["-q", ...args, "-N", "", "-C", "bot@pod", "-f", file]);
    sshLines[name] = readFileSync(`${file}.pub`, "utf8");
    sshLines[`${name}-private`] = readFileSync(file, "utf8");
  }
  // A certificate of the ed25519 key, signed by the p256 key as a throwaway CA.
  execFileSync(sshKeygen.path, [
    "-q",
    "-s",
    join(dir, "p256"),
    "-I",
    "id",
    join(dir, "ed25519.pub"),
  ]);
  sshLines["cert"] = readFileSync(join(dir, "ed25519-cert.pub"), "utf8");
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("SSH public keys: lines from ssh-keygen parse to their type", { skip: sshKeygen.skip }, () => {
  const cases = [
    { line: sshLines["ed25519"], type: "ssh-ed25519", asymmetricKeyType: "ed25519" },
    { line: sshLines["p256"], type: "ecdsa-sha2-nistp256", asymmetricKeyType: "ec" },
    { line: sshLines["p384"], type: "ecdsa-sha2-nistp384", asymmetricKeyType: "ec" },
    { line: sshLines["rsa2048"], type: "ssh-rsa", asymmetricKeyType: "rsa" },
  ];
  for (const { line, type, asymmetricKeyType } of cases) {
    const key = parseSshPublicKey(line ?? "");
    assert.equal(key.type, type);
    assert.equal(key.keyObject.asymmetricKeyType, asymmetricKeyType);
    assert.equal(key.blob.toString("base64"), line?.split(" ")[1]);
  }
});

function sshBlobOf(ed25519: ReturnType<typeof generateKeyPairSync>["publicKey"]): Buffer {
  const x = Buffer.from(ed25519.export({ format: "jwk" }).x ?? "", "base64url");
  return Buffer.concat([sshString("ssh-ed25519"), sshString(x)]);
}

function sshString(value: Buffer | string): Buffer {
  const bytes = Buffer.from(value);
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

test("SSH public keys: everything else is invalid_public_key", { skip: sshKeygen.skip }, () => {
  const ed25519Base64 = sshLines["ed25519"]?.split(" ")[1] ?? "";
  const ed25519Blob = Buffer.from(ed25519Base64, "base64");
  const p256Blob = Buffer.from(sshLines["p256"]?.split(" ")[1] ?? "", "base64");
  // The P-256 blob with its point's last coordinate byte changed: no longer on the curve.
  const offCurve = Buffer.from(p256Blob);
  offCurve[offCurve.length - 1] = (offCurve[offCurve.length - 1] ?? 0) ^ 0x01;
  const dss = Buffer.concat([sshString("ssh-dss"), sshString(Buffer.alloc(128, 1))]);
  const cases = [
    { name: "empty", line: "", message: /empty/ },
    { name: "garbage", line: "hello world", message: /type "hello" is not supported/ },
    { name: "RSA-1024", line: sshLines["rsa1024"], message: /1024 bits; at least 2048/ },
    {
      name: "DSA",
      line: `ssh-dss ${dss.toString("base64")}`,
      message: /type "ssh-dss" is not supported/,
    },
    { name: "a private key", line: sshLines["ed25519-private"], message: /is a private key/ },
    { name: "a certificate", line: sshLines["cert"], message: /is a certificate/ },
    {
      name: "inner type differs from the line's",
      line: `ssh-rsa ${ed25519Base64}`,
      message: /encoded type does not match/,
    },
    { name: "bad base64", line: "ssh-ed25519 AAAA*AAA", message: /not valid base64/ },
    {
      name: "truncated",
      line: `ssh-ed25519 ${ed25519Blob.subarray(0, ed25519Blob.length - 5).toString("base64")}`,
      message: /malformed/,
    },
    {
      name: "trailing bytes",
      line: `ssh-ed25519 ${Buffer.concat([ed25519Blob, Buffer.of(0)]).toString("base64")}`,
      message: /trailing bytes/,
    },
    {
      name: "point not on the curve",
      line: `ecdsa-sha2-nistp256 ${offCurve.toString("base64")}`,
      message: /not a point on P-256/,
    },
    {
      name: "options before the type",
      line: `from="10.0.0.1" ${sshLines["ed25519"]}`,
      message: /\(unrecognised\)/,
    },
    {
      name: "two lines",
      line: `${sshLines["ed25519"]}${sshLines["p256"]}`,
      message: /single authorized_keys line/,
    },
  ];
  for (const { name, line, message } of cases) {
    assert.throws(() => parseSshPublicKey(line ?? ""), isInvalidPublicKey(message), name);
    try {
      parseSshPublicKey(line ?? "");
    } catch (error) {
      assert.ok(
        !(error as Error).message.includes(ed25519Base64.slice(20, 40)),
        `${name}: echoes key`,
      );
    }
  }
});

test("TLS public keys: a key from `openssl genpkey` parses", { skip: openssl.skip }, () => {
  const privatePem = execFileSync(openssl.path, [
    "genpkey",
    "-algorithm",
    "EC",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
  ]);
  const publicPem = execFileSync(openssl.path, ["pkey", "-pubout"], {
    input: privatePem,
  }).toString();
  assert.equal(parseTlsPublicKey(publicPem).type, "ecdsa-p256");
});
