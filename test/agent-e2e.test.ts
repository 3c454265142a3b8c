/**
 * The agent against the real service, both as spawned processes (issue 7, "Tests"): kube-join
 * serves HTTPS with a test server certificate, the agent trusts only that CA (`--ca-file`), and a
 * projected-style token file signed by the TEST-ONLY demo cluster key stands in for the kubelet's.
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import {
  mkdtempSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { readFile } from "node:fs/promises";
import { get } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer } from "node:tls";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { strict as assert } from "node:assert";
import { DEMO_KEY_FILE, signDemoToken } from "../src/commands/demo-token.ts";
import { createTestCa, issueServerCertificate } from "./support/https-issuer.ts";
import type { TestCa } from "./support/https-issuer.ts";
import { CLI, DEMO_CLUSTER, DEMO_RESOURCES, REPO_ROOT, startService } from "./support/service.ts";
import type { ServiceProcess } from "./support/service.ts";
import { SSH, SSHD, sshLogin, startSshd } from "./support/sshd.ts";

const WAIT_MS = 20_000;

/** A spawned `kube-join agent ...` process (the built CLI) with its output collected. */
interface Spawned {
  readonly child: ChildProcess;
  stderr(): string;
  exited: Promise<number | null>;
}

function spawnAgent(args: readonly string[], env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, [CLI, "agent", ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let err = "";
  child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString("utf8")));
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  return { child, stderr: () => err, exited };
}

