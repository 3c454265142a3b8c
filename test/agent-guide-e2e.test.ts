/**
 * The guide's agent side, end to end (issue 13, "Done when"): the demo service started as a
 * process (`node bin/kube-join.js serve`), the guide's own tbot.yaml from
 * deploy/kubernetes/guide/ with only its address, `insecure` and the output's destination
 * changed, run as `kube-join agent -c tbot.yaml --oneshot`; then the written `identity` output is
 * used with the real tools: ssh logs in to a real sshd, openssl verifies the certificate, and the
 * `identity` file splits by the order rules into pieces openssl and ssh-keygen accept.
 */
import { execFile, spawn } from "node:child_process";
import { X509Certificate, createPublicKey } from "node:crypto";
import {
  mkdtempSync,
  readFileSync,
  readdirSync,
  realpathSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { strict as assert } from "node:assert";
import { after, before, describe, test } from "node:test";
import { parse as parseYaml, stringify } from "yaml";
import { DEMO_KEY_FILE, signDemoToken } from "../src/commands/demo-token.ts";
import { CLI, DEMO_CLUSTER, REPO_ROOT, startService } from "./support/service.ts";
import type { ServiceProcess } from "./support/service.ts";
import { SSH, SSHD, SSH_KEYGEN, sshLogin, startSshd } from "./support/sshd.ts";
import { systemTool } from "./support/system-tools.ts";

const OPENSSL = systemTool("openssl", "openssl");
const PROMTOOL = systemTool("promtool", "prometheus");

interface Run {
  code: number | null;
  stderr: string;
}

function agent(args: readonly string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, "agent", ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.once("exit", (code) => resolve({ code, stderr }));
  });
}

