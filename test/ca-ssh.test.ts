import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import {
  loadOrCreateAuthority,
  type BotCertificateRequest,
  type CertificateAuthority,
} from "../src/ca/authority.ts";
import { SSH, SSH_KEYGEN, SSHD, sshLogin, startSshd, type RunningSshd } from "./support/sshd.ts";
import { BOT_JOIN_ATTRS, botCertificateRequest } from "./support/bot-request.ts";

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const root = mkdtempSync(join(tmpdir(), "kube-join-ca-ssh-"));
let ca: CertificateAuthority;
let otherCa: CertificateAuthority;
const botKeys: Record<string, string> = {};

before(async () => {
  ca = await loadOrCreateAuthority({ clusterName: "example.com", dataDir: join(root, "ca") }, NOW);
  otherCa = await loadOrCreateAuthority(
    { clusterName: "example.com", dataDir: join(root, "other") },
    NOW,
  );
  if (SSH_KEYGEN.skip) return;
  for (const [name, args] of Object.entries({
    ed25519: ["-t", "ed25519"],
    ecdsa: ["-t", "ecdsa", "-b", "256"],
    rsa: ["-t", "rsa", "-b", "2048"],
  })) {
    const file = join(root, `bot-${name}`);
    execFileSync(SSH_KEYGEN.path, ["-q", ...args, "-N", "", "-C", "bot@pod", "-f", file]);
    botKeys[name] = file;
  }
});
after(() => rmSync(root, { recursive: true, force: true }));

function request(
  keyFile: string,
  overrides: Partial<BotCertificateRequest> = {},
): BotCertificateRequest {
  const sshPublicLine = readFileSync(`${keyFile}.pub`, "utf8");
  return botCertificateRequest({ nowMs: NOW, sshPublicLine, overrides });
}

/** `ssh-keygen -L` of a certificate line, in UTC. */
function describe(certLine: string): string {
  const file = join(mkdtempSync(join(root, "cert-")), "bot-cert.pub");
  writeFileSync(file, certLine + "\n");
  return execFileSync(SSH_KEYGEN.path, ["-L", "-f", file], {
    env: { ...process.env, TZ: "UTC" },
  }).toString();
}

/** The value ssh-keygen prints as hex for an extension it does not know, decoded. */
function extensionValue(listing: string, name: string): string {
  const hex = new RegExp(`^\\s*${name} UNKNOWN OPTION: ([0-9a-f]+) \\(len \\d+\\)$`, "m").exec(
    listing,
  )?.[1];
  assert.ok(hex, `${name} not listed`);
  const data = Buffer.from(hex, "hex");
  assert.equal(data.readUInt32BE(0), data.length - 4, `${name}: one SSH string`);
  return data.subarray(4).toString("utf8");
}

test(
  "ssh-keygen -L shows type, key id, serial, principals, validity and extensions",
  { skip: SSH_KEYGEN.skip },
  () => {
    const keyFile = botKeys["ed25519"] ?? "";
    const issued = ca.issueBotCertificates(request(keyFile));
    assert.match(
      issued.sshCert,
      /^ssh-ed25519-cert-v01@openssh\.com AAAA[A-Za-z0-9+/=]+ bot-robot$/,
    );
    const listing = describe(issued.sshCert);
    const caFile = join(root, "ca.pub");
    writeFileSync(caFile, `${ca.trusted().sshCaKeys[0]}\n`);
    const caFingerprint = execFileSync(SSH_KEYGEN.path, ["-l", "-f", caFile])
      .toString()
      .split(" ")[1];
    const expected = [
      /Type: ssh-ed25519-cert-v01@openssh\.com user certificate/,
      new RegExp(
        `Signing CA: ED25519 ${caFingerprint?.replace(/[+/]/g, "\\$&")} \\(using ssh-ed25519\\)`,
      ),
      /Key ID: "bot-robot"/,
      new RegExp(`Serial: ${issued.sshSerial}\\n`),
      /Valid: from 2026-01-15T11:59:00 to 2026-01-15T13:00:00/,
      /Principals: *\n\s+root\n\s+ubuntu\n\s+-teleport-internal-join\n/,
      /Critical Options: \(none\)/,
      /Extensions: *\n\s+bot-name@goteleport\.com .*\n\s+join-attributes@kube-join .*\n\s+permit-port-forwarding\n\s+permit-pty\n\s+teleport-roles .*\n/,
    ];
    for (const pattern of expected) assert.match(listing, pattern);
    assert.match(issued.sshSerial, /^\d+$/);
    assert.ok(BigInt(issued.sshSerial) < 2n ** 64n);
    assert.equal(extensionValue(listing, "bot-name@goteleport\\.com"), "robot");
    assert.deepEqual(JSON.parse(extensionValue(listing, "teleport-roles")), {
      version: "v1",
      roles: ["access", "editor"],
    });
    assert.deepEqual(JSON.parse(extensionValue(listing, "join-attributes@kube-join")), {
      meta: { join_token_name: "ci-token", join_method: "kubernetes" },
      kubernetes: {
        subject: "system:serviceaccount:ci:runner",
        pod: { name: BOT_JOIN_ATTRS.pod },
        service_account: { name: "runner", namespace: "ci" },
      },
    });
  },
);