async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  context: () => string,
): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}\n--- context ---\n${context()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

function jsonLines(text: string): Array<Record<string, unknown>> {
  return text
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/**
 * The real service on TLS (`test/support/service.ts`), restartable on the same port and
 * directory (so the same CA), with its audit trail in a file that outlives each process.
 */
class Service {
  private process: ServiceProcess | undefined;
  private dir: string | undefined;
  joinUrl = "";

  constructor(private readonly tls: { certPem: string; keyPem: string }) {}

  async start(port = 0): Promise<void> {
    const configYaml = [
      `cluster_name: ${DEMO_CLUSTER}`,
      `listen_addr: 127.0.0.1:${port}`,
      "diag_addr: 127.0.0.1:0",
      "tls: { cert_file: ./server.crt, key_file: ./server.key }",
      `resources: [${JSON.stringify(DEMO_RESOURCES)}]`,
      "data_dir: ./data",
      "audit: { file: ./audit.log }",
      "shutdown_timeout: 5s",
      "",
    ].join("\n");
    this.process = await startService({
      configYaml,
      extraFiles: { "server.crt": this.tls.certPem, "server.key": this.tls.keyPem },
      ...(this.dir === undefined ? {} : { dir: this.dir }),
    });
    this.dir = this.process.dir;
    this.joinUrl = this.process.baseUrl;
  }

  get port(): number {
    return Number(new URL(this.joinUrl).port);
  }

  async stop(): Promise<void> {
    const running = this.process;
    this.process = undefined;
    if (running === undefined) return;
    const { code } = await running.stop();
    assert.equal(code, 0, running.stderr());
  }

  auditLines(): Array<Record<string, unknown>> {
    try {
      return jsonLines(readFileSync(join(this.dir ?? "", "audit.log"), "utf8"));
    } catch {
      return [];
    }
  }
}

describe("kube-join agent against the real service", { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-agent-e2e-"));
  const serverCaFile = join(dir, "server-ca.pem");
  const tokenFile = join(dir, "join-sa-token");
  const demoKey = JSON.parse(readFileSync(DEMO_KEY_FILE, "utf8")) as Record<string, unknown>;
  let serverCa: TestCa;
  let service: Service;
  const agents: Spawned[] = [];

  /** Writes a fresh projected-style token the way the kubelet does: a new file renamed in. */
  function projectToken(pod: string, serviceAccount = "tbot"): void {
    const jwt = signDemoToken(demoKey, {
      namespace: "default",
      serviceAccount,
      ttlSeconds: 600,
      audience: "example.teleport.sh",
      podName: pod,
      nowMs: Date.now(),
    });
    writeFileSync(`${tokenFile}.tmp`, jwt, { mode: 0o600 });
    renameSync(`${tokenFile}.tmp`, tokenFile);
  }

  function agent(output: string, extra: string[] = []): Spawned {
    const spawned = spawnAgent(
      [
        "--server",
        service.joinUrl,
        "--token",
        "example-bot",
        "--ca-file",
        serverCaFile,
        "--output",
        output,
        "--ttl",
        "10m",
        ...extra,
      ],
      { KUBERNETES_TOKEN_PATH: tokenFile },
    );
    agents.push(spawned);
    return spawned;
  }

  function identity(output: string): Record<string, unknown> | undefined {
    try {
      return JSON.parse(readFileSync(join(output, "current", "identity.json"), "utf8")) as Record<
        string,
        unknown
      >;
    } catch {
      return undefined;
    }
  }

  function podOf(id: Record<string, unknown> | undefined): unknown {
    return (id?.["join_attrs"] as { kubernetes?: { pod?: unknown } } | undefined)?.kubernetes?.pod;
  }

  before(async () => {
    serverCa = await createTestCa("kube-join e2e server CA");
    const { certPem, keyPem } = await issueServerCertificate(serverCa);
    writeFileSync(serverCaFile, serverCa.certPem);
    service = new Service({ certPem, keyPem });
    await service.start();
  });

  after(async () => {
    for (const a of agents) if (a.child.exitCode === null) a.child.kill("SIGKILL");
    await service.stop().catch(() => undefined);
  });

  const oneshotOutput = join(dir, "oneshot");

  test("--oneshot writes a TLS and SSH identity issued by the service's CA", async () => {
    projectToken("tbot-oneshot");
    const run = agent(oneshotOutput, ["--oneshot"]);
    assert.equal(await run.exited, 0, run.stderr());
    const id = identity(oneshotOutput);
    assert.equal(id?.["bot"], "example");
    assert.equal(podOf(id), "tbot-oneshot");
    for (const [name, mode] of [
      ["tls.key", 0o600],
      ["ssh_key", 0o600],
      ["tls.crt", 0o644],
      ["identity.json", 0o644],
    ] as const) {
      assert.equal(statSync(join(oneshotOutput, name)).mode & 0o777, mode, name);
    }
    const ca = await fetchCa(service.joinUrl, serverCa.certPem);
    const cert = new X509Certificate(readFileSync(join(oneshotOutput, "tls.crt")));
    assert.ok(cert.verify(new X509Certificate(ca.tls_ca_certs[0]!).publicKey));
    assert.equal(cert.serialNumber.toLowerCase(), id?.["tls_serial"]);
    assert.equal(
      readFileSync(join(oneshotOutput, "ssh_known_ca"), "utf8"),
      ca.ssh_ca_keys.map((k) => `@cert-authority * ${k}\n`).join(""),
    );
    const success = jsonLines(run.stderr()).find((l) => l["event"] === "agent.join");
    assert.equal(success?.["outcome"], "success");
  });

  test(
    "the SSH identity logs in to a real sshd trusting the exported CA",
    { skip: SSHD.skip || SSH.skip },
    async () => {
      const ca = await fetchCa(service.joinUrl, serverCa.certPem);
      // The bot's login (`root` in the demo bot) is the principal sshd accepts for its user.
      const sshd = await startSshd({
        trustedUserCaKeys: ca.ssh_ca_keys.join("\n"),
        authorizedPrincipals: ["root"],
      });
      try {
        // As docs/agent.md tells readers: resolve `current` once, read the set through it.
        const generation = realpathSync(join(oneshotOutput, "current"));
        const login = await sshLogin({
          port: sshd.port,
          user: sshd.user,
          keyFile: join(generation, "ssh_key"),
          certFile: join(generation, "ssh_cert"),
        });
        assert.ok(login.ok, `${login.stderr}\n--- sshd ---\n${sshd.logs()}`);
      } finally {
        await sshd.stop();
      }
    },
  );

  test("the TLS identity completes a mutual-TLS handshake with a server trusting the CA", async () => {
    const ca = await fetchCa(service.joinUrl, serverCa.certPem);
    const { certPem, keyPem } = await issueServerCertificate(serverCa);
    const server = createServer({
      cert: certPem,
      key: keyPem,
      ca: ca.tls_ca_certs,
      requestCert: true,
      rejectUnauthorized: true,
    });
    const peers: string[] = [];
    server.on("secureConnection", (socket) => {
      peers.push(String(socket.getPeerX509Certificate()?.subject));
      socket.end("hello bot\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect({
          host: "127.0.0.1",
          port: (server.address() as AddressInfo).port,
          ca: serverCa.certPem,
          cert: readFileSync(join(oneshotOutput, "tls.crt")),
          key: readFileSync(join(oneshotOutput, "tls.key")),
        });
        let data = "";
        socket.on("data", (chunk: Buffer) => (data += chunk.toString("utf8")));
        socket.on("end", () => resolve(data));
        socket.on("error", reject);
      });
      assert.equal(reply, "hello bot\n");
      assert.match(peers[0] ?? "", /example/);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  test("a refused join (wrong service account) is reported with its code and keeps the identity", async () => {
    const before = readFileSync(join(oneshotOutput, "tls.crt"), "utf8");
    projectToken("intruder-pod", "intruder");
    const run = agent(oneshotOutput, ["--oneshot"]);
    assert.equal(await run.exited, 1);
    assert.match(run.stderr(), /join failed: no_matching_allow_rule: /);
    const failure = jsonLines(run.stderr()).find((l) => l["event"] === "agent.join");
    assert.equal(failure?.["code"], "no_matching_allow_rule");
    assert.equal(failure?.["status"], 403);
    assert.equal(failure?.["identity_valid"], true);
    assert.equal(readFileSync(join(oneshotOutput, "tls.crt"), "utf8"), before);
    assert.equal(podOf(identity(oneshotOutput)), "tbot-oneshot");
  });

  test("renews with the rotated token, rides out an outage, recovers, and stops on SIGTERM", async () => {
    const output = join(dir, "daemon");
    projectToken("tbot-a");
    const daemon = agent(output, [
      "--renew-every",
      "1s",
      "--backoff-initial",
      "200ms",
      "--backoff-max",
      "1s",
    ]);
    const log = () => jsonLines(daemon.stderr());
    const context = () =>
      `${daemon.stderr()}\n--- service audit ---\n${JSON.stringify(service.auditLines())}`;

    await waitFor(
      "a first identity",
      () => (podOf(identity(output)) === "tbot-a" ? true : undefined),
      context,
    );

    // The kubelet rotates the token: the next renewal presents the new one.
    projectToken("tbot-b");
    await waitFor(
      "a renewal with the new token",
      () => (podOf(identity(output)) === "tbot-b" ? true : undefined),
      context,
    );
    assert.ok(
      service
        .auditLines()
        .some((l) => JSON.stringify(l).includes("tbot-b") && l["code"] === "TJ001I"),
      "the service audited a successful join from pod tbot-b",
    );
    const renewedWithB = identity(output);
    assert.ok(
      service.auditLines().some((l) => l["tls_serial"] === renewedWithB?.["tls_serial"]),
      "identity.json's serial is the one in the service's audit line",
    );

    // The server goes away: the agent backs off and keeps the identity it has.
    const port = service.port;
    await service.stop();
    const failuresBefore = log().filter((l) => l["outcome"] === "failure").length;
    await waitFor(
      "three failed renewals",
      () =>
        log().filter((l) => l["outcome"] === "failure").length >= failuresBefore + 3
          ? true
          : undefined,
      context,
    );
    const failures = log()
      .filter((l) => l["outcome"] === "failure")
      .slice(-3);
    for (const failure of failures) {
      assert.equal(failure["code"], "server_unreachable");
      assert.equal(failure["identity_valid"], true);
    }
    const delays = failures.map((f) => Number(f["retry_in_ms"]));
    assert.ok(
      delays.every((d) => d >= 100 && d <= 1000),
      `bounded backoff: ${delays.join(", ")}`,
    );
    const kept = identity(output);
    assert.equal(podOf(kept), "tbot-b");
    const keptCert = readFileSync(join(output, "tls.crt"), "utf8");
    assert.equal(new X509Certificate(keptCert).serialNumber.toLowerCase(), kept?.["tls_serial"]);

    // Back on the same port and data dir: the agent recovers with a certificate from the same CA.
    await service.start(port);
    await waitFor(
      "a renewal after the outage",
      () => (identity(output)?.["tls_serial"] !== kept?.["tls_serial"] ? true : undefined),
      context,
    );
    const ca = await fetchCa(service.joinUrl, serverCa.certPem);
    const renewed = new X509Certificate(readFileSync(join(output, "tls.crt")));
    assert.ok(renewed.verify(new X509Certificate(ca.tls_ca_certs[0]!).publicKey));
    assert.ok(
      new X509Certificate(keptCert).verify(new X509Certificate(ca.tls_ca_certs[0]!).publicKey),
    );

    // A refusal while running: reported with its code, the identity stays.
    projectToken("intruder-pod", "intruder");
    await waitFor(
      "a refused renewal",
      () => (log().some((l) => l["code"] === "no_matching_allow_rule") ? true : undefined),
      context,
    );
    const afterRefusal = identity(output);
    assert.equal(podOf(afterRefusal), "tbot-b");
    assert.equal(
      new X509Certificate(readFileSync(join(output, "tls.crt"))).serialNumber.toLowerCase(),
      afterRefusal?.["tls_serial"],
    );

    daemon.child.kill("SIGTERM");
    assert.equal(await daemon.exited, 0);
    assert.equal(log().at(-1)?.["event"], "agent.stop");
    // No line of the agent's log carries the token or a private key.
    const jwt = await readFile(tokenFile, "utf8");
    assert.ok(!daemon.stderr().includes(jwt.split(".")[1]!));
    assert.doesNotMatch(daemon.stderr(), /PRIVATE KEY/);
  });
});

function fetchCa(
  joinUrl: string,
  caPem: string,
): Promise<{ tls_ca_certs: string[]; ssh_ca_keys: string[] }> {
  return new Promise((resolve, reject) => {
    get(new URL("/v1/ca", joinUrl), { ca: caPem }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
      res.on("end", () => {
        try {
          resolve(JSON.parse(body) as { tls_ca_certs: string[]; ssh_ca_keys: string[] });
        } catch (err) {
          reject(err as Error);
        }
      });
    }).on("error", reject);
  });
}
