/**
 * The issue's end-to-end case for the `kubernetes_secret` destination: the real service and the
 * built `kube-join agent -c tbot.yaml --oneshot` (spawned processes), the guide's config with
 * step 5's `identity` output going to a Secret, written to the stand-in API server
 * (test/support/kube-apiserver.ts) and read back by the real kubectl byte for byte.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { strict as assert } from "node:assert";
import { promisify } from "node:util";
import { KubeApiServer } from "./support/kube-apiserver.ts";
import { runCli, startService } from "./support/service.ts";
import type { ServiceProcess } from "./support/service.ts";
import { systemTool } from "./support/system-tools.ts";
import { writeLoopbackServerCertificate } from "./support/tls.ts";

const openssl = systemTool("openssl", "openssl");
const kubectl = systemTool("kubectl", "kubernetes-client");
const run = promisify(execFile);

const TOKEN = "stand-in-agent-token";
const USER = "system:serviceaccount:default:tbot";
const SECRET = "identity-output";
const OUTPUT_FILES = [
  "identity",
  "tlscert",
  "key",
  "key.pub",
  "key-cert.pub",
  "teleport-user-ca.crt",
];

describe(
  "kube-join agent -c tbot.yaml --oneshot with a kubernetes_secret output",
  { skip: openssl.skip || kubectl.skip },
  () => {
    let dir: string;
    let service: ServiceProcess;
    let apiServer: KubeApiServer;
    let kubeconfig: string;
    let tbotYaml: string;
    let agentEnv: Record<string, string>;

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), "kube-join-agent-secret-"));
      const caPem = writeLoopbackServerCertificate(openssl.path, dir);
      apiServer = await KubeApiServer.start({
        key: readFileSync(join(dir, "server.key"), "utf8"),
        cert: caPem,
        tokens: { [TOKEN]: USER },
      });
      kubeconfig = join(dir, "kubeconfig");
      writeFileSync(
        kubeconfig,
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          "current-context": "stand-in",
          clusters: [
            {
              name: "stand-in",
              cluster: {
                server: apiServer.url,
                "certificate-authority-data": Buffer.from(caPem).toString("base64"),
              },
            },
          ],
          users: [{ name: "tbot", user: { token: TOKEN } }],
          contexts: [{ name: "stand-in", context: { cluster: "stand-in", user: "tbot" } }],
        }),
      );
      service = await startService();
      const demoToken = await runCli(["demo-token"]);
      assert.equal(demoToken.code, 0, demoToken.stderr);
      writeFileSync(join(dir, "join-sa-token"), demoToken.stdout);
      const { host } = new URL(service.baseUrl);
      // The guide's step 4 tbot.yaml with step 5's output; only the address is the demo's.
      tbotYaml = join(dir, "tbot.yaml");
      writeFileSync(
        tbotYaml,
        [
          "version: v2",
          "onboarding:",
          "  join_method: kubernetes",
          "  token: example-bot",
          "storage:",
          "  type: memory",
          `proxy_server: ${host}`,
          "insecure: true",
          "outputs:",
          "  - type: identity",
          "    destination:",
          "      type: kubernetes_secret",
          `      name: ${SECRET}`,
          "",
        ].join("\n"),
      );
      agentEnv = {
        KUBERNETES_TOKEN_PATH: join(dir, "join-sa-token"),
        KUBECONFIG: kubeconfig,
        POD_NAMESPACE: "default",
      };
    });
    after(async () => {
      await service?.stop();
      await apiServer?.close();
    });

    function kubectlGet(jsonpath: string): Promise<string> {
      return run(
        kubectl.path,
        [
          "--kubeconfig",
          kubeconfig,
          "--cache-dir",
          join(dir, "kubectl-cache"),
          "get",
          "secret",
          SECRET,
          "-n",
          "default",
          "-o",
          `jsonpath=${jsonpath}`,
        ],
        { encoding: "utf8", env: { PATH: process.env["PATH"], HOME: dir } },
      ).then((r) => r.stdout);
    }

    test("writes the identity output into the Secret, and kubectl reads it back byte for byte", async () => {
      const result = await runCli(["agent", "-c", tbotYaml, "--oneshot"], { env: agentEnv });
      assert.equal(result.code, 0, result.stderr);
      const stored = apiServer.secret("default", SECRET);
      assert.ok(stored !== undefined, "the Secret exists");
      assert.equal(stored.type, "Opaque");
      assert.deepEqual(Object.keys(stored.data).sort(), [...OUTPUT_FILES].sort());
      assert.equal(await kubectlGet("{.type}"), "Opaque");
      for (const name of OUTPUT_FILES) {
        const viaKubectl = Buffer.from(
          await kubectlGet(`{.data.${name.replace(/\./g, "\\.")}}`),
          "base64",
        );
        assert.ok(
          viaKubectl.equals(Buffer.from(stored.data[name]!, "base64")),
          `${name}: kubectl read other bytes`,
        );
        assert.ok(viaKubectl.length > 0, `${name} is not empty`);
      }
      // What kubectl read is a working identity: the TLS certificate verifies against the CA file
      // of the same Secret.
      writeFileSync(
        join(dir, "tlscert"),
        Buffer.from(await kubectlGet("{.data.tlscert}"), "base64"),
      );
      writeFileSync(
        join(dir, "ca.crt"),
        Buffer.from(await kubectlGet("{.data.teleport-user-ca\\.crt}"), "base64"),
      );
      const verify = await run(
        openssl.path,
        ["verify", "-CAfile", join(dir, "ca.crt"), join(dir, "tlscert")],
        {
          encoding: "utf8",
        },
      );
      assert.match(verify.stdout, /: OK/);
      // Nothing of the identity went to the agent's log.
      const key = Buffer.from(stored.data["key"]!, "base64").toString("utf8");
      for (const line of key.split("\n").filter((l) => l.length > 20)) {
        assert.ok(!result.stderr.includes(line), "private key material in the log");
      }
    });

    test("a second run renews the whole Secret in one apply carrying its resourceVersion", async () => {
      const before = apiServer.secret("default", SECRET);
      assert.ok(before !== undefined);
      const requests = apiServer.requests.length;
      const result = await runCli(["agent", "-c", tbotYaml, "--oneshot"], { env: agentEnv });
      assert.equal(result.code, 0, result.stderr);
      const after = apiServer.secret("default", SECRET);
      assert.notEqual(after?.data["tlscert"], before.data["tlscert"], "a new certificate");
      const applies = apiServer.requests.slice(requests).filter((r) => r.method === "PATCH");
      assert.equal(applies.length, 1);
      const metadata = (applies[0]?.body as { metadata: Record<string, unknown> }).metadata;
      assert.equal(metadata["resourceVersion"], before.resourceVersion);
    });

    test("the Secret API refusing (403): exit 1, the refusal explained, the Secret intact", async () => {
      const before = apiServer.secret("default", SECRET);
      apiServer.setVerbs(USER, ["get"]);
      try {
        const result = await runCli(["agent", "-c", tbotYaml, "--oneshot"], { env: agentEnv });
        assert.equal(result.code, 1, result.stderr);
        assert.match(
          result.stderr,
          /kube-join agent: join failed: write_failed: kubernetes_secret default\/identity-output: writing the Secret: the Kubernetes API refused to patch secrets in namespace "default" .*verbs: \["patch"\]/,
        );
      } finally {
        apiServer.setVerbs(USER, ["get", "create", "patch"]);
      }
      assert.deepEqual(apiServer.secret("default", SECRET), before);
    });

    test("the Secret API down: exit 1 with a clear error, and the Secret intact", async () => {
      const before = apiServer.secret("default", SECRET);
      await apiServer.pause();
      try {
        const result = await runCli(["agent", "-c", tbotYaml, "--oneshot"], { env: agentEnv });
        assert.equal(result.code, 1, result.stderr);
        assert.match(
          result.stderr,
          /cannot reach the Kubernetes API at https:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/,
        );
      } finally {
        await apiServer.resume();
      }
      assert.deepEqual(apiServer.secret("default", SECRET), before);
    });

    test("no namespace and no POD_NAMESPACE: a usage error (exit 2) before any join", async () => {
      // An empty POD_NAMESPACE is as good as none (the tbot.yaml names no namespace).
      const result = await runCli(["agent", "-c", tbotYaml, "--oneshot"], {
        env: { ...agentEnv, POD_NAMESPACE: "" },
      });
      assert.equal(result.code, 2, result.stderr);
      assert.match(
        result.stderr,
        /no namespace: set the destination's namespace, or POD_NAMESPACE/,
      );
    });
  },
);
