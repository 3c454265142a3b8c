import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ConfigError } from "../src/errors.ts";
import {
  DATA_DIR_FILES,
  loadOrCreateAuthority,
  type AuthorityOptions,
  type BotCertificateRequest,
} from "../src/ca/authority.ts";
import { x509 } from "./support/peculiar-x509.ts";
import { botCertificateRequest } from "./support/bot-request.ts";
import { systemTool } from "./support/system-tools.ts";

const openssl = systemTool("openssl", "openssl");
const sshKeygen = systemTool("ssh-keygen", "openssh-client");

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const root = mkdtempSync(join(tmpdir(), "kube-join-ca-authority-"));
after(() => rmSync(root, { recursive: true, force: true }));
let dirCount = 0;
function freshDir(): string {
  return join(root, `case-${++dirCount}`);
}

/** A CA key (mode 0600) and self-signed CA certificate made by openssl, as an admin would. */
function opensslCa(keyFile: string, certFile: string, newKey: readonly string[]): void {
  execFileSync(
    openssl.path,
    [
      "req",
      "-x509",
      "-newkey",
      ...newKey,
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "30",
      "-subj",
      "/O=example.com/CN=example.com",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    ],
    { stdio: "pipe" },
  );
  chmodSync(keyFile, 0o600);
}

function botRequest(nowMs: number): BotCertificateRequest {
  return botCertificateRequest({ nowMs });
}

