import { execFileSync } from "node:child_process";
import { X509Certificate, createPrivateKey, createPublicKey } from "node:crypto";
import * as fsPromises from "node:fs/promises";
import { lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, statSync } from "node:fs";
import { createServer as createHttpServer, get as httpGet } from "node:http";
import { createServer } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { strict as assert } from "node:assert";
import { AGENT_LOCAL_CODES, AgentError } from "../src/agent/agent-error.ts";
import { backoffDelay } from "../src/agent/backoff.ts";
import { postJoin } from "../src/agent/client.ts";
import { checkJoinResponse } from "../src/agent/identity.ts";
import { generateAgentKey } from "../src/agent/keys.ts";
import type { AgentKey } from "../src/agent/keys.ts";
import { DEFAULT_TOKEN_PATH, parseAgentArgs } from "../src/agent/options.ts";
import type { AgentOptions } from "../src/agent/options.ts";
import { runAgent } from "../src/agent/run.ts";
import type { AgentDeps, AgentLogRecord } from "../src/agent/run.ts";
import { AgentStatus, startAgentDiag } from "../src/agent/diag.ts";
import { parseSshCertificate } from "../src/agent/ssh-certificate.ts";
import type { FileSet } from "../src/agent/destinations/destination.ts";
import {
  createDirectoryDestination,
  readCurrentSet,
  writeIdentitySet,
} from "../src/agent/destinations/directory.ts";
import type { IdentityFs } from "../src/agent/destinations/directory.ts";
import {
  nativeSummary,
  readNativeSummary,
  renderNativeFiles,
} from "../src/agent/outputs/native.ts";
import {
  IDENTITY_OUTPUT_FILE_NAMES,
  renderIdentityFile,
  renderIdentityOutput,
} from "../src/agent/outputs/identity.ts";
import { createMemoryDestination } from "../src/agent/destinations/memory.ts";
import type { IdentitySummary } from "../src/agent/outputs/native.ts";
import type { JoinRequestWire, JoinResponseWire } from "../src/lib/join-wire.ts";
import { loadOrCreateAuthority } from "../src/ca/authority.ts";
import type { CertificateAuthority } from "../src/ca/authority.ts";
import { parseSshPublicKey, parseTlsPublicKey } from "../src/ca/public-keys.ts";
import { encodeJoinAttributes } from "../src/methods/kubernetes/join-attributes.ts";
import { createTestCa, issueServerCertificate } from "./support/https-issuer.ts";
import { systemTool } from "./support/system-tools.ts";

const NOW = new Date("2026-01-15T12:00:00Z");
const HOUR = 3_600_000;

function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `kube-join-agent-${prefix}-`));
}

// One real bot CA for the whole file: it signs what a kube-join server would return.
let authority: CertificateAuthority;
before(async () => {
  authority = await loadOrCreateAuthority(
    { clusterName: "example.teleport.sh", dataDir: join(tempDir("ca"), "data") },
    NOW.getTime(),
  );
});

/** What `POST /v1/join` answers for this request, signed by the test CA. */
function issue(body: JoinRequestWire, pod = "tbot-7d9f", nowMs = NOW.getTime()): JoinResponseWire {
  const issued = authority.issueBotCertificates({
    botName: "example",
    roles: ["bot-example"],
    logins: ["root"],
    joinAttributesJson: encodeJoinAttributes({
      namespace: "default",
      serviceAccount: "tbot",
      pod,
      tokenName: body.token,
    }),
    tlsPublicKey: parseTlsPublicKey(body.public_tls_key),
    sshPublicKey: parseSshPublicKey(body.public_ssh_key),
    notBeforeMs: nowMs - 60_000,
    notAfterMs: Date.parse(body.expires ?? ""),
  });
  const trusted = authority.trusted();
  return {
    bot_name: "example",
    user: "bot-example",
    expires: issued.notAfter.toISOString(),
    tls_cert: issued.tlsCert,
    ssh_cert: issued.sshCert,
    tls_ca_certs: [...trusted.tlsCaCerts],
    ssh_ca_keys: [...trusted.sshCaKeys],
    join_attrs: {
      kubernetes: {
        subject: "system:serviceaccount:default:tbot",
        namespace: "default",
        service_account: "tbot",
        pod,
      },
    },
  };
}

function requestFor(key: AgentKey, expires = new Date(NOW.getTime() + HOUR)): JoinRequestWire {
  return {
    token: "example-bot",
    role: "Bot",
    id_token: "unused-by-the-test-ca",
    public_tls_key: key.publicKeyPem,
    public_ssh_key: key.sshPublicKey,
    expires: expires.toISOString(),
  };
}

describe("duration flags (Go syntax, shared with resources and config)", () => {
  const args = ["--server", "https://kube-join:3025", "--token", "example-bot"];
  const withTtl = (ttl: string) =>
    parseAgentArgs([...args, "--ca-file", "/ca.pem", "--output", "/out", "--ttl", ttl], {});
  const cases: Array<[string, number | undefined]> = [
    ["30m", 1_800_000],
    ["1h", HOUR],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["0s", undefined],
    ["10", undefined],
    ["1d", undefined],
    ["-1h", undefined],
    ["", undefined],
  ];
  for (const [text, ms] of cases) {
    test(`--ttl ${JSON.stringify(text)} -> ${ms ?? "usage error"}`, () => {
      if (ms === undefined) {
        assert.throws(() => withTtl(text), /--ttl/);
      } else {
        const options = withTtl(text);
        assert.notEqual(options, "help");
        assert.equal(options !== "help" && options.ttlMs, ms);
      }
    });
  }
});

