/**
 * The guide's step 5 as written: the same tbot.yaml with its `kubernetes_secret` destination, run
 * as `kube-join agent -c tbot.yaml --oneshot` against the demo service, writes the Secret
 * `identity-output` to a stand-in Kubernetes API server (test/support/kube-apiserver.ts; no real
 * one runs here), and the real `kubectl` reads back every file byte for byte. The same join also
 * writes a directory output, so the bytes are compared with files of the same identity.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { strict as assert } from "node:assert";
import { after, before, describe, test } from "node:test";
import { parse as parseYaml, stringify } from "yaml";
import { IDENTITY_OUTPUT_FILE_NAMES } from "../src/agent/outputs/identity.ts";
import { DEMO_KEY_FILE, signDemoToken } from "../src/commands/demo-token.ts";
import { createTestCa, issueServerCertificate } from "./support/https-issuer.ts";
import { KubeApiServer } from "./support/kube-apiserver.ts";
import { CLI, DEMO_CLUSTER, REPO_ROOT, startService } from "./support/service.ts";
import type { ServiceProcess } from "./support/service.ts";
import { systemTool } from "./support/system-tools.ts";

const KUBECTL = systemTool("kubectl", "kubernetes-client");
const AGENT_TOKEN = "stand-in-token-of-the-tbot-service-account";

function run(
  file: string,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { env: { ...process.env, ...env }, timeout: 30_000, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) =>
        resolve({
          code: error ? (typeof error.code === "number" ? error.code : 1) : 0,
          stdout,
          stderr,
        }),
    );
  });
}

describe(
  "the guide's kubernetes_secret output, read back with kubectl",
  { timeout: 120_000 },
  () => {
    const dir = mkdtempSync(join(tmpdir(), "kube-join-guide-secret-"));
    const output = join(dir, "identity-output");
    const kubeconfig = join(dir, "kubeconfig");
    let service: ServiceProcess;
    let api: KubeApiServer;

    before(async () => {
      service = await startService();
      const ca = await createTestCa("stand-in API server CA");
      const tls = await issueServerCertificate(ca);
      api = await KubeApiServer.start({
        key: tls.keyPem,
        cert: tls.certPem,
        tokens: { [AGENT_TOKEN]: "system:serviceaccount:default:tbot" },
      });
      writeFileSync(
        kubeconfig,
        stringify({
          apiVersion: "v1",
          kind: "Config",
          "current-context": "stand-in",
          clusters: [
            {
              name: "stand-in",
              cluster: {
                server: api.url,
                "certificate-authority-data": Buffer.from(ca.certPem).toString("base64"),
              },
            },
          ],
          contexts: [{ name: "stand-in", context: { cluster: "stand-in", user: "tbot" } }],
          users: [{ name: "tbot", user: { token: AGENT_TOKEN } }],
        }),
      );
    });
    after(async () => {
      await api.close();
      await service.stop();
    });

    test(
      "`agent -c tbot.yaml --oneshot` writes identity-output; kubectl reads back every file",
      { skip: KUBECTL.skip },
      async () => {
        const configMap = parseYaml(
          readFileSync(
            join(REPO_ROOT, "deploy/kubernetes/guide/k8s-deployment-config.yaml"),
            "utf8",
          ),
        ) as { data: { "tbot.yaml": string } };
        const config = parseYaml(configMap.data["tbot.yaml"]) as Record<string, unknown> & {
          onboarding: Record<string, unknown>;
          outputs: unknown[];
        };
        delete config.onboarding["ca_path"]; // the demo's plain HTTP on loopback
        const tbotYaml = join(dir, "tbot.yaml");
        writeFileSync(
          tbotYaml,
          stringify({
            ...config,
            proxy_server: `127.0.0.1:${new URL(service.baseUrl).port}`,
            insecure: true,
            // The guide's Secret output as it stands, and a directory beside it for comparison.
            outputs: [
              ...config.outputs,
              { type: "identity", destination: { type: "directory", path: output } },
            ],
          }),
        );
        const tokenFile = join(dir, "join-sa-token");
        const demoKey = JSON.parse(readFileSync(DEMO_KEY_FILE, "utf8")) as Record<string, unknown>;
        writeFileSync(
          tokenFile,
          signDemoToken(demoKey, {
            namespace: "default",
            serviceAccount: "tbot",
            ttlSeconds: 600,
            audience: DEMO_CLUSTER,
            podName: "tbot-guide",
            nowMs: Date.now(),
          }),
        );
        const agent = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, [CLI, "agent", "-c", tbotYaml, "--oneshot"], {
            cwd: REPO_ROOT,
            env: {
              ...process.env,
              KUBERNETES_TOKEN_PATH: tokenFile,
              KUBECONFIG: kubeconfig,
              POD_NAMESPACE: "default",
            },
            stdio: ["ignore", "ignore", "pipe"],
          });
          let stderr = "";
          child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
          child.once("exit", (code) => resolve({ code, stderr }));
        });
        assert.equal(agent.code, 0, agent.stderr);
        assert.doesNotMatch(agent.stderr, /PRIVATE KEY/);

        const kubectl = (jsonpath: string) =>
          run(KUBECTL.path, [
            "--kubeconfig",
            kubeconfig,
            "--cache-dir",
            join(dir, "kubectl-cache"),
            "-n",
            "default",
            "get",
            "secret",
            "identity-output",
            "-o",
            `jsonpath=${jsonpath}`,
          ]);
        const type = await kubectl("{.type}");
        assert.equal(type.code, 0, type.stderr);
        assert.equal(type.stdout, "Opaque");
        const keys = await kubectl("{.data}");
        assert.deepEqual(
          Object.keys(JSON.parse(keys.stdout) as Record<string, string>).sort(),
          [...IDENTITY_OUTPUT_FILE_NAMES].sort(),
        );
        const generation = realpathSync(join(output, "current"));
        for (const name of IDENTITY_OUTPUT_FILE_NAMES) {
          const got = await kubectl(`{.data.${name.replace(/\./g, "\\.")}}`);
          assert.equal(got.code, 0, got.stderr);
          assert.deepEqual(
            Buffer.from(got.stdout, "base64"),
            readFileSync(join(generation, name)),
            `${name}: the Secret holds the bytes of the directory output of the same join`,
          );
        }
      },
    );
  },
);
