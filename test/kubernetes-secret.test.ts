import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { strict as assert } from "node:assert";
import { promisify } from "node:util";
import { AgentError } from "../src/agent/agent-error.ts";
import type { Destination, FileSet } from "../src/agent/destinations/destination.ts";
import { createKubernetesSecretDestination } from "../src/agent/destinations/kubernetes-secret.ts";
import { createKubernetesApiClient } from "../src/agent/kubernetes/api-client.ts";
import { resolveKubernetesConnection } from "../src/agent/kubernetes/environment.ts";
import { FIELD_MANAGER, applySecret, getSecret } from "../src/agent/kubernetes/secrets.ts";
import { ConfigError } from "../src/errors.ts";
import { KubeApiServer } from "./support/kube-apiserver.ts";
import type { SecretVerb } from "./support/kube-apiserver.ts";
import { systemTool } from "./support/system-tools.ts";
import { writeLoopbackServerCertificate } from "./support/tls.ts";

const openssl = systemTool("openssl", "openssl");
const kubectl = systemTool("kubectl", "kubernetes-client");
const run = promisify(execFile);

const USER = "system:serviceaccount:default:tbot";
const TOKEN = `agent-token-${randomBytes(8).toString("hex")}`;
const ROTATED_TOKEN = `rotated-token-${randomBytes(8).toString("hex")}`;
const NAME = "identity-output";

function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `kube-join-kubesecret-${prefix}-`));
}

/** A set shaped like the identity output: text PEM-ish files and binary bytes, all distinct. */
function identitySet(generation: string): FileSet {
  return new Map([
    [
      "identity",
      {
        contents: Buffer.from(`identity ${generation}\n${randomBytes(24).toString("hex")}\n`),
        mode: 0o600,
      },
    ],
    [
      "tlscert",
      {
        contents: Buffer.from(
          `-----BEGIN CERTIFICATE-----\n${generation}\n-----END CERTIFICATE-----\n`,
        ),
        mode: 0o644,
      },
    ],
    [
      "key",
      { contents: Buffer.concat([Buffer.from([0, 255, 10, 13]), randomBytes(64)]), mode: 0o600 },
    ],
    [
      "key-cert.pub",
      { contents: Buffer.from(`ssh-ed25519-cert-v01@openssh.com ${generation}\n`), mode: 0o644 },
    ],
  ]);
}

function base64Of(set: FileSet): Record<string, string> {
  return Object.fromEntries(
    [...set].map(([name, file]) => [name, file.contents.toString("base64")]),
  );
}

/** Every form a secret could leak in through a message: raw text, base64, each PEM body line. */
function assertNoLeak(message: string, set: FileSet): void {
  for (const [name, { contents }] of set) {
    assert.ok(
      !message.includes(contents.toString("base64")),
      `${name} (base64) leaked: ${message}`,
    );
    for (const line of contents
      .toString("utf8")
      .split("\n")
      .filter((l) => l.length >= 8)) {
      if (/^-----/.test(line)) continue;
      assert.ok(!message.includes(line), `${name} leaked: ${message}`);
    }
  }
  assert.ok(
    !message.includes(TOKEN) && !message.includes(ROTATED_TOKEN),
    `the token leaked: ${message}`,
  );
}

function writeFailure(pattern: RegExp, set?: FileSet) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof AgentError, `not an AgentError: ${String(err)}`);
    assert.equal(err.code, "write_failed");
    assert.match(err.message, pattern);
    if (set !== undefined) assertNoLeak(err.message, set);
    return true;
  };
}

interface Kubeconfig {
  readonly path: string;
}

function writeKubeconfig(
  dir: string,
  server: string,
  caPem: string,
  user: Record<string, unknown> = { token: TOKEN },
  file = "kubeconfig",
): Kubeconfig {
  const path = join(dir, file);
  writeFileSync(
    path,
    [
      "apiVersion: v1",
      "kind: Config",
      "current-context: stand-in",
      "clusters:",
      "  - name: stand-in",
      "    cluster:",
      `      server: ${server}`,
      `      certificate-authority-data: ${Buffer.from(caPem).toString("base64")}`,
      "contexts:",
      "  - name: stand-in",
      "    context: { cluster: stand-in, user: agent }",
      "users:",
      "  - name: agent",
      `    user: ${JSON.stringify(user)}`,
      "",
    ].join("\n"),
  );
  return { path };
}