describe("parseAgentArgs", () => {
  const base = ["--server", "https://kube-join:3025", "--token", "example-bot"];
  const full = [...base, "--ca-file", "/ca.pem", "--output", "/out"];

  test("defaults: ttl 1h, renewal a third of it, backoff 1s..5m, the guide's token path", () => {
    const options = parseAgentArgs(full, {}) as AgentOptions;
    assert.equal(options.server.href, "https://kube-join:3025/");
    assert.equal(options.tokenName, "example-bot");
    assert.equal(options.caFile, "/ca.pem");
    assert.deepEqual(options.storage, { type: "directory", path: "/out" });
    assert.equal(options.ttlMs, HOUR);
    assert.equal(options.renewEveryMs, 20 * 60_000);
    assert.equal(options.backoffInitialMs, 1000);
    assert.equal(options.backoffMaxMs, 300_000);
    assert.equal(options.oneshot, false);
    assert.equal(options.insecure, false);
    assert.equal(options.tokenPath, DEFAULT_TOKEN_PATH);
  });

  test("every flag and KUBERNETES_TOKEN_PATH", () => {
    const options = parseAgentArgs(
      [
        ...full,
        "--ttl",
        "2h",
        "--renew-every",
        "10m",
        "--backoff-initial",
        "100ms",
        "--backoff-max",
        "2s",
        "--oneshot",
      ],
      { KUBERNETES_TOKEN_PATH: "/tmp/token" },
    ) as AgentOptions;
    assert.deepEqual(
      [
        options.ttlMs,
        options.renewEveryMs,
        options.backoffInitialMs,
        options.backoffMaxMs,
        options.oneshot,
        options.tokenPath,
      ],
      [2 * HOUR, 600_000, 100, 2000, true, "/tmp/token"],
    );
  });

  test("plain http:// with --insecure needs no CA file", () => {
    const options = parseAgentArgs(
      ["--server", "http://127.0.0.1:3025", "--token", "t", "--output", "/o", "--insecure"],
      {},
    ) as AgentOptions;
    assert.equal(options.insecure, true);
    assert.equal(options.caFile, undefined);
  });

  test("--help", () => assert.equal(parseAgentArgs(["--help"], {}), "help"));

  const rejected: Array<[string, string[], RegExp]> = [
    ["missing --server", ["--token", "t", "--output", "/o"], /^--server is required$/],
    ["missing --token", [...base.slice(0, 2), "--ca-file", "/c", "--output", "/o"], /--token is/],
    ["missing --output", [...base, "--ca-file", "/c"], /^--output is required$/],
    ["https without --ca-file", [...base, "--output", "/o"], /--ca-file is required/],
    [
      "http without --insecure",
      ["--server", "http://h:1", "--token", "t", "--output", "/o"],
      /--insecure/,
    ],
    [
      "another scheme",
      ["--server", "ftp://h", "--token", "t", "--output", "/o", "--ca-file", "/c"],
      /scheme/,
    ],
    ["not a URL", ["--server", "kube-join:3025:x", "--token", "t", "--output", "/o"], /--server/],
    ["bad duration", [...full, "--ttl", "90"], /^--ttl: not a positive duration/],
    ["ttl too short", [...full, "--ttl", "1m"], /^--ttl: must be at least 2m/],
    ["renewal not before expiry", [...full, "--ttl", "1h", "--renew-every", "1h"], /--renew-every/],
    [
      "backoff max under initial",
      [...full, "--backoff-initial", "10s", "--backoff-max", "1s"],
      /--backoff-max/,
    ],
    ["unknown flag", [...full, "--verbose"], /verbose/],
    ["positional argument", [...full, "extra"], /extra/],
  ];
  for (const [name, argv, message] of rejected) {
    test(`rejects: ${name}`, () => {
      assert.throws(
        () => parseAgentArgs(argv, {}),
        (err: Error) => err.name === "AgentUsageError" && message.test(err.message),
      );
    });
  }
});

describe("backoffDelay", () => {
  const policy = { initialMs: 1000, maxMs: 300_000 };
  test("doubles from the initial delay up to the cap; jitter spans [ceiling/2, ceiling]", () => {
    const ceilings = [1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000];
    ceilings.forEach((ceiling, i) => {
      assert.equal(
        backoffDelay(i + 1, policy, () => 0),
        ceiling / 2,
        `failure ${i + 1}, low`,
      );
      assert.equal(
        backoffDelay(i + 1, policy, () => 0.5),
        (ceiling * 3) / 4,
        `failure ${i + 1}`,
      );
      assert.equal(
        backoffDelay(i + 1, policy, () => 1),
        ceiling,
        `failure ${i + 1}, high`,
      );
    });
  });

  test("stays at the cap however many failures", () => {
    assert.equal(
      backoffDelay(10_000, policy, () => 1),
      300_000,
    );
  });

  test("failures must be a positive integer", () => {
    assert.throws(() => backoffDelay(0, policy, () => 0), TypeError);
  });
});