function tool(
  file: string,
  args: readonly string[],
  input?: string,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({
        code: error ? (typeof error.code === "number" ? error.code : 1) : 0,
        out: `${stdout}${stderr}`,
      });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** The tbot.yaml of the guide's ConfigMap (deploy/kubernetes/guide/k8s-deployment-config.yaml). */
function guideTbotYaml(): Record<string, unknown> {
  const configMap = parseYaml(
    readFileSync(join(REPO_ROOT, "deploy/kubernetes/guide/k8s-deployment-config.yaml"), "utf8"),
  ) as { data: { "tbot.yaml": string } };
  return parseYaml(configMap.data["tbot.yaml"]) as Record<string, unknown>;
}

describe("the guide's tbot.yaml against the demo service", { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-guide-e2e-"));
  const output = join(dir, "identity-output");
  const tokenFile = join(dir, "join-sa-token");
  const configFile = join(dir, "tbot.yaml");
  const demoKey = JSON.parse(readFileSync(DEMO_KEY_FILE, "utf8")) as Record<string, unknown>;
  let service: ServiceProcess;
  let first: Run;

  function projectToken(serviceAccount = "tbot"): void {
    writeFileSync(
      tokenFile,
      signDemoToken(demoKey, {
        namespace: "default",
        serviceAccount,
        ttlSeconds: 600,
        audience: DEMO_CLUSTER,
        podName: "tbot-guide",
        nowMs: Date.now(),
      }),
      { mode: 0o600 },
    );
  }

  /** The guide's file with the changes the done-when names, plus `extra` keys. */
  function writeConfig(extra: Record<string, unknown> = {}, file = configFile): string {
    const config = guideTbotYaml();
    const onboarding = { ...(config["onboarding"] as Record<string, unknown>) };
    delete onboarding["ca_path"]; // plain HTTP to the loopback demo: no server CA
    const port = new URL(service.baseUrl).port;
    writeFileSync(
      file,
      stringify({
        ...config,
        onboarding,
        proxy_server: `127.0.0.1:${port}`,
        insecure: true,
        outputs: [{ type: "identity", destination: { type: "directory", path: output } }],
        ...extra,
      }),
    );
    return file;
  }

  before(async () => {
    service = await startService();
    projectToken();
    first = await agent(["-c", writeConfig(), "--oneshot"], { KUBERNETES_TOKEN_PATH: tokenFile });
  });
  after(async () => {
    await service.stop();
  });

  const file = (name: string): string =>
    readFileSync(join(realpathSync(join(output, "current")), name), "utf8");

  test("`agent -c tbot.yaml --oneshot` exits 0 and writes tbot's identity output", () => {
    assert.equal(first.code, 0, first.stderr);
    const generation = realpathSync(join(output, "current"));
    assert.deepEqual(readdirSync(generation).sort(), [
      "identity",
      "key",
      "key-cert.pub",
      "key.pub",
      "teleport-user-ca.crt",
      "tlscert",
    ]);
    for (const [name, mode] of [
      ["identity", 0o600],
      ["key", 0o600],
      ["tlscert", 0o644],
      ["key.pub", 0o644],
      ["key-cert.pub", 0o644],
      ["teleport-user-ca.crt", 0o644],
    ] as const) {
      assert.equal(statSync(join(generation, name)).mode & 0o777, mode, name);
      assert.equal(readFileSync(join(output, name), "utf8"), file(name), `${name} link`);
    }
    const start = first.stderr.split("\n").find((l) => l.includes('"agent.start"')) ?? "";
    assert.match(start, /"storage":"memory"/);
  });

  test(
    "ssh -i key -o CertificateFile=key-cert.pub logs in to a real sshd trusting the exported SSH CA",
    { skip: SSHD.skip || SSH.skip },
    async () => {
      const exported = (await (await fetch(`${service.baseUrl}/v1/ca`)).json()) as {
        ssh_ca_keys: string[];
      };
      // The identity file carries the same CA, as known_hosts @cert-authority lines.
      const fromIdentity = file("identity")
        .split("\n")
        .filter((l) => l.startsWith("@cert-authority "))
        .map((l) => l.replace(/^@cert-authority \* /, ""));
      assert.deepEqual(fromIdentity, exported.ssh_ca_keys);
      const sshd = await startSshd({
        trustedUserCaKeys: exported.ssh_ca_keys.join("\n"),
        authorizedPrincipals: ["root"],
      });
      try {
        const login = await sshLogin({
          port: sshd.port,
          user: sshd.user,
          keyFile: join(output, "key"),
          certFile: join(output, "key-cert.pub"),
        });
        assert.ok(login.ok, `${login.stderr}\n--- sshd ---\n${sshd.logs()}`);
      } finally {
        await sshd.stop();
      }
    },
  );

  test(
    "openssl verify accepts tlscert against the written TLS CA",
    { skip: OPENSSL.skip },
    async () => {
      const generation = realpathSync(join(output, "current"));
      const result = await tool(OPENSSL.path, [
        "verify",
        "-CAfile",
        join(generation, "teleport-user-ca.crt"),
        join(generation, "tlscert"),
      ]);
      assert.equal(result.code, 0, result.out);
      assert.match(result.out, /tlscert: OK/);
    },
  );

  test(
    "the identity file splits by the order rules into pieces openssl and ssh-keygen -L accept",
    { skip: OPENSSL.skip || SSH_KEYGEN.skip },
    async () => {
      const text = file("identity");
      // The order rules: private key PEM, SSH cert line, TLS cert PEM, SSH CA lines, TLS CA PEMs.
      const pieces: Array<{ kind: string; text: string }> = [];
      const lines = text.split("\n");
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i]!;
        if (line.startsWith("-----BEGIN ")) {
          const end = lines.findIndex((l, j) => j > i && l.startsWith("-----END "));
          pieces.push({
            kind: line.slice(11, -5),
            text: `${lines.slice(i, end + 1).join("\n")}\n`,
          });
          i = end;
        } else if (line.startsWith("@cert-authority ")) {
          pieces.push({ kind: "ssh-ca", text: `${line}\n` });
        } else if (/^[a-z0-9-]+-cert-v01@openssh\.com /.test(line)) {
          pieces.push({ kind: "ssh-cert", text: `${line}\n` });
        } else {
          assert.equal(line, "", `unexpected line ${i + 1} of identity`);
        }
      }
      const kinds = pieces.map((p) => p.kind);
      assert.deepEqual(kinds.slice(0, 3), ["PRIVATE KEY", "ssh-cert", "CERTIFICATE"]);
      const caLines = kinds.slice(3).filter((k) => k === "ssh-ca").length;
      assert.ok(caLines >= 1, "at least one SSH CA line");
      assert.deepEqual(kinds.slice(3, 3 + caLines), Array(caLines).fill("ssh-ca"));
      assert.ok(kinds.length > 3 + caLines, "at least one TLS CA PEM");
      assert.deepEqual(
        kinds.slice(3 + caLines),
        Array(kinds.length - 3 - caLines).fill("CERTIFICATE"),
      );

      const write = (name: string, contents: string): string => {
        const path = join(dir, name);
        writeFileSync(path, contents, { mode: 0o600 });
        return path;
      };
      const [key, sshCert, tlsCert, ...rest] = pieces;
      const key0 = write("piece-key.pem", key!.text);
      const keyCheck = await tool(OPENSSL.path, ["pkey", "-in", key0, "-noout", "-check"]);
      assert.equal(keyCheck.code, 0, keyCheck.out);
      assert.equal(
        createPublicKey(key!.text).export({ type: "spki", format: "pem" }),
        new X509Certificate(tlsCert!.text).publicKey.export({ type: "spki", format: "pem" }),
        "the key is the TLS certificate's",
      );
      const sshCheck = await tool(SSH_KEYGEN.path, [
        "-L",
        "-f",
        write("piece-cert.pub", sshCert!.text),
      ]);
      assert.equal(sshCheck.code, 0, sshCheck.out);
      assert.match(
        sshCheck.out,
        /Type: ecdsa-sha2-nistp256-cert-v01@openssh\.com user certificate/,
      );
      const caPems = rest.filter((p) => p.kind === "CERTIFICATE").map((p) => p.text);
      for (const [i, ca] of rest.filter((p) => p.kind === "ssh-ca").entries()) {
        // A known_hosts CA line: ssh-keygen finds it as a CA for any host, and its key parses.
        const known = write(`piece-known-${i}`, ca.text);
        const found = await tool(SSH_KEYGEN.path, ["-F", "host.example", "-f", known]);
        assert.equal(found.code, 0, found.out);
        assert.match(found.out, /found: line 1 CA/);
        const key = write(`piece-ca-${i}.pub`, ca.text.replace(/^@cert-authority \* /, ""));
        const fingerprint = await tool(SSH_KEYGEN.path, ["-l", "-f", key]);
        assert.equal(fingerprint.code, 0, fingerprint.out);
      }
      const verify = await tool(OPENSSL.path, [
        "verify",
        "-CAfile",
        write("piece-cas.pem", caPems.join("")),
        write("piece-tls.pem", tlsCert!.text),
      ]);
      assert.equal(verify.code, 0, verify.out);
      assert.equal(tlsCert!.text, file("tlscert"));
      assert.equal(sshCert!.text, file("key-cert.pub"));
    },
  );

  test("a refused join prints its code and message, exits 1, and keeps the identity as it was", async () => {
    const before = Object.fromEntries(
      ["identity", "tlscert", "key"].map((name) => [name, file(name)]),
    );
    const target = realpathSync(join(output, "current"));
    projectToken("intruder");
    try {
      const run = await agent(["-c", configFile, "--oneshot"], {
        KUBERNETES_TOKEN_PATH: tokenFile,
      });
      assert.equal(run.code, 1, run.stderr);
      assert.match(run.stderr, /kube-join agent: join failed: no_matching_allow_rule: \S/);
    } finally {
      projectToken();
    }
    assert.equal(realpathSync(join(output, "current")), target);
    for (const [name, text] of Object.entries(before)) assert.equal(file(name), text, name);
  });

  test("a missing service-account token file: token_unreadable, exit 1", async () => {
    const run = await agent(["-c", configFile, "--oneshot"], {
      KUBERNETES_TOKEN_PATH: join(dir, "no-such-token"),
    });
    assert.equal(run.code, 1);
    assert.match(
      run.stderr,
      /join failed: token_unreadable: cannot read the token file .*: ENOENT/,
    );
  });

  test("config errors are usage errors: exit 2, every problem with its position", async () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(
      bad,
      "version: v2\nonboarding:\n  join_method: kubernetes\n  tokn: x\nproxy_sever: a:1\n",
    );
    const run = await agent(["-c", bad, "--oneshot"], {});
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      new RegExp(`${bad}:4:3: onboarding\\.tokn: unknown field \\(did you mean "token"\\?\\)`),
    );
    assert.match(
      run.stderr,
      new RegExp(`${bad}:5:1: proxy_sever: unknown field \\(did you mean "proxy_server"\\?\\)`),
    );
    const missing = await agent(["-c", join(dir, "absent.yaml")], {});
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--config: cannot read .*absent\.yaml: ENOENT/);
  });

  test("a kubernetes_secret it cannot use (no namespace, no API here) is a usage error, nothing joined", async () => {
    const file2 = writeConfig(
      {
        outputs: [
          { type: "identity", destination: { type: "kubernetes_secret", name: "identity-output" } },
        ],
      },
      join(dir, "secret.yaml"),
    );
    const env = {
      KUBERNETES_TOKEN_PATH: tokenFile,
      POD_NAMESPACE: "",
      KUBECONFIG: "",
      KUBERNETES_SERVICE_HOST: "",
    };
    const run = await agent(["-c", file2, "--oneshot"], env);
    assert.equal(run.code, 2, run.stderr);
    assert.match(run.stderr, /kubernetes_secret/);
    assert.doesNotMatch(run.stderr, /"agent\.join"/);
  });

  test(
    "diag_addr serves /livez, /readyz (ready with an identity) and /metrics that promtool accepts",
    { skip: PROMTOOL.skip },
    async () => {
      const port = await freePort();
      const daemonConfig = writeConfig(
        { diag_addr: `127.0.0.1:${port}` },
        join(dir, "daemon.yaml"),
      );
      const child = spawn(process.execPath, [CLI, "agent", "-c", daemonConfig], {
        cwd: REPO_ROOT,
        env: { ...process.env, KUBERNETES_TOKEN_PATH: tokenFile },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      try {
        const base = `http://127.0.0.1:${port}`;
        const deadline = Date.now() + 20_000;
        let ready: Response | undefined;
        while (Date.now() < deadline) {
          ready = await fetch(`${base}/readyz`).catch(() => undefined);
          if (ready?.status === 200) break;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.equal(ready?.status, 200, stderr);
        assert.equal((await fetch(`${base}/livez`)).status, 200);
        assert.equal((await fetch(`${base}/nope`)).status, 404);
        const metrics = await (await fetch(`${base}/metrics`)).text();
        assert.match(metrics, /^kube_join_agent_joins_total\{result="success"\} 1$/m);
        assert.match(metrics, /^kube_join_agent_identity_expiry_seconds 3[0-9]{3}(\.\d+)?$/m);
        const check = await tool(PROMTOOL.path, ["check", "metrics"], metrics);
        assert.equal(check.code, 0, check.out);
      } finally {
        child.kill("SIGTERM");
      }
      assert.equal(await exited, 0, stderr);
    },
  );
});