describe(
  "kubernetes_secret destination against the stand-in API server",
  { skip: openssl.skip },
  () => {
    let dir: string;
    let server: KubeApiServer;
    let caPem: string;
    let otherCaPem: string;
    let kubeconfig: Kubeconfig;

    before(async () => {
      dir = tempDir("main");
      mkdirSync(join(dir, "server"));
      mkdirSync(join(dir, "other"));
      caPem = writeLoopbackServerCertificate(openssl.path, join(dir, "server"));
      otherCaPem = writeLoopbackServerCertificate(openssl.path, join(dir, "other"));
      server = await KubeApiServer.start({
        key: readFileSync(join(dir, "server", "server.key"), "utf8"),
        cert: caPem,
        tokens: { [TOKEN]: USER, [ROTATED_TOKEN]: USER },
        namespaces: ["tbot-ns", "explicit-ns"],
      });
      kubeconfig = writeKubeconfig(dir, server.url, caPem);
    });
    after(async () => {
      await server.close();
    });

    let counter = 0;
    function destination(
      overrides: {
        name?: string;
        namespace?: string | undefined;
        labels?: Record<string, string>;
        env?: NodeJS.ProcessEnv;
      } = {},
    ): Destination & { name: string } {
      counter += 1;
      const name = overrides.name ?? `${NAME}-${counter}`;
      const built = createKubernetesSecretDestination({
        name,
        namespace: "namespace" in overrides ? overrides.namespace : "default",
        labels: overrides.labels ?? {},
        env: overrides.env ?? { KUBECONFIG: kubeconfig.path },
      });
      return Object.assign(built, { name });
    }

    function runKubectl(args: readonly string[]): Promise<{ stdout: string; stderr: string }> {
      return run(
        kubectl.path,
        ["--kubeconfig", kubeconfig.path, "--cache-dir", join(dir, "kubectl-cache"), ...args],
        { encoding: "utf8", env: { PATH: process.env["PATH"], HOME: dir } },
      );
    }

    function allow(verbs: readonly SecretVerb[]): void {
      server.setVerbs(USER, verbs);
    }

    test("a write is one server-side apply: Opaque, one data key per file, field manager, force, labels", async () => {
      const target = destination({ labels: { "app.kubernetes.io/name": "tbot" } });
      const set = identitySet("one");
      const before = server.requests.length;
      await target.write(set);
      const stored = server.secret("default", target.name);
      assert.ok(stored !== undefined);
      assert.equal(stored.type, "Opaque");
      assert.deepEqual(stored.data, base64Of(set));
      assert.deepEqual(stored.labels, { "app.kubernetes.io/name": "tbot" });
      assert.deepEqual(Object.keys(stored.managers), [`${FIELD_MANAGER}/Apply`]);
      const writes = server.requests.slice(before).filter((r) => r.method !== "GET");
      assert.equal(writes.length, 1, "exactly one write request per set");
      const [apply] = writes;
      assert.equal(apply?.method, "PATCH");
      assert.equal(apply?.contentType, "application/apply-patch+yaml");
      assert.deepEqual(apply?.query, { fieldManager: "kube-join-agent", force: "true" });
      const metadata = (apply?.body as { metadata: Record<string, unknown> }).metadata;
      assert.equal(metadata["resourceVersion"], undefined, "a new Secret is applied without one");
      assert.equal(target.description, `kubernetes_secret default/${target.name}`);
    });

    test("read returns the set written, byte for byte (for resuming), and undefined before", async () => {
      const target = destination();
      assert.equal(await target.read(), undefined);
      const set = identitySet("resume");
      await target.write(set);
      const read = await target.read();
      assert.ok(read !== undefined);
      assert.deepEqual([...read.keys()].sort(), [...set.keys()].sort());
      for (const [name, file] of set) {
        assert.ok(read.get(name)?.contents.equals(file.contents), name);
        assert.equal(read.get(name)?.mode, 0o600, "a Secret has no modes: never wider than 0600");
      }
    });

    test(
      "kubectl reads back what the destination wrote, byte for byte",
      { skip: kubectl.skip },
      async () => {
        const target = destination();
        const set = identitySet("kubectl");
        await target.write(set);
        const kubectlGet = async (jsonpath: string): Promise<string> =>
          (
            await runKubectl([
              "get",
              "secret",
              target.name,
              "-n",
              "default",
              "-o",
              `jsonpath=${jsonpath}`,
            ])
          ).stdout;
        assert.equal(await kubectlGet("{.type}"), "Opaque");
        for (const [name, file] of set) {
          // jsonpath needs the dots of `key-cert.pub` escaped.
          const encoded = await kubectlGet(`{.data.${name.replace(/\./g, "\\.")}}`);
          assert.ok(Buffer.from(encoded, "base64").equals(file.contents), `${name} differs`);
        }
      },
    );

    test(
      "kubectl reads the stand-in's 403 Status as a real client reads the real one",
      { skip: kubectl.skip },
      async () => {
        allow([]);
        try {
          await assert.rejects(
            runKubectl(["get", "secret", "anything", "-n", "default"]),
            (err: { stderr: string }) => {
              assert.match(
                err.stderr,
                /Error from server \(Forbidden\): secrets "anything" is forbidden: User "system:serviceaccount:default:tbot" cannot get resource "secrets" in API group "" in the namespace "default"/,
              );
              return true;
            },
          );
        } finally {
          allow(["get", "create", "patch"]);
        }
      },
    );

    test(
      "a Secret an admin applied with kubectl is taken over (force); the admin's other keys stay",
      { skip: kubectl.skip },
      async () => {
        const target = destination();
        const manifest = join(dir, `${target.name}.json`);
        writeFileSync(
          manifest,
          JSON.stringify({
            apiVersion: "v1",
            kind: "Secret",
            metadata: { name: target.name, namespace: "default" },
            type: "Opaque",
            data: {
              tlscert: Buffer.from("stale").toString("base64"),
              note: Buffer.from("admin").toString("base64"),
            },
          }),
        );
        const adminApply = (): Promise<unknown> =>
          runKubectl([
            "apply",
            "--server-side",
            "--field-manager=admin",
            "--validate=false",
            "-f",
            manifest,
          ]);
        await adminApply();
        assert.deepEqual(
          server.secret("default", target.name)?.managers["admin/Apply"]?.slice().sort(),
          ["data.note", "data.tlscert", "type"],
        );
        const set = identitySet("takeover");
        await target.write(set);
        const stored = server.secret("default", target.name);
        assert.deepEqual(stored?.data, {
          ...base64Of(set),
          note: Buffer.from("admin").toString("base64"),
        });
        assert.deepEqual(
          stored?.managers[`${FIELD_MANAGER}/Apply`]?.slice().sort(),
          ["type", ...[...set.keys()].map((k) => `data.${k}`)].sort(),
        );
        // The same apply again, without --force-conflicts, now conflicts with the agent: kubectl
        // reads the stand-in's conflict Status as it reads the real server's.
        await assert.rejects(adminApply(), (err: { stderr: string }) => {
          assert.match(
            err.stderr,
            /Apply failed with 1 conflict: conflict with "kube-join-agent" using v1: \.data\.tlscert/,
          );
          return true;
        });
      },
    );

    test("a renewal replaces the whole set in one apply carrying the resourceVersion read", async () => {
      const target = destination();
      const first = identitySet("first");
      await target.write(first);
      const firstVersion = server.secret("default", target.name)?.resourceVersion;
      const renewal = new Map(identitySet("second"));
      renewal.delete("key-cert.pub"); // a file the new set no longer has is removed with it
      const before = server.requests.length;
      await target.write(renewal);
      const stored = server.secret("default", target.name);
      assert.deepEqual(stored?.data, base64Of(renewal));
      assert.notEqual(stored?.resourceVersion, firstVersion);
      const applies = server.requests.slice(before).filter((r) => r.method === "PATCH");
      assert.equal(applies.length, 1);
      assert.equal(
        (applies[0]?.body as { metadata: Record<string, unknown> }).metadata["resourceVersion"],
        firstVersion,
      );
    });

    test("a conflict (409) leaves the other writer's Secret intact, and the next attempt succeeds", async () => {
      const target = destination();
      const first = identitySet("before-conflict");
      await target.write(first);
      const intruder = { tlscert: Buffer.from("someone else's").toString("base64") };
      server.beforeNext("PATCH", () =>
        server.updateSecretAs("kubectl-edit", "default", target.name, intruder),
      );
      const renewal = identitySet("lost-race");
      await assert.rejects(target.write(renewal), writeFailure(/409 Conflict/, renewal));
      assert.deepEqual(
        server.secret("default", target.name)?.data,
        intruder,
        "not half of a renewal",
      );
      await target.write(renewal);
      assert.deepEqual(server.secret("default", target.name)?.data, base64Of(renewal));
    });

    test("the conflict surfaces as an AgentError the agent's backoff retries (write_failed)", async () => {
      const target = destination();
      await target.write(identitySet("a"));
      server.beforeNext("PATCH", () => server.updateSecretAs("other", "default", target.name, {}));
      const err = await target.write(identitySet("b")).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof AgentError);
      assert.equal(err.code, "write_failed");
      assert.match(err.message, /the next attempt starts from a fresh read/);
    });

    test("a deleted Secret is created again", async () => {
      const target = destination();
      await target.write(identitySet("before-delete"));
      server.deleteSecret("default", target.name);
      assert.equal(await target.read(), undefined);
      const set = identitySet("after-delete");
      await target.write(set);
      assert.deepEqual(server.secret("default", target.name)?.data, base64Of(set));
    });

    test("a Secret deleted between the read and the apply is created by that apply", async () => {
      const target = destination();
      await target.write(identitySet("before-race"));
      server.beforeNext("PATCH", () => server.deleteSecret("default", target.name));
      const set = identitySet("after-race");
      await target.write(set);
      assert.deepEqual(server.secret("default", target.name)?.data, base64Of(set));
    });

    test("403 names the verb, resource, namespace, account and the Role rule that allows it", async () => {
      const target = destination();
      const set = identitySet("forbidden");
      await target.write(identitySet("allowed"));
      const storedBefore = server.secret("default", target.name);
      allow(["get"]);
      try {
        await assert.rejects(
          target.write(set),
          writeFailure(
            new RegExp(
              `refused to patch secrets in namespace "default" for ${USER} \\(403 Forbidden\\)\\. A Role in namespace "default" with the rule \\{apiGroups: \\[""\\], resources: \\["secrets"\\], resourceNames: \\["${target.name}"\\], verbs: \\["patch"\\]\\}`,
            ),
            set,
          ),
        );
        assert.deepEqual(server.secret("default", target.name), storedBefore);
        allow(["get", "patch"]);
        const fresh = destination();
        await assert.rejects(
          fresh.write(set),
          writeFailure(
            /refused to create secrets in namespace "default".*\{apiGroups: \[""\], resources: \["secrets"\], verbs: \["create"\]\}/,
            set,
          ),
        );
        allow([]);
        await assert.rejects(
          target.read(),
          writeFailure(/refused to get secrets in namespace "default"/),
        );
      } finally {
        allow(["get", "create", "patch"]);
      }
    });

    test("credentials the API server does not accept: 401, named as such, the token never shown", async () => {
      const config = writeKubeconfig(tempDir("badtoken"), server.url, caPem, {
        token: "not-a-known-token",
      });
      const target = destination({ env: { KUBECONFIG: config.path } });
      await assert.rejects(
        target.write(identitySet("x")),
        (err: AgentError) =>
          /did not accept the agent's credentials.*401 Unauthorized/.test(err.message) &&
          !err.message.includes("not-a-known-token"),
      );
    });

    test("API down (connection refused): a clear error, and the previous Secret is intact", async () => {
      const target = destination();
      const previous = identitySet("previous");
      await target.write(previous);
      await server.pause();
      const renewal = identitySet("unsent");
      try {
        await assert.rejects(
          target.write(renewal),
          writeFailure(
            new RegExp(
              `cannot reach the Kubernetes API at ${server.url.replace(/[.]/g, "\\.")}: ECONNREFUSED`,
            ),
            renewal,
          ),
        );
      } finally {
        await server.resume();
      }
      assert.deepEqual(server.secret("default", target.name)?.data, base64Of(previous));
      const read = await target.read();
      assert.ok(read?.get("key")?.contents.equals(previous.get("key")!.contents));
    });

    test("a server certificate from another CA fails TLS verification; nothing is sent", async () => {
      const config = writeKubeconfig(tempDir("wrongca"), server.url, otherCaPem);
      const target = destination({ env: { KUBECONFIG: config.path } });
      const before = server.requests.length;
      await assert.rejects(
        target.write(identitySet("tls")),
        writeFailure(/presented a certificate that the cluster CA .* does not vouch for/),
      );
      assert.equal(server.requests.length, before, "no request reached the server");
      assert.equal(server.secret("default", target.name), undefined);
    });

    test("an existing Secret of another type: the immutable type is named, the Secret untouched", async () => {
      const name = `typed-${counter}`;
      const client = createKubernetesApiClient(
        resolveKubernetesConnection({ KUBECONFIG: kubeconfig.path }),
      );
      const created = await client.request({
        method: "POST",
        path: "/api/v1/namespaces/default/secrets",
        body: JSON.stringify({
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name },
          type: "kubernetes.io/tls",
          data: { "tls.crt": "", "tls.key": "" },
        }),
      });
      assert.equal(created.status, 201);
      const target = destination({ name });
      await assert.rejects(
        target.write(identitySet("typed")),
        writeFailure(/422 Invalid: type\).*type cannot change/),
      );
      assert.equal(server.secret("default", name)?.type, "kubernetes.io/tls");
    });

    test("POD_NAMESPACE when the destination names none; the destination's namespace wins", async () => {
      const fallback = destination({
        namespace: undefined,
        env: { KUBECONFIG: kubeconfig.path, POD_NAMESPACE: "tbot-ns" },
      });
      assert.equal(fallback.description, `kubernetes_secret tbot-ns/${fallback.name}`);
      await fallback.write(identitySet("pod-ns"));
      assert.ok(server.secret("tbot-ns", fallback.name) !== undefined);
      const explicit = destination({
        namespace: "explicit-ns",
        env: { KUBECONFIG: kubeconfig.path, POD_NAMESPACE: "tbot-ns" },
      });
      await explicit.write(identitySet("explicit"));
      assert.ok(server.secret("explicit-ns", explicit.name) !== undefined);
      assert.equal(server.secret("tbot-ns", explicit.name), undefined);
    });

    test("a namespace that does not exist: the 404 is explained", async () => {
      const target = destination({ namespace: "no-such-ns" });
      await assert.rejects(
        target.write(identitySet("nons")),
        writeFailure(/404 NotFound: does the namespace "no-such-ns" exist/),
      );
    });

    test("token rotation: the in-cluster token is read afresh for every request", async () => {
      const serviceAccount = tempDir("sa");
      writeFileSync(join(serviceAccount, "ca.crt"), caPem);
      writeFileSync(join(serviceAccount, "token"), `${TOKEN}\n`);
      const port = new URL(server.url).port;
      const connection = resolveKubernetesConnection(
        { KUBERNETES_SERVICE_HOST: "127.0.0.1", KUBERNETES_SERVICE_PORT: port },
        { serviceAccountDir: serviceAccount },
      );
      assert.match(connection.source, /^in-cluster service account/);
      const client = createKubernetesApiClient(connection);
      const ref = { namespace: "default", name: `in-cluster-${counter}` };
      const data = new Map([["tlscert", Buffer.from("in-cluster")]]);
      await applySecret(client, ref, { labels: {}, data, resourceVersion: undefined });
      writeFileSync(join(serviceAccount, "token"), ROTATED_TOKEN);
      const before = server.requests.length;
      const read = await getSecret(client, ref);
      assert.ok(read?.data.get("tlscert")?.equals(Buffer.from("in-cluster")));
      assert.equal(server.requests.slice(before).length, 1);
      writeFileSync(join(serviceAccount, "token"), "rotated-to-an-unknown-token");
      await assert.rejects(getSecret(client, ref), /401 Unauthorized/);
      rmSync(join(serviceAccount, "token"));
      await assert.rejects(
        getSecret(client, ref),
        new RegExp(`cannot read the bearer token ${serviceAccount}/token: ENOENT`),
      );
      writeFileSync(join(serviceAccount, "token"), TOKEN);
      rmSync(join(serviceAccount, "ca.crt"));
      await assert.rejects(
        getSecret(client, ref),
        new RegExp(`cannot read the cluster CA certificate ${serviceAccount}/ca.crt: ENOENT`),
      );
    });

    test("a client certificate from the kubeconfig authenticates (user = its CN)", async () => {
      const certs = tempDir("client-cert");
      const clientCert = writeLoopbackServerCertificate(openssl.path, certs); // CN=127.0.0.1
      const mtls = await KubeApiServer.start({
        key: readFileSync(join(dir, "server", "server.key"), "utf8"),
        cert: caPem,
        tokens: {},
        clientCa: clientCert,
      });
      try {
        const config = writeKubeconfig(certs, mtls.url, caPem, {
          "client-certificate": "server.crt", // relative to the kubeconfig's directory
          "client-key-data": readFileSync(join(certs, "server.key")).toString("base64"),
        });
        const target = destination({ env: { KUBECONFIG: config.path } });
        await target.write(identitySet("mtls"));
        assert.equal(mtls.requests.at(-1)?.user, "127.0.0.1");
        assert.ok(mtls.secret("default", target.name) !== undefined);
      } finally {
        await mtls.close();
      }
    });

    test("an empty set or a file name that cannot be a Secret key is refused before any request", async () => {
      const target = destination();
      const before = server.requests.length;
      await assert.rejects(target.write(new Map()), writeFailure(/refusing to write an empty set/));
      await assert.rejects(
        target.write(new Map([["bad/name", { contents: Buffer.from("x"), mode: 0o600 }]])),
        writeFailure(/"bad\/name" cannot be a Secret key/),
      );
      assert.equal(server.requests.length, before);
    });
  },
);