test(
  "ssh-keygen reads certificates for ECDSA and RSA bot keys, and serials differ",
  { skip: SSH_KEYGEN.skip },
  () => {
    const cases = [
      { keyFile: botKeys["ecdsa"] ?? "", type: "ecdsa-sha2-nistp256-cert-v01@openssh.com" },
      { keyFile: botKeys["rsa"] ?? "", type: "ssh-rsa-cert-v01@openssh.com" },
    ];
    const serials = new Set<string>();
    for (const { keyFile, type } of cases) {
      const issued = ca.issueBotCertificates(request(keyFile));
      assert.ok(issued.sshCert.startsWith(`${type} `));
      assert.match(describe(issued.sshCert), new RegExp(`Type: ${type} user certificate`));
      serials.add(issued.sshSerial);
    }
    assert.equal(serials.size, 2);
  },
);

test(
  "a real sshd trusting the exported CA: logins in `logins` work; other principals, expiry and other CAs do not",
  { skip: SSHD.skip || SSH.skip || SSH_KEYGEN.skip },
  async () => {
    const sshd: RunningSshd = await startSshd({
      trustedUserCaKeys: ca.trusted().sshCaKeys.join("\n"),
    });
    try {
      const now = Date.now(); // sshd checks validity against the real clock
      const keyFile = botKeys["ed25519"] ?? "";
      const attempt = async (
        authority: CertificateAuthority,
        overrides: Partial<BotCertificateRequest>,
      ) => {
        const issued = authority.issueBotCertificates(
          request(keyFile, {
            notBeforeMs: now - 60_000,
            notAfterMs: now + 3_600_000,
            ...overrides,
          }),
        );
        const certFile = join(mkdtempSync(join(root, "login-")), "bot-cert.pub");
        writeFileSync(certFile, issued.sshCert + "\n");
        return sshLogin({ port: sshd.port, user: sshd.user, keyFile, certFile });
      };

      const accepted = await attempt(ca, { logins: ["ubuntu", sshd.user] });
      assert.equal(accepted.ok, true, `${accepted.stderr}\n${sshd.logs()}`);

      const cases = [
        { name: "another principal", authority: ca, overrides: { logins: ["someone-else"] } },
        {
          name: "an expired certificate",
          authority: ca,
          overrides: {
            logins: [sshd.user],
            notBeforeMs: now - 7_200_000,
            notAfterMs: now - 3_600_000,
          },
        },
        {
          name: "a certificate from another CA",
          authority: otherCa,
          overrides: { logins: [sshd.user] },
        },
      ];
      for (const { name, authority, overrides } of cases) {
        const refused = await attempt(authority, overrides);
        assert.equal(refused.ok, false, name);
        assert.match(refused.stderr, /Permission denied/, name);
      }
      assert.match(
        sshd.logs(),
        /name is not a listed principal|not in list of principals|Certificate invalid/,
      );
      assert.match(sshd.logs(), /expired/);
    } finally {
      await sshd.stop();
    }
  },
);