/** `openssl verify` of `leafPem` against `caPems`; returns openssl's exit status and output. */
function opensslVerify(
  caPems: readonly string[],
  leafPem: string,
  atSeconds?: number,
): { ok: boolean; output: string } {
  const dir = mkdtempSync(join(root, "verify-"));
  writeFileSync(join(dir, "ca.pem"), caPems.join(""));
  writeFileSync(join(dir, "leaf.pem"), leafPem);
  const args = ["verify", "-CAfile", join(dir, "ca.pem")];
  if (atSeconds !== undefined) args.push("-attime", String(atSeconds));
  try {
    return {
      ok: true,
      output: execFileSync(openssl.path, [...args, join(dir, "leaf.pem")], {
        stdio: "pipe",
      }).toString(),
    };
  } catch (error) {
    const { stdout, stderr } = error as { stdout: Buffer; stderr: Buffer };
    return { ok: false, output: `${stdout}${stderr}` };
  }
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

test("first start generates the CA into a 0700 directory with 0600 files, and exports it", async () => {
  const dataDir = freshDir();
  const ca = await loadOrCreateAuthority({ clusterName: "example.com", dataDir }, NOW);
  assert.equal(mode(dataDir), 0o700);
  assert.deepEqual(readdirSync(dataDir).sort(), ["ssh-ca.key", "tls-ca.crt", "tls-ca.key"]);
  for (const file of readdirSync(dataDir)) assert.equal(mode(join(dataDir, file)), 0o600, file);

  const { tlsCaCerts, sshCaKeys } = ca.trusted();
  assert.equal(tlsCaCerts.length, 1);
  assert.match(sshCaKeys[0] ?? "", /^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+={0,2}$/);
  const cert = new x509.X509Certificate(tlsCaCerts[0] ?? "");
  assert.equal(cert.subject, "O=example.com, CN=example.com");
  assert.equal(cert.issuer, cert.subject);
  assert.equal(await cert.isSelfSigned(), true);
  assert.equal(cert.notBefore.getTime(), NOW - 60_000);
  assert.equal(cert.notAfter.getTime(), NOW + 3652 * 24 * 3600 * 1000);
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  assert.equal(basic?.ca, true);
  assert.equal(basic?.critical, true);
  const usage = cert.getExtension(x509.KeyUsagesExtension);
  assert.equal(usage?.usages, x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
  assert.equal(usage?.critical, true);
  assert.ok(cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId);
  assert.equal((cert.publicKey.algorithm as { namedCurve?: string }).namedCurve, "P-256");
});

test(
  "restart with the same data directory: same CA, files untouched, earlier certificates verify",
  { skip: openssl.skip },
  async () => {
    const dataDir = freshDir();
    const now = Date.now(); // openssl verify checks against the real clock
    const first = await loadOrCreateAuthority({ clusterName: "example.com", dataDir }, now);
    const issued = first.issueBotCertificates(botRequest(now));
    const before = Object.values(DATA_DIR_FILES).map((file) =>
      readFileSync(join(dataDir, file), "utf8"),
    );

    const second = await loadOrCreateAuthority({ clusterName: "example.com", dataDir }, now + 1000);
    assert.deepEqual(second.trusted(), first.trusted());
    assert.deepEqual(
      Object.values(DATA_DIR_FILES).map((file) => readFileSync(join(dataDir, file), "utf8")),
      before,
    );
    const verified = opensslVerify(second.trusted().tlsCaCerts, issued.tlsCert);
    assert.ok(verified.ok, verified.output);
    const again = second.issueBotCertificates(botRequest(now));
    assert.ok(opensslVerify(first.trusted().tlsCaCerts, again.tlsCert).ok);
  },
);

type Damage = (dataDir: string) => void;
const keyOf = (dataDir: string) => join(dataDir, DATA_DIR_FILES.tlsKeyFile);
const certOf = (dataDir: string) => join(dataDir, DATA_DIR_FILES.tlsCertFile);
const sshOf = (dataDir: string) => join(dataDir, DATA_DIR_FILES.sshKeyFile);

test("a damaged data directory stops loading with the file named, and nothing is overwritten", async () => {
  const other = freshDir();
  await loadOrCreateAuthority({ clusterName: "other.example.com", dataDir: other }, NOW);
  const cases: Array<{
    name: string;
    damage: Damage;
    file: (dir: string) => string;
    message: RegExp;
  }> = [
    {
      name: "TLS key missing",
      damage: (d) => unlinkSync(keyOf(d)),
      file: keyOf,
      message: /TLS CA private key is missing/,
    },
    {
      name: "TLS certificate missing",
      damage: (d) => unlinkSync(certOf(d)),
      file: certOf,
      message: /TLS CA certificate is missing/,
    },
    {
      name: "TLS key corrupt",
      damage: (d) =>
        writeFileSync(keyOf(d), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
      file: keyOf,
      message: /not a valid unencrypted private key/,
    },
    {
      name: "TLS certificate corrupt",
      damage: (d) => writeFileSync(certOf(d), "garbage"),
      file: certOf,
      message: /not a valid PEM certificate/,
    },
    {
      name: "TLS certificate of another CA (mismatched pair)",
      damage: (d) => copyFileSync(certOf(other), certOf(d)),
      file: certOf,
      message: /does not match the private key/,
    },
    {
      name: "TLS key readable by others",
      damage: (d) => chmodSync(keyOf(d), 0o644),
      file: keyOf,
      message: /readable by group or others \(mode 0644\)/,
    },
    {
      name: "TLS key readable by group",
      damage: (d) => chmodSync(keyOf(d), 0o640),
      file: keyOf,
      message: /readable by group or others \(mode 0640\)/,
    },
    {
      name: "TLS key unreadable (a directory)",
      damage: (d) => {
        unlinkSync(keyOf(d));
        mkdirSync(keyOf(d), { mode: 0o700 });
      },
      file: keyOf,
      message: /unreadable \(EISDIR\)/,
    },
    {
      name: "SSH key corrupt",
      damage: (d) => writeFileSync(sshOf(d), "nope"),
      file: sshOf,
      message: /not a valid unencrypted private key/,
    },
    {
      name: "SSH key readable by others",
      damage: (d) => chmodSync(sshOf(d), 0o604),
      file: sshOf,
      message: /mode 0604/,
    },
    {
      name: "SSH key not Ed25519",
      damage: (d) => copyFileSync(keyOf(other), sshOf(d)),
      file: sshOf,
      message: /must be Ed25519/,
    },
  ];
  for (const { name, damage, file, message } of cases) {
    const dataDir = freshDir();
    await loadOrCreateAuthority({ clusterName: "example.com", dataDir }, NOW);
    damage(dataDir);
    const snapshot = readdirSync(dataDir)
      .filter((entry) => statSync(join(dataDir, entry)).isFile())
      .map((entry) => [entry, readFileSync(join(dataDir, entry), "utf8")]);
    await assert.rejects(
      loadOrCreateAuthority({ clusterName: "example.com", dataDir }, NOW),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.problems.length === 1 &&
        error.problems[0]?.startsWith(`${file(dataDir)}: `) === true &&
        message.test(error.message),
      name,
    );
    const unchanged = readdirSync(dataDir)
      .filter((entry) => statSync(join(dataDir, entry)).isFile())
      .map((entry) => [entry, readFileSync(join(dataDir, entry), "utf8")]);
    assert.deepEqual(unchanged, snapshot, `${name}: files changed`);
  }
});

test("invalid options are ConfigErrors", async () => {
  const cases: Array<{ options: AuthorityOptions; message: RegExp }> = [
    { options: { clusterName: "", dataDir: freshDir() }, message: /^clusterName: / },
    { options: { clusterName: "a/b", dataDir: freshDir() }, message: /^clusterName: / },
    {
      options: {
        clusterName: "example.com",
        dataDir: freshDir(),
        tlsKeyAlgorithm: "ed448" as "rsa-2048",
      },
      message: /^tlsKeyAlgorithm: /,
    },
    {
      options: {
        clusterName: "example.com",
        dataDir: freshDir(),
        files: {
          tlsKeyFile: join(root, "absent.key"),
          tlsCertFile: join(root, "absent.crt"),
          sshKeyFile: join(root, "absent-ssh.key"),
        },
      },
      message: /absent\.key: the TLS CA private key is missing/,
    },
  ];
  for (const { options, message } of cases) {
    await assert.rejects(
      loadOrCreateAuthority(options, NOW),
      (error: unknown) => error instanceof ConfigError && message.test(error.message),
    );
  }
});

test(
  "RSA-2048 option: an RSA CA whose bot certificates openssl verifies",
  { skip: openssl.skip },
  async () => {
    const dataDir = freshDir();
    const now = Date.now();
    const ca = await loadOrCreateAuthority(
      { clusterName: "example.com", dataDir, tlsKeyAlgorithm: "rsa-2048" },
      now,
    );
    const caCert = new X509Certificate(ca.trusted().tlsCaCerts[0] ?? "");
    assert.equal(caCert.publicKey.asymmetricKeyType, "rsa");
    assert.equal(caCert.publicKey.asymmetricKeyDetails?.modulusLength, 2048);
    const issued = ca.issueBotCertificates(botRequest(now));
    const verified = opensslVerify(ca.trusted().tlsCaCerts, issued.tlsCert);
    assert.ok(verified.ok, verified.output);
    const text = execFileSync(openssl.path, ["x509", "-noout", "-text"], {
      input: issued.tlsCert,
    }).toString();
    assert.match(text, /Signature Algorithm: sha256WithRSAEncryption/);
    // An existing key is kept whatever the option says.
    const reloaded = await loadOrCreateAuthority(
      { clusterName: "example.com", dataDir, tlsKeyAlgorithm: "ecdsa-p256" },
      now,
    );
    assert.deepEqual(reloaded.trusted(), ca.trusted());
  },
);

test(
  "files from a Secret mount: an openssl CA and an ssh-keygen Ed25519 key",
  { skip: openssl.skip || sshKeygen.skip },
  async () => {
    const dir = mkdtempSync(join(root, "secret-"));
    const tlsKeyFile = join(dir, "tls.key");
    const tlsCertFile = join(dir, "tls.crt");
    const sshKeyFile = join(dir, "ssh");
    opensslCa(tlsKeyFile, tlsCertFile, ["ec", "-pkeyopt", "ec_paramgen_curve:P-384"]);
    execFileSync(sshKeygen.path, ["-q", "-t", "ed25519", "-N", "", "-f", sshKeyFile]);
    const now = Date.now();
    const ca = await loadOrCreateAuthority(
      {
        clusterName: "example.com",
        dataDir: freshDir(),
        files: { tlsKeyFile, tlsCertFile, sshKeyFile },
      },
      now,
    );
    assert.equal(
      ca.trusted().sshCaKeys[0],
      readFileSync(`${sshKeyFile}.pub`, "utf8").split(" ").slice(0, 2).join(" "),
    );
    const issued = ca.issueBotCertificates(botRequest(now));
    const verified = opensslVerify([readFileSync(tlsCertFile, "utf8")], issued.tlsCert);
    assert.ok(verified.ok, verified.output);
    const text = execFileSync(openssl.path, ["x509", "-noout", "-text"], {
      input: issued.tlsCert,
    }).toString();
    assert.match(text, /Signature Algorithm: ecdsa-with-SHA384/);

    chmodSync(tlsKeyFile, 0o644); // a Secret volume without defaultMode
    await assert.rejects(
      loadOrCreateAuthority(
        {
          clusterName: "example.com",
          dataDir: freshDir(),
          files: { tlsKeyFile, tlsCertFile, sshKeyFile },
        },
        now,
      ),
      (error: unknown) =>
        error instanceof ConfigError && error.message.startsWith(`${tlsKeyFile}: `),
    );
  },
);

test("extra trusted CAs are exported after the active one; bad extra files are ConfigErrors", async () => {
  const old = await loadOrCreateAuthority({ clusterName: "example.com", dataDir: freshDir() }, NOW);
  const dir = mkdtempSync(join(root, "extra-"));
  const tlsFile = join(dir, "old-ca.pem");
  const sshFile = join(dir, "old-ssh-ca.pub");
  writeFileSync(tlsFile, old.trusted().tlsCaCerts.join(""));
  writeFileSync(
    sshFile,
    `# the CA before the rotation\n${old.trusted().sshCaKeys.join("\n")} old-ca\n`,
  );
  const ca = await loadOrCreateAuthority(
    {
      clusterName: "example.com",
      dataDir: freshDir(),
      extraTrusted: { tlsCertFiles: [tlsFile], sshPublicKeyFiles: [sshFile] },
    },
    NOW,
  );
  const { tlsCaCerts, sshCaKeys } = ca.trusted();
  assert.equal(tlsCaCerts.length, 2);
  assert.equal(tlsCaCerts[1], old.trusted().tlsCaCerts[0]);
  assert.notEqual(tlsCaCerts[0], tlsCaCerts[1]);
  assert.deepEqual(sshCaKeys.slice(1), old.trusted().sshCaKeys);
  assert.equal(sshCaKeys.length, 2);

  const bad = join(dir, "bad.pub");
  writeFileSync(bad, "ssh-ed25519 AAAA\n");
  const leaf = join(dir, "empty.pem");
  writeFileSync(leaf, "no certificates here\n");
  const cases = [
    {
      extraTrusted: { sshPublicKeyFiles: [bad] },
      message: new RegExp(`^${bad}:1: the ssh-ed25519 key is malformed`),
    },
    {
      extraTrusted: { tlsCertFiles: [leaf] },
      message: new RegExp(`^${leaf}: contains no PEM certificate`),
    },
    {
      extraTrusted: { tlsCertFiles: [join(dir, "absent.pem")] },
      message: /absent\.pem: the trusted TLS CA certificate file is missing/,
    },
  ];
  for (const { extraTrusted, message } of cases) {
    await assert.rejects(
      loadOrCreateAuthority({ clusterName: "example.com", dataDir: freshDir(), extraTrusted }, NOW),
      (error: unknown) => error instanceof ConfigError && message.test(error.message),
    );
  }
});

test(
  "an RSA CA key under 2048 bits from files is refused, naming the file",
  { skip: openssl.skip },
  async () => {
    const dir = mkdtempSync(join(root, "rsa1024-"));
    const tlsKeyFile = join(dir, "tls.key");
    const tlsCertFile = join(dir, "tls.crt");
    opensslCa(tlsKeyFile, tlsCertFile, ["rsa:1024"]);
    const sshKeyFile = join(freshDir(), DATA_DIR_FILES.sshKeyFile);
    await loadOrCreateAuthority(
      { clusterName: "example.com", dataDir: join(sshKeyFile, "..") },
      NOW,
    );
    await assert.rejects(
      loadOrCreateAuthority(
        {
          clusterName: "example.com",
          dataDir: freshDir(),
          files: { tlsKeyFile, tlsCertFile, sshKeyFile },
        },
        NOW,
      ),
      (error: unknown) =>
        error instanceof ConfigError &&
        error.message ===
          `${tlsKeyFile}: the TLS CA key is RSA of 1024 bits; at least 2048 are required`,
    );
  },
);

test("an existing data directory open to others is narrowed to 0700", async () => {
  const dataDir = freshDir();
  mkdirSync(dataDir, { mode: 0o755 });
  chmodSync(dataDir, 0o755);
  await loadOrCreateAuthority({ clusterName: "example.com", dataDir }, NOW);
  assert.equal(statSync(dataDir).mode & 0o777, 0o700);
});

test("the SPIFFE ID uses the cluster name lower-cased (trust domains are lower case)", async () => {
  const ca = await loadOrCreateAuthority({ clusterName: "Example.COM", dataDir: freshDir() }, NOW);
  const issued = ca.issueBotCertificates(botRequest(NOW));
  const cert = new X509Certificate(issued.tlsCert);
  assert.equal(cert.subjectAltName, "URI:spiffe://example.com/bot/robot");
});