describe("keys and certificates", () => {
  const sshKeygen = systemTool("ssh-keygen", "openssh-client");

  test(
    "ssh_key is an OpenSSH private key that ssh-keygen decodes to the same key pair",
    { skip: sshKeygen.skip },
    async () => {
      const key = await generateAgentKey();
      const dir = tempDir("keys");
      const file = join(dir, "ssh_key");
      await fsPromises.writeFile(file, key.sshPrivateKey, { mode: 0o600 });
      assert.match(key.sshPrivateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
      const derived = execFileSync(sshKeygen.path, ["-y", "-f", file], { encoding: "utf8" });
      assert.equal(derived.trim(), key.sshPublicKey);
      // Rewriting it as PEM makes ssh-keygen decode the private half (and check its checkints).
      execFileSync(sshKeygen.path, ["-p", "-q", "-P", "", "-N", "", "-m", "PEM", "-f", file]);
      const decoded = createPrivateKey(readFileSync(file, "utf8")).export({ format: "jwk" });
      assert.equal(decoded.d, key.privateKey.export({ format: "jwk" }).d);
    },
  );

  test("tls.key is PKCS#8 PEM of the same key", async () => {
    const key = await generateAgentKey();
    assert.match(key.privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    const publicFromPem = createPublicKey(createPrivateKey(key.privateKeyPem));
    assert.equal(publicFromPem.export({ type: "spki", format: "pem" }), key.publicKeyPem);
  });

  test("each key is new", async () => {
    const [a, b] = await Promise.all([generateAgentKey(), generateAgentKey()]);
    assert.notEqual(a.sshPublicKey, b.sshPublicKey);
  });

  test("parseSshCertificate reads serial, principals and validity of a real certificate", async () => {
    const key = await generateAgentKey();
    const response = issue(requestFor(key));
    const info = parseSshCertificate(response.ssh_cert);
    assert.ok(info);
    assert.ok(info.publicPoint.equals(key.publicPoint));
    assert.equal(info.certType, 1);
    assert.ok(info.principals.includes("root"));
    assert.equal(Number(info.validBefore) * 1000, Date.parse(response.expires));
    assert.equal(parseSshCertificate(key.sshPublicKey), undefined);
    assert.equal(parseSshCertificate("ecdsa-sha2-nistp256-cert-v01@openssh.com AAAA"), undefined);
  });
});

describe("checkJoinResponse and the native output", () => {
  test("a good answer becomes the seven files, keys 0600", async () => {
    const key = await generateAgentKey();
    const response = issue(requestFor(key));
    const identity = checkJoinResponse(response, key, NOW);
    const files = renderNativeFiles(identity);
    const summary = nativeSummary(identity);
    assert.deepEqual(
      [...files].map(([name, f]) => [name, f.mode]),
      [
        ["tls.crt", 0o644],
        ["tls.key", 0o600],
        ["ca.pem", 0o644],
        ["ssh_cert", 0o644],
        ["ssh_key", 0o600],
        ["ssh_known_ca", 0o644],
        ["identity.json", 0o644],
      ],
    );
    const byName = new Map([...files].map(([name, f]) => [name, f.contents.toString("utf8")]));
    assert.equal(byName.get("tls.key"), key.privateKeyPem);
    assert.equal(byName.get("ssh_key"), key.sshPrivateKey);
    assert.equal(
      byName.get("ssh_known_ca"),
      `@cert-authority * ${authority.trusted().sshCaKeys[0]}\n`,
    );
    assert.equal(summary.bot, "example");
    assert.equal(
      summary.tls_serial,
      new X509Certificate(response.tls_cert).serialNumber.toLowerCase(),
    );
    assert.equal(summary.ssh_serial, parseSshCertificate(response.ssh_cert)!.serial.toString());
    assert.equal(summary.renewed_at, NOW.toISOString());
    assert.deepEqual(JSON.parse(byName.get("identity.json")!), summary);
  });

  test("only what was checked is written: text around the certificates is not copied", async () => {
    const key = await generateAgentKey();
    const good = issue(requestFor(key));
    const injected =
      "@cert-authority * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAttackerKeyAttackerKeyAttackerKey";
    const identity = checkJoinResponse(
      {
        ...good,
        tls_cert: `junk before\n${good.tls_cert}\n${injected}\n`,
        tls_ca_certs: good.tls_ca_certs.map((pem) => `${pem}\n${injected}\n`),
        ssh_cert: `${good.ssh_cert.trim()} comment\n${injected}`,
      },
      key,
      NOW,
    );
    const clean = checkJoinResponse(good, key, NOW);
    assert.equal(identity.tlsCert, clean.tlsCert);
    assert.deepEqual(identity.tlsCaCerts, clean.tlsCaCerts);
    assert.equal(identity.sshCert, clean.sshCert);
    assert.match(
      identity.sshCert,
      /^ecdsa-sha2-nistp256-cert-v01@openssh\.com [A-Za-z0-9+/]+=*\n$/,
    );
    for (const set of [renderNativeFiles(identity), renderIdentityOutput(identity)]) {
      for (const [name, file] of set) {
        assert.doesNotMatch(file.contents.toString("utf8"), /Attacker|junk/, name);
      }
    }
  });

  test("refuses answers that are not usable with the key this join sent", async () => {
    const key = await generateAgentKey();
    const other = await generateAgentKey();
    const good = issue(requestFor(key));
    const forOther = issue(requestFor(other));
    const otherCa = await createTestCa("someone else");
    const cases: Array<[string, JoinResponseWire, RegExp]> = [
      ["TLS cert for another key", { ...good, tls_cert: forOther.tls_cert }, /tls_cert does not/],
      ["SSH cert for another key", { ...good, ssh_cert: forOther.ssh_cert }, /ssh_cert does not/],
      ["TLS cert under another CA", { ...good, tls_ca_certs: [otherCa.certPem] }, /not signed/],
      ["not PEM", { ...good, tls_cert: "junk" }, /not a PEM certificate/],
      ["SSH key instead of cert", { ...good, ssh_cert: key.sshPublicKey }, /ssh_cert is not/],
      ["CA key with a newline", { ...good, ssh_ca_keys: ["ssh-ed25519 AAAA\nx"] }, /ssh_ca_keys/],
      ["bad expiry", { ...good, expires: "soon" }, /expires/],
    ];
    for (const [name, response, message] of cases) {
      assert.throws(
        () => checkJoinResponse(response, key, NOW),
        (err: AgentError) => err.code === "bad_response" && message.test(err.message),
        name,
      );
    }
  });
});

describe("writeIdentitySet", () => {
  async function filesFor(pod: string): Promise<FileSet> {
    const key = await generateAgentKey();
    return renderNativeFiles(checkJoinResponse(issue(requestFor(key), pod), key, NOW));
  }

  function readSet(dir: string): Record<string, string> {
    const generation = join(dir, readlinkSync(join(dir, "current")));
    return Object.fromEntries(
      readdirSync(generation).map((name) => [name, readFileSync(join(generation, name), "utf8")]),
    );
  }

  test("writes the set behind a `current` link, with modes and stable convenience links", async () => {
    const dir = join(tempDir("store"), "identity");
    const files = await filesFor("pod-1");
    const generation = await writeIdentitySet(dir, files, { now: NOW });
    assert.equal(join(dir, readlinkSync(join(dir, "current"))), generation);
    assert.equal(statSync(generation).mode & 0o777, 0o755);
    for (const [name, file] of files) {
      const contents = file.contents.toString("utf8");
      assert.equal(readFileSync(join(generation, name), "utf8"), contents);
      assert.equal(statSync(join(generation, name)).mode & 0o777, file.mode, name);
      assert.ok(lstatSync(join(dir, name)).isSymbolicLink());
      assert.equal(readlinkSync(join(dir, name)), `current/${name}`);
      assert.equal(readFileSync(join(dir, name), "utf8"), contents);
    }
    const current = await readCurrentSet(dir);
    assert.equal(current?.directory, generation);
    assert.deepEqual(current?.set, files, "read back byte for byte, modes included");
    assert.equal(podOf(readNativeSummary(current?.set)), "pod-1");
  });

  test("a renewal swaps the whole set and keeps only the one it replaced", async () => {
    const dir = tempDir("renew");
    const first = await writeIdentitySet(dir, await filesFor("pod-1"), { now: NOW });
    const second = await writeIdentitySet(dir, await filesFor("pod-2"), { now: NOW });
    const third = await writeIdentitySet(dir, await filesFor("pod-3"), { now: NOW });
    const generations = readdirSync(dir)
      .filter((e) => e.startsWith("gen-"))
      .map((e) => join(dir, e))
      .sort();
    assert.deepEqual(generations, [second, third].sort());
    assert.ok(!generations.includes(first));
    assert.match(readSet(dir)["identity.json"]!, /"pod-3"/);
    assert.equal(readdirSync(dir).filter((e) => e.startsWith(".")).length, 0);
  });

  // Each failure point of a write: the previous set must stay exactly as it was.
  const failures: Array<[string, (fs: IdentityFs) => IdentityFs]> = [
    ["the 4th file cannot be created", failOnCall("open", 4)],
    ["a file cannot be fsynced", failFileSync()],
    ["the staging directory cannot be renamed", failOnCall("rename", 1)],
    ["the `current` link cannot be swapped", failOnCall("rename", 2)],
  ];
  for (const [name, inject] of failures) {
    test(`a failed write leaves the previous set intact: ${name}`, async () => {
      const dir = tempDir("fail");
      await writeIdentitySet(dir, await filesFor("pod-old"), { now: NOW });
      const before = readSet(dir);
      const entriesBefore = readdirSync(dir).sort();
      await assert.rejects(
        writeIdentitySet(dir, await filesFor("pod-new"), { now: NOW, fs: inject(fsPromises) }),
        (err: AgentError) => err.code === "write_failed" && /ENOSPC/.test(err.message),
      );
      assert.deepEqual(readSet(dir), before);
      assert.deepEqual(readdirSync(dir).sort(), entriesBefore, "no staging or orphan left");
    });
  }

  // Each step after the `current` swap: the new set is live, so the write succeeds and says so.
  const afterSwap: Array<[string, (fs: IdentityFs, dir: string) => IdentityFs]> = [
    ["the directory cannot be fsynced", (fs, dir) => failDirectoryOpen(fs, dir)],
    ["a convenience link cannot be created", (fs) => failOnCall("symlink", 2)(fs)],
    ["old generations cannot be listed", (fs) => failOnCall("readdir", 1)(fs)],
  ];
  for (const [name, inject] of afterSwap) {
    test(`a failure after the swap is a warning, not write_failed: ${name}`, async () => {
      const dir = tempDir("after-swap");
      const warnings: string[] = [];
      const generation = await writeIdentitySet(dir, await filesFor("pod-new"), {
        now: NOW,
        fs: inject(fsPromises, dir),
        warn: (message) => warnings.push(message),
      });
      assert.equal(join(dir, readlinkSync(join(dir, "current"))), generation);
      assert.match(readSet(dir)["identity.json"]!, /"pod-new"/);
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!, /^identity written, but .* failed in .*: ENOSPC$/);
    });
  }
});

function failDirectoryOpen(fs: IdentityFs, dir: string): IdentityFs {
  return {
    ...fs,
    open: ((...args: Parameters<typeof fs.open>) =>
      args[0] === dir && args[1] === "r"
        ? Promise.reject(enospc())
        : fs.open(...args)) as typeof fs.open,
  };
}

function enospc(): Error {
  return Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
}

function failOnCall(
  method: "open" | "rename" | "symlink" | "readdir",
  n: number,
): (fs: IdentityFs) => IdentityFs {
  return (fs) => {
    let calls = 0;
    const real = fs[method] as (...args: unknown[]) => Promise<unknown>;
    const wrapped = (...args: unknown[]): Promise<unknown> => {
      calls += 1;
      return calls === n ? Promise.reject(enospc()) : real(...args);
    };
    return { ...fs, [method]: wrapped } as IdentityFs;
  };
}

function failFileSync(): (fs: IdentityFs) => IdentityFs {
  return (fs) => ({
    ...fs,
    open: (async (...args: Parameters<typeof fs.open>) => {
      const handle = await fs.open(...args);
      if (args[1] === "wx") handle.sync = () => Promise.reject(enospc());
      return handle;
    }) as typeof fs.open,
  });
}

describe("the identity output (tbot's files)", () => {
  test("identity, tlscert, key, key.pub, key-cert.pub, teleport-user-ca.crt; keys 0600", async () => {
    const key = await generateAgentKey();
    const identity = checkJoinResponse(issue(requestFor(key)), key, NOW);
    const set = renderIdentityOutput(identity);
    assert.deepEqual(
      [...set].map(([name, f]) => [name, f.mode]),
      [
        ["identity", 0o600],
        ["tlscert", 0o644],
        ["key", 0o600],
        ["key.pub", 0o644],
        ["key-cert.pub", 0o644],
        ["teleport-user-ca.crt", 0o644],
      ],
    );
    const text = (name: string) => set.get(name)?.contents.toString("utf8");
    assert.equal(text("key"), key.privateKeyPem);
    assert.equal(text("key.pub"), `${key.sshPublicKey}\n`);
    assert.equal(text("key-cert.pub"), identity.sshCert);
    assert.equal(text("tlscert"), identity.tlsCert);
    assert.equal(
      text("teleport-user-ca.crt"),
      authority
        .trusted()
        .tlsCaCerts.map((p) => `${p.trim()}\n`)
        .join(""),
    );
    // The same key and certificates as the native files of the same identity.
    const native = renderNativeFiles(identity);
    assert.deepEqual(set.get("key")?.contents, native.get("tls.key")?.contents);
    assert.deepEqual(set.get("tlscert")?.contents, native.get("tls.crt")?.contents);
  });

  test("the identity file: key PEM, SSH cert, TLS cert, SSH CA lines, TLS CA PEMs, in that order", async () => {
    const key = await generateAgentKey();
    const identity = checkJoinResponse(issue(requestFor(key)), key, NOW);
    assert.equal(
      renderIdentityFile(identity),
      [
        key.privateKeyPem,
        identity.sshCert,
        identity.tlsCert,
        ...authority.trusted().sshCaKeys.map((k) => `@cert-authority * ${k}\n`),
        ...identity.tlsCaCerts,
      ].join(""),
    );
    assert.deepEqual(IDENTITY_OUTPUT_FILE_NAMES, [...renderIdentityOutput(identity).keys()]);
  });

  test("no file named for a CA kube-join does not have", async () => {
    const key = await generateAgentKey();
    const names = [
      ...renderIdentityOutput(checkJoinResponse(issue(requestFor(key)), key, NOW)).keys(),
    ];
    for (const promise of [
      "teleport-host-ca.crt",
      "teleport-database-ca.crt",
      "known_hosts",
      "ssh_config",
    ]) {
      assert.ok(!names.includes(promise), promise);
    }
  });
});

describe("destinations behind the port", () => {
  const set = (text: string): FileSet =>
    new Map([
      ["a", { contents: Buffer.from(text), mode: 0o644 }],
      ["b.key", { contents: Buffer.from(`${text}-key`), mode: 0o600 }],
    ]);

  test("memory: nothing before the first write, then the last whole set, a copy", async () => {
    const memory = createMemoryDestination();
    assert.equal(memory.description, "memory");
    assert.equal(await memory.read(), undefined);
    const written = new Map(set("one"));
    await memory.write(written);
    written.delete("a");
    assert.deepEqual(await memory.read(), set("one"));
    await memory.write(set("two"));
    assert.deepEqual(await memory.read(), set("two"));
  });

  test("directory: reads back the set it wrote, byte for byte and mode for mode", async () => {
    const dir = join(tempDir("port"), "out");
    const destination = createDirectoryDestination({ path: dir, now: () => NOW });
    assert.equal(destination.description, `directory ${dir}`);
    assert.equal(await destination.read(), undefined);
    await destination.write(set("one"));
    await destination.write(set("two"));
    assert.deepEqual(await destination.read(), set("two"));
    assert.equal(readFileSync(join(dir, "a"), "utf8"), "two");
  });

  test("directory: a name that is not one file name of ours is refused before anything is written", async () => {
    const dir = tempDir("names");
    for (const name of ["../x", "current", "gen-1", ".hidden", "a/b"]) {
      await assert.rejects(
        writeIdentitySet(dir, new Map([[name, { contents: Buffer.from("x"), mode: 0o644 }]]), {
          now: NOW,
        }),
        TypeError,
        name,
      );
    }
    assert.deepEqual(readdirSync(dir), []);
  });
});

describe("postJoin against a real HTTPS server", () => {
  let server: ReturnType<typeof createServer>;
  let url: URL;
  let caPem: string;
  let answer: (req: IncomingMessage, body: string, res: ServerResponse) => void;

  before(async () => {
    const ca = await createTestCa();
    const { certPem, keyPem } = await issueServerCertificate(ca);
    caPem = ca.certPem;
    server = createServer({ cert: certPem, key: keyPem }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => answer(req, Buffer.concat(chunks).toString("utf8"), res));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = new URL(`https://127.0.0.1:${(server.address() as AddressInfo).port}`);
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const json = (res: ServerResponse, status: number, body: unknown, headers = {}): void => {
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };

  test("sends the request as JSON to /v1/join and returns the identity", async () => {
    const key = await generateAgentKey();
    const request = requestFor(key);
    let seen: { method?: string; path?: string; type?: string; body?: unknown } = {};
    answer = (req, body, res) => {
      seen = {
        method: req.method,
        path: req.url,
        type: req.headers["content-type"],
        body: JSON.parse(body),
      };
      json(res, 200, issue(request));
    };
    const response = await postJoin({ server: url, ca: caPem, timeoutMs: 5000 }, request);
    assert.deepEqual(seen, {
      method: "POST",
      path: "/v1/join",
      type: "application/json",
      body: request,
    });
    assert.equal(response.bot_name, "example");
    assert.ok(new X509Certificate(response.tls_cert).checkPrivateKey(key.privateKey));
  });

  const errors: Array<[string, () => void, Partial<AgentError>]> = [
    [
      "a refusal keeps the server's code, status and message",
      () =>
        (answer = (_q, _b, res) =>
          json(res, 403, {
            error: { code: "no_matching_allow_rule", message: "default:other is not allowed" },
          })),
      { code: "no_matching_allow_rule", status: 403, message: "default:other is not allowed" },
    ],
    [
      "Retry-After is kept in milliseconds",
      () =>
        (answer = (_q, _b, res) =>
          json(
            res,
            429,
            { error: { code: "rate_limited", message: "slow down" } },
            {
              "retry-after": "7",
            },
          )),
      { code: "rate_limited", status: 429, retryAfterMs: 7000 },
    ],
    [
      "a proxy's HTML error page is a bad_response",
      () => (answer = (_q, _b, res) => res.writeHead(502).end("<html>bad gateway</html>")),
      { code: "bad_response", status: 502 },
    ],
    [
      "a 200 without the identity fields is a bad_response",
      () => (answer = (_q, _b, res) => json(res, 200, { bot_name: "example" })),
      { code: "bad_response", status: 200 },
    ],
  ];
  for (const [name, arrange, expected] of errors) {
    test(name, async () => {
      arrange();
      const key = await generateAgentKey();
      await assert.rejects(
        postJoin({ server: url, ca: caPem, timeoutMs: 5000 }, requestFor(key)),
        (err: AgentError) => {
          for (const [field, value] of Object.entries(expected)) {
            assert.equal(err[field as keyof AgentError], value, field);
          }
          return true;
        },
      );
    });
  }

  test("a server certificate from another CA is refused: server_unreachable", async () => {
    const other = await createTestCa("not the server's CA");
    const key = await generateAgentKey();
    await assert.rejects(
      postJoin({ server: url, ca: other.certPem, timeoutMs: 5000 }, requestFor(key)),
      (err: AgentError) =>
        err.code === "server_unreachable" &&
        /certificate/i.test(err.message) &&
        /TLS: the server's certificate chain does not match ca_path \(--ca-file\): [A-Z_]+: /.test(
          err.message,
        ),
    );
  });

  test(
    "a server trickling its answer hits the deadline: server_unreachable",
    { timeout: 10_000 },
    async () => {
      // One byte every 200 ms keeps an idle timeout from ever firing; the deadline must still.
      const trickler = createHttpServer((_req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        const timer = setInterval(() => res.write(" "), 200);
        res.on("close", () => clearInterval(timer));
      });
      await new Promise<void>((resolve) => trickler.listen(0, "127.0.0.1", resolve));
      const port = (trickler.address() as AddressInfo).port;
      const key = await generateAgentKey();
      try {
        await assert.rejects(
          postJoin(
            { server: new URL(`http://127.0.0.1:${port}`), ca: undefined, timeoutMs: 600 },
            requestFor(key),
          ),
          (err: AgentError) =>
            err.code === "server_unreachable" &&
            /no complete answer within 600 ms/.test(err.message),
        );
      } finally {
        trickler.closeAllConnections();
        await new Promise<void>((resolve) => trickler.close(() => resolve()));
      }
    },
  );

  test("nothing listening: server_unreachable", async () => {
    const key = await generateAgentKey();
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await assert.rejects(
      postJoin(
        { server: new URL(`https://127.0.0.1:${port}`), ca: caPem, timeoutMs: 5000 },
        requestFor(key),
      ),
      (err: AgentError) => err.code === "server_unreachable" && /ECONNREFUSED/.test(err.message),
    );
  });
});

describe("runAgent on a fixed clock", () => {
  /** Deps on a virtual clock that `sleep` advances; `join` answers from `script` in order. */
  function harness(script: Array<"ok" | AgentError>, tokens: string[] = ["sa-token-1"]) {
    let nowMs = NOW.getTime();
    const sleeps: number[] = [];
    const logs: AgentLogRecord[] = [];
    const sentTokens: string[] = [];
    const stop = new AbortController();
    let calls = 0;
    let reads = 0;
    const deps: AgentDeps = {
      now: () => new Date(nowMs),
      sleep: async (ms) => {
        sleeps.push(ms);
        nowMs += ms;
        if (calls >= script.length) stop.abort();
      },
      random: () => 1,
      log: (record) => logs.push(record),
      generateKey: generateAgentKey,
      readToken: async () => tokens[Math.min(reads++, tokens.length - 1)]!,
      join: async (body) => {
        sentTokens.push(body.id_token);
        const step = script[calls++];
        if (step instanceof AgentError) throw step;
        return issue(body, `pod-${calls}`, nowMs);
      },
    };
    return { deps, sleeps, logs, sentTokens, stop };
  }

  function options(outputDir: string, extra: Partial<AgentOptions> = {}): AgentOptions {
    return {
      server: new URL("https://kube-join.example:3025"),
      tokenName: "example-bot",
      caFile: "/ca.pem",
      caPins: [],
      storage: { type: "directory", path: outputDir },
      outputs: [],
      diagAddr: undefined,
      ttlMs: HOUR,
      renewEveryMs: 20 * 60_000,
      backoffInitialMs: 1000,
      backoffMaxMs: 300_000,
      oneshot: false,
      insecure: false,
      tokenPath: "/var/run/secrets/tokens/join-sa-token",
      ...extra,
    };
  }

  const joins = (logs: AgentLogRecord[]) => logs.filter((l) => l["event"] === "agent.join");
  const refused = () =>
    new AgentError("no_matching_allow_rule", "default:other is not allowed", { status: 403 });

  test("--oneshot: one join, identity written, exit 0", async () => {
    const dir = tempDir("oneshot");
    const h = harness(["ok"]);
    assert.equal(await runAgent(options(dir, { oneshot: true }), h.deps, h.stop.signal), 0);
    assert.deepEqual(h.sleeps, []);
    const current = { summary: await currentSummary(dir) };
    assert.equal(current?.summary?.bot, "example");
    const [success] = joins(h.logs);
    assert.equal(success?.["outcome"], "success");
    assert.equal(success?.["pod"], "pod-1");
    assert.equal(success?.["tls_serial"], current?.summary?.tls_serial);
  });

  test("--oneshot: a refusal exits 1 and logs the server's code and message", async () => {
    const dir = tempDir("oneshot-fail");
    const h = harness([refused()]);
    assert.equal(await runAgent(options(dir, { oneshot: true }), h.deps, h.stop.signal), 1);
    const [failure] = joins(h.logs);
    assert.equal(failure?.level, "error");
    assert.equal(failure?.["code"], "no_matching_allow_rule");
    assert.equal(failure?.["message"], "default:other is not allowed");
    assert.equal(failure?.["status"], 403);
    assert.equal(await readCurrentSet(dir), undefined);
  });

  test("--oneshot stopped before its join succeeds exits 1; a stopped daemon exits 0", async () => {
    for (const [oneshot, code] of [
      [true, 1],
      [false, 0],
    ] as const) {
      const h = harness(["ok"]);
      h.stop.abort();
      const dir = tempDir("stopped");
      assert.equal(await runAgent(options(dir, { oneshot }), h.deps, h.stop.signal), code);
      assert.equal(h.logs.at(-1)?.["event"], "agent.stop");
    }
  });

  test("renews on schedule, backs off exponentially on failure, keeps the identity, recovers", async () => {
    const dir = tempDir("loop");
    const down = () => new AgentError("server_unreachable", "ECONNREFUSED");
    const h = harness(["ok", down(), down(), refused(), "ok", "ok"], ["t1", "t2", "t3"]);
    assert.equal(await runAgent(options(dir), h.deps, h.stop.signal), 0);
    // 20m after a success; 1s, 2s, 4s ceilings after failures (random() = 1: the ceiling).
    assert.deepEqual(h.sleeps, [1_200_000, 1000, 2000, 4000, 1_200_000, 1_200_000]);
    assert.deepEqual(
      joins(h.logs).map((l) => [l["outcome"], l["code"] ?? null, l["identity_valid"] ?? null]),
      [
        ["success", null, null],
        ["failure", "server_unreachable", true],
        ["failure", "server_unreachable", true],
        ["failure", "no_matching_allow_rule", true],
        ["success", null, null],
        ["success", null, null],
      ],
    );
    // The token file is read afresh for every join.
    assert.deepEqual(h.sentTokens, ["t1", "t2", "t3", "t3", "t3", "t3"]);
    assert.equal(podOf(await currentSummary(dir)), "pod-6");
    assert.equal(h.logs.at(-1)?.["event"], "agent.stop");
  });

  test("a failure never removes the identity: the set stays byte for byte", async () => {
    const dir = tempDir("keep");
    const h = harness(["ok", refused()]);
    const stopAfterFailure = h.deps.sleep;
    let sleeps = 0;
    let snapshot: string | undefined;
    const deps: AgentDeps = {
      ...h.deps,
      sleep: async (ms, signal) => {
        if (sleeps++ === 0) snapshot = readFileSync(join(dir, "tls.crt"), "utf8");
        await stopAfterFailure(ms, signal);
      },
    };
    await runAgent(options(dir), deps, h.stop.signal);
    assert.equal(readFileSync(join(dir, "tls.crt"), "utf8"), snapshot);
    assert.equal(joins(h.logs).at(-1)?.["code"], "no_matching_allow_rule");
  });

  // After a good join (identity valid for 1h) the agent sleeps 20m, then the join is refused
  // with a Retry-After; backoffDelay(1) is 1s here.
  const retryAfterCases: Array<[string, number, number, number]> = [
    ["Retry-After lengthens the backoff", 30_000, 60_000, 30_000],
    ["--backoff-max caps a long Retry-After", 3_600_000, 300_000, 300_000],
    ["never past the current identity's expiry (40m left)", 3_600_000, 2 * HOUR, 40 * 60_000],
  ];
  for (const [name, retryAfterMs, backoffMaxMs, expected] of retryAfterCases) {
    test(name, async () => {
      const dir = tempDir("retry-after");
      const limited = new AgentError("rate_limited", "slow down", { status: 429, retryAfterMs });
      const h = harness(["ok", limited]);
      await runAgent(options(dir, { backoffMaxMs }), h.deps, h.stop.signal);
      assert.deepEqual(h.sleeps, [20 * 60_000, expected]);
    });
  }

  test("a write that fails after the swap is logged as a warning; the join succeeded", async () => {
    const dir = tempDir("warn");
    const h = harness(["ok"]);
    const deps: AgentDeps = { ...h.deps, fs: failOnCall("symlink", 2)(fsPromises) };
    assert.equal(await runAgent(options(dir, { oneshot: true }), deps, h.stop.signal), 0);
    const warning = h.logs.find((l) => l.level === "warn");
    assert.equal(warning?.["event"], "agent.write_cleanup");
    assert.match(String(warning?.msg), /convenience links failed .*: ENOSPC$/);
    assert.equal(joins(h.logs)[0]?.["outcome"], "success");
  });

  test("renews sooner when the server granted less than asked: a third of what is left", async () => {
    const dir = tempDir("short");
    const h = harness(["ok"]);
    const shortLived: AgentDeps = {
      ...h.deps,
      join: async (body) => {
        const capped = { ...body, expires: new Date(NOW.getTime() + 30 * 60_000).toISOString() };
        return h.deps.join(capped, h.stop.signal);
      },
    };
    await runAgent(
      options(dir, { ttlMs: 24 * HOUR, renewEveryMs: 8 * HOUR }),
      shortLived,
      h.stop.signal,
    );
    assert.equal(h.sleeps[0], 10 * 60_000);
  });

  test("an unreadable token file is reported as token_unreadable", async () => {
    const dir = tempDir("token");
    const h = harness(["ok"]);
    const deps: AgentDeps = { ...h.deps, readToken: () => Promise.reject(enoent()) };
    assert.equal(await runAgent(options(dir, { oneshot: true }), deps, h.stop.signal), 1);
    const [failure] = joins(h.logs);
    assert.equal(failure?.["code"], "token_unreadable");
    assert.match(String(failure?.["message"]), /ENOENT/);
  });

  test("outputs: each join writes every output, then storage; memory storage is the guide's", async () => {
    const out = tempDir("identity-output");
    const h = harness(["ok"]);
    const run = options("", {
      oneshot: true,
      storage: { type: "memory" },
      outputs: [{ type: "identity", destination: { type: "directory", path: out } }],
    });
    assert.equal(await runAgent(run, h.deps, h.stop.signal), 0);
    const written = (await readCurrentSet(out))?.set;
    assert.deepEqual([...(written?.keys() ?? [])].sort(), [...IDENTITY_OUTPUT_FILE_NAMES].sort());
    const start = h.logs.find((l) => l["event"] === "agent.start");
    assert.equal(start?.["storage"], "memory");
    assert.deepEqual(start?.["outputs"], [`identity -> directory ${out}`]);
  });

  test("an output that cannot be written: write_failed, exit 1, that output's last set intact, storage not advanced", async () => {
    const out = tempDir("output-fails");
    const storageDir = tempDir("storage-kept");
    const outputs = [
      { type: "identity" as const, destination: { type: "directory" as const, path: out } },
    ];
    const first = harness(["ok"]);
    await runAgent(options(storageDir, { oneshot: true, outputs }), first.deps, first.stop.signal);
    const before = (await readCurrentSet(out))?.set;
    const storedBefore = await currentSummary(storageDir);
    const second = harness(["ok"]);
    const failing: AgentDeps = { ...second.deps, fs: failOnCall("open", 2)(fsPromises) };
    assert.equal(
      await runAgent(options(storageDir, { oneshot: true, outputs }), failing, second.stop.signal),
      1,
    );
    const [failure] = joins(second.logs);
    assert.equal(failure?.["code"], "write_failed");
    assert.match(
      String(failure?.["message"]),
      new RegExp(`writing the identity to ${out}: ENOSPC`),
    );
    assert.deepEqual((await readCurrentSet(out))?.set, before);
    assert.deepEqual(await currentSummary(storageDir), storedBefore);
  });

  test("observe hears the identity in use at start and after each attempt", async () => {
    const dir = tempDir("observe");
    const h = harness(["ok", refused()]);
    const events: unknown[] = [];
    await runAgent(options(dir), { ...h.deps, observe: (e) => events.push(e) }, h.stop.signal);
    const expires = (await currentSummary(dir))?.expires;
    assert.deepEqual(events, [
      { outcome: "start", identityExpires: undefined },
      { outcome: "success", identityExpires: expires },
      { outcome: "failure", identityExpires: expires },
    ]);
  });

  test("no log line carries the service-account token or a private key", async () => {
    const dir = tempDir("secrets");
    const h = harness(["ok", refused()], ["eyJhbGciOiJFUzI1NiJ9.secret-claims.sig"]);
    await runAgent(options(dir), h.deps, h.stop.signal);
    const text = JSON.stringify(h.logs);
    assert.doesNotMatch(text, /secret-claims/);
    assert.doesNotMatch(text, /PRIVATE KEY/);
  });
});

/** The summary of the identity a native set holds in `dir`, or undefined. */
async function currentSummary(dir: string): Promise<IdentitySummary | undefined> {
  return readNativeSummary((await readCurrentSet(dir))?.set);
}

function podOf(summary: IdentitySummary | undefined): string | undefined {
  return (summary?.join_attrs.kubernetes as { pod?: string } | undefined)?.pod;
}

function enoent(): Error {
  return Object.assign(new Error("no such file"), { code: "ENOENT" });
}

describe("docs/agent.md", () => {
  test("its table of the agent's own codes matches AGENT_LOCAL_CODES, meanings included", () => {
    const doc = readFileSync(new URL("../docs/agent.md", import.meta.url), "utf8").split("\n");
    const header = doc.findIndex((line) => /^\| Code +\| Meaning +\|$/.test(line));
    assert.ok(header >= 0, "docs/agent.md has a | Code | Meaning | table");
    const rows: Record<string, string> = {};
    for (const line of doc.slice(header + 2)) {
      const row = /^\| `([a-z_]+)` +\| (.*?) +\|$/.exec(line);
      if (row === null) break;
      rows[row[1]!] = row[2]!;
    }
    assert.deepEqual(rows, { ...AGENT_LOCAL_CODES });
  });
});

describe("the POST /v1/join wire contract (src/lib/join-wire.ts)", () => {
  test("is types only: importing it yields no values, so both sides share shapes, not code", async () => {
    const wire = await import("../src/lib/join-wire.ts");
    assert.deepEqual(Object.keys(wire), []);
    const text = readFileSync(new URL("../src/lib/join-wire.ts", import.meta.url), "utf8");
    assert.doesNotMatch(text, /^import /m, "imports nothing");
  });
});

describe("the agent's diag status", () => {
  test("not ready before an identity, ready while it is valid, not ready once it expired", () => {
    const status = new AgentStatus();
    const now = NOW.getTime();
    assert.equal(status.isReady(now), false);
    assert.doesNotMatch(status.metrics(now), /^kube_join_agent_identity_expiry_seconds /m);
    status.observe({ outcome: "start", identityExpires: undefined });
    status.observe({ outcome: "failure", identityExpires: undefined });
    status.observe({ outcome: "success", identityExpires: new Date(now + HOUR).toISOString() });
    assert.equal(status.isReady(now), true);
    assert.equal(status.isReady(now + HOUR + 1), false);
    const text = status.metrics(now + 1000);
    assert.match(text, /^kube_join_agent_joins_total\{result="success"\} 1$/m);
    assert.match(text, /^kube_join_agent_joins_total\{result="failure"\} 1$/m);
    assert.match(text, /^kube_join_agent_identity_expiry_seconds 3599$/m);
  });
});

describe("the agent's diag listener", () => {
  test("answers only GET/HEAD of its three paths; readiness follows the identity", async () => {
    const status = new AgentStatus();
    let now = NOW.getTime();
    const diag = await startAgentDiag({ host: "127.0.0.1", port: 0 }, status, () => now);
    const base = `http://127.0.0.1:${diag.port}`;
    try {
      const ask = async (path: string, init: RequestInit = {}) => {
        const res = await fetch(`${base}${path}`, init);
        return { status: res.status, body: await res.text(), allow: res.headers.get("allow") };
      };
      assert.deepEqual(await ask("/livez"), { status: 200, body: '{"status":"ok"}', allow: null });
      assert.equal((await ask("/readyz")).status, 503, "no identity yet");
      status.observe({ outcome: "success", identityExpires: new Date(now + HOUR).toISOString() });
      assert.equal((await ask("/readyz?verbose")).status, 200, "a query string is ignored");
      now += HOUR + 1;
      assert.equal((await ask("/readyz")).status, 503, "expired");
      assert.equal((await ask("/livez", { method: "HEAD" })).body, "");
      const post = await ask("/metrics", { method: "POST", body: "x" });
      assert.equal(post.status, 405);
      assert.equal(post.allow, "GET, HEAD");
      assert.match(post.body, /"code":"method_not_allowed"/);
      // Raw request targets (fetch would normalise dot segments): only exact paths answer.
      for (const path of ["/", "/metrics/", "/LIVEZ", "/%2e%2e/livez", "/readyz/../livez", "*"]) {
        const code = await new Promise<number | undefined>((resolve, reject) => {
          httpGet({ host: "127.0.0.1", port: diag.port, path }, (res) => {
            res.resume();
            resolve(res.statusCode);
          }).on("error", reject);
        });
        assert.equal(code, 404, path);
      }
      const metrics = await ask("/metrics");
      assert.match(metrics.body, /^# TYPE kube_join_agent_joins_total counter$/m);
    } finally {
      await diag.close();
    }
  });

  test("a port in use is an error at start, not a silent agent without diagnostics", async () => {
    const first = await startAgentDiag({ host: "127.0.0.1", port: 0 }, new AgentStatus());
    try {
      await assert.rejects(
        startAgentDiag({ host: "127.0.0.1", port: first.port }, new AgentStatus()),
        (err: NodeJS.ErrnoException) => err.code === "EADDRINUSE",
      );
    } finally {
      await first.close();
    }
  });
});