describe("kubernetes_secret destination: configuration checked at start-up", () => {
  const dir = tempDir("config");
  const ca = "-----BEGIN CERTIFICATE-----\nnot parsed at start-up\n-----END CERTIFICATE-----\n";
  const kubeconfig = writeKubeconfig(dir, "https://127.0.0.1:6443", ca);

  function build(options: {
    name?: string;
    namespace?: string | undefined;
    labels?: Record<string, string>;
    env?: NodeJS.ProcessEnv;
  }): Destination {
    return createKubernetesSecretDestination({
      name: options.name ?? NAME,
      namespace: "namespace" in options ? options.namespace : "default",
      labels: options.labels ?? {},
      env: options.env ?? { KUBECONFIG: kubeconfig.path },
    });
  }

  function configError(pattern: RegExp) {
    return (err: unknown): boolean => {
      assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
      assert.match(err.message, pattern);
      return true;
    };
  }

  test("neither a namespace nor POD_NAMESPACE: an error that names both", () => {
    assert.throws(
      () => build({ namespace: undefined }),
      configError(/no namespace: set the destination's namespace, or POD_NAMESPACE/),
    );
    assert.throws(
      () => build({ namespace: "", env: { KUBECONFIG: kubeconfig.path, POD_NAMESPACE: " " } }),
      configError(/POD_NAMESPACE/),
    );
  });

  const badOptions: [string, Parameters<typeof build>[0], RegExp][] = [
    [
      "a name that is not a Secret name",
      { name: "Identity_Output" },
      /name "Identity_Output" is not a Secret name/,
    ],
    [
      "a namespace that is not a DNS label",
      { namespace: "Default" },
      /namespace "Default" is not a namespace name/,
    ],
    [
      "a POD_NAMESPACE that is not a DNS label",
      { namespace: undefined, env: { KUBECONFIG: kubeconfig.path, POD_NAMESPACE: "a.b" } },
      /POD_NAMESPACE "a\.b" is not a namespace name/,
    ],
    [
      "a label name that is not one",
      { labels: { "bad label": "x" } },
      /labels: "bad label" is not a label name/,
    ],
    [
      "a label prefix that is not a DNS subdomain",
      { labels: { "Example_com/name": "x" } },
      /labels: "Example_com\/name" is not a label name/,
    ],
    [
      "a label name over 63 characters",
      { labels: { ["a".repeat(64)]: "x" } },
      /is not a label name/,
    ],
    [
      "a label value that is not one",
      { labels: { app: "-x-" } },
      /labels\.app: "-x-" is not a label value/,
    ],
  ];
  for (const [name, options, pattern] of badOptions) {
    test(`refused: ${name}`, () => assert.throws(() => build(options), configError(pattern)));
  }

  test("KUBECONFIG when set, even inside a pod (client-go's order); else the in-cluster account", () => {
    const both = resolveKubernetesConnection({
      KUBECONFIG: kubeconfig.path,
      KUBERNETES_SERVICE_HOST: "10.96.0.1",
      KUBERNETES_SERVICE_PORT: "443",
    });
    assert.equal(both.server.origin, "https://127.0.0.1:6443");
    assert.match(both.source, /^KUBECONFIG .*kubeconfig \(context stand-in\)$/);
    const inCluster = resolveKubernetesConnection({
      KUBECONFIG: "",
      KUBERNETES_SERVICE_HOST: "10.96.0.1",
      KUBERNETES_SERVICE_PORT: "443",
    });
    assert.equal(inCluster.server.origin, "https://10.96.0.1");
    assert.deepEqual(inCluster.ca, {
      kind: "file",
      path: "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
    });
    assert.deepEqual(inCluster.auth, {
      kind: "bearer-token",
      token: { kind: "file", path: "/var/run/secrets/kubernetes.io/serviceaccount/token" },
    });
    const ipv6 = resolveKubernetesConnection({
      KUBERNETES_SERVICE_HOST: "fd00::1",
      KUBERNETES_SERVICE_PORT: "6443",
    });
    assert.equal(ipv6.server.origin, "https://[fd00::1]:6443");
  });

  test("no KUBECONFIG and not in a pod: an error naming both ways", () => {
    assert.throws(
      () => build({ env: {} }),
      configError(/KUBECONFIG is not set, and KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT/),
    );
    assert.throws(
      () =>
        build({ env: { KUBERNETES_SERVICE_HOST: "10.0.0.1", KUBERNETES_SERVICE_PORT: "http" } }),
      configError(/KUBERNETES_SERVICE_PORT must be a TCP port number/),
    );
  });

  test("a KUBECONFIG file that cannot be read", () => {
    assert.throws(
      () => build({ env: { KUBECONFIG: join(dir, "missing") } }),
      configError(/KUBECONFIG names .*missing, which cannot be read: ENOENT/),
    );
  });

  function kubeconfigWith(name: string, text: string): string {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  }

  const cluster = (extra: string) =>
    `current-context: c\ncontexts:\n  - name: c\n    context: {cluster: k, user: u}\nclusters:\n  - name: k\n    cluster:\n      server: https://127.0.0.1:6443\n${extra}users:\n  - name: u\n    user:\n      token: secret-token-value\n`;
  const caData = `      certificate-authority-data: ${Buffer.from(ca).toString("base64")}\n`;

  const badKubeconfigs: [string, string, RegExp][] = [
    ["YAML that does not parse", "clusters: [\n", /bad-yaml:\d+:\d+: YAML syntax/],
    ["no current-context", "clusters: []\n", /no current-context is set/],
    [
      "a current-context no file defines",
      "current-context: nope\n",
      /:1:1: current-context: names the context "nope", which no file of KUBECONFIG defines/,
    ],
    [
      "a cluster without a CA (system roots are never trusted)",
      cluster(""),
      /:7:5: clusters\[0\]\.cluster: certificate-authority or certificate-authority-data is required/,
    ],
    [
      "insecure-skip-tls-verify",
      cluster(`${caData}      insecure-skip-tls-verify: true\n`),
      /:10:7: clusters\[0\]\.cluster\.insecure-skip-tls-verify: is not supported/,
    ],
    [
      "a plain-HTTP server",
      cluster(caData).replace("https://127.0.0.1:6443", "http://127.0.0.1:8080"),
      /:8:7: clusters\[0\]\.cluster\.server: must be an https:\/\/ URL/,
    ],
    [
      "certificate-authority-data that is not base64",
      cluster("      certificate-authority-data: '%%%'\n"),
      /clusters\[0\]\.cluster\.certificate-authority-data: must be non-empty base64/,
    ],
    [
      "an exec credential plugin",
      cluster(caData).replace("      token: secret-token-value\n", "      exec: {command: aws}\n"),
      /users\[0\]\.user\.exec: is not supported: credential plugins/,
    ],
    [
      "impersonation",
      cluster(caData).replace(
        "      token: secret-token-value\n",
        "      token: t\n      as: admin\n",
      ),
      /users\[0\]\.user\.as: is not supported: impersonation/,
    ],
    [
      "a client certificate without its key",
      cluster(caData).replace(
        "      token: secret-token-value\n",
        "      client-certificate: c.crt\n",
      ),
      /needs both client-certificate\(-data\) and client-key\(-data\)/,
    ],
    [
      "a token and a client certificate",
      cluster(caData).replace(
        "      token: secret-token-value\n",
        "      token: t\n      client-certificate: c.crt\n      client-key: c.key\n",
      ),
      /set a token or a client certificate, not both/,
    ],
    ["not a mapping", "- a\n- b\n", /a kubeconfig must be a mapping/],
  ];
  for (const [name, text, pattern] of badKubeconfigs) {
    test(`kubeconfig refused with file:line:col: ${name}`, () => {
      const path = kubeconfigWith(
        name === "YAML that does not parse" ? "bad-yaml" : `bad-${name.replace(/\W+/g, "-")}`,
        text,
      );
      assert.throws(
        () => build({ env: { KUBECONFIG: path } }),
        (err: unknown) => {
          configError(pattern)(err);
          assert.ok(
            !(err as Error).message.includes("secret-token-value"),
            "the token is never shown",
          );
          return true;
        },
      );
    });
  }

  test("a KUBECONFIG list merges as kubectl does: first current-context and first name win; paths are relative to their file", () => {
    mkdirSync(join(dir, "nested"), { recursive: true });
    const first = kubeconfigWith(
      "nested/first",
      "current-context: second-ctx\nusers:\n  - name: u\n    user: {tokenFile: token.txt}\n",
    );
    const second = kubeconfigWith(
      "second",
      "current-context: ignored\ncontexts:\n  - name: second-ctx\n    context: {cluster: k, user: u}\nclusters:\n  - name: k\n    cluster: {server: 'https://127.0.0.1:7443', certificate-authority: ca.pem, tls-server-name: api.internal}\nusers:\n  - name: u\n    user: {token: loses}\n",
    );
    const connection = resolveKubernetesConnection({ KUBECONFIG: `${first}:${second}` });
    assert.equal(connection.server.origin, "https://127.0.0.1:7443");
    assert.deepEqual(connection.ca, { kind: "file", path: join(dir, "ca.pem") });
    assert.equal(connection.tlsServerName, "api.internal");
    assert.deepEqual(connection.auth, {
      kind: "bearer-token",
      token: { kind: "file", path: join(dir, "nested", "token.txt") },
    });
  });
});

describe(
  "kubernetes_secret destination: a hostile or broken API server",
  { skip: openssl.skip },
  () => {
    let dir: string;
    let caPem: string;
    let respond: (req: IncomingMessage, res: ServerResponse) => void;
    let hostile: Server;
    let url: string;

    before(async () => {
      dir = tempDir("hostile");
      caPem = writeLoopbackServerCertificate(openssl.path, dir);
      hostile = createServer(
        { key: readFileSync(join(dir, "server.key")), cert: caPem },
        (req, res) => respond(req, res),
      );
      await new Promise<void>((resolve) => hostile.listen(0, "127.0.0.1", resolve));
      url = `https://127.0.0.1:${(hostile.address() as AddressInfo).port}`;
    });
    after(async () => {
      hostile.closeAllConnections();
      await new Promise((resolve) => hostile.close(resolve));
    });

    const json =
      (status: number, body: unknown) => (_req: IncomingMessage, res: ServerResponse) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(typeof body === "string" ? body : JSON.stringify(body));
      };
    const secret = (name: string, data: Record<string, unknown>) => ({
      kind: "Secret",
      apiVersion: "v1",
      metadata: { name, namespace: "default", resourceVersion: "7" },
      type: "Opaque",
      data,
    });

    function client(timeoutMs?: number) {
      const config = writeKubeconfig(dir, url, caPem);
      return createKubernetesApiClient(
        resolveKubernetesConnection({ KUBECONFIG: config.path }),
        timeoutMs === undefined ? {} : { timeoutMs },
      );
    }
    const ref = { namespace: "default", name: NAME };

    const cases: [string, (req: IncomingMessage, res: ServerResponse) => void, RegExp][] = [
      [
        "an HTML page with 200",
        json(200, "<html>login</html>"),
        /is not a usable Secret: kind is not Secret/,
      ],
      [
        "a Secret whose data is not base64 (the value is not repeated)",
        json(200, secret(NAME, { tlscert: "LEAK-ME-NOT!" })),
        /is not a usable Secret: data\.tlscert is not base64$/,
      ],
      ["a Secret of another name", json(200, secret("other", {})), /it names another object/],
      [
        "a 500 page",
        json(500, "<html>oops</html>"),
        /get of Secret default\/identity-output answered 500$/,
      ],
      [
        "429 Too Many Requests with a Status",
        json(429, { kind: "Status", reason: "TooManyRequests", code: 429 }),
        /answered 429 TooManyRequests/,
      ],
      [
        "an answer larger than 4 MiB",
        (_req, res) => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end(Buffer.alloc(5 * 1024 * 1024, 0x20));
        },
        /answered with more than 4194304 bytes/,
      ],
    ];
    for (const [name, responder, pattern] of cases) {
      test(`refused with a clear error: ${name}`, async () => {
        respond = responder;
        await assert.rejects(getSecret(client(), ref), (err: Error) => {
          assert.match(err.message, pattern);
          assert.ok(!err.message.includes("LEAK-ME-NOT"));
          return true;
        });
      });
    }

    test("an API server that never finishes its answer hits the deadline", async () => {
      respond = (_req, res) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.write("{");
      };
      await assert.rejects(getSecret(client(300), ref), /gave no complete answer within 300 ms/);
    });

    test("an apply stored other than sent (a mutating webhook) is an error, not a success", async () => {
      respond = (req, res) =>
        req.method === "GET"
          ? json(404, { kind: "Status", reason: "NotFound", code: 404 })(req, res)
          : json(200, secret(NAME, { tlscert: Buffer.from("rewritten").toString("base64") }))(
              req,
              res,
            );
      const data = new Map([["tlscert", Buffer.from("original")]]);
      await assert.rejects(
        applySecret(client(), ref, { labels: {}, data, resourceVersion: undefined }),
        /stored Secret default\/identity-output other than applied \(keys changed: tlscert\)/,
      );
    });
  },
);
