/**
 * The container and Kubernetes files, checked statically (no Docker engine or cluster here): every
 * manifest parses, and names, labels, ports, mounts, ConfigMap keys, the service's config and the
 * agent's flags agree with each other, so a rename in one place cannot silently break another.
 */
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { Agent, get as httpsGet } from "node:https";
import { tmpdir } from "node:os";
import { dirname, join, posix } from "node:path";
import { strict as assert } from "node:assert";
import { after, before, describe, test } from "node:test";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { readAgentConfig } from "../src/agent/config-file.ts";
import { parseAgentFlags, resolveAgentOptions } from "../src/agent/options.ts";
import type { AgentFlags } from "../src/agent/options.ts";
import { DATA_DIR_FILES, loadOrCreateAuthority } from "../src/ca/authority.ts";
import { parseConfig } from "../src/config/config.ts";
import type { ServiceConfig } from "../src/config/config.ts";
import { ConfigError } from "../src/errors.ts";
import { createLogger } from "../src/log.ts";
import { parseResources } from "../src/resources/load.ts";
import { matchAllowRule } from "../src/methods/kubernetes/allow-rules.ts";
import { kubernetesSpecOf } from "../src/methods/kubernetes/method.ts";
import { startJoinService } from "../src/service/server.ts";
import { createTestCa, issueServerCertificate } from "./support/https-issuer.ts";
import { POSTGRES, startPostgres, type PostgresCluster } from "./support/postgres.ts";
import { systemTool } from "./support/system-tools.ts";

const ROOT = new URL("../", import.meta.url);
const DEPLOY_DIR = new URL("deploy/kubernetes/", ROOT);
const read = (path: string) => readFileSync(new URL(path, ROOT), "utf8");

// ---- A small typed view of the manifests (only the fields these checks read). ----

interface Meta {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
}
interface KeyToPath {
  key: string;
  path: string;
}
interface Volume {
  name: string;
  configMap?: { name: string; items?: KeyToPath[] };
  secret?: { secretName: string; items?: KeyToPath[]; defaultMode?: number };
  emptyDir?: { medium?: string };
  projected?: {
    sources: {
      serviceAccountToken?: { path: string; audience?: string; expirationSeconds?: number };
    }[];
  };
}
interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
}
interface Probe {
  httpGet?: { path: string; port: string | number };
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: Mount[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  securityContext?: {
    allowPrivilegeEscalation?: boolean;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { drop?: string[] };
    runAsNonRoot?: boolean;
    runAsUser?: number;
  };
}
interface PodSpec {
  serviceAccountName?: string;
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number };
  initContainers?: Container[];
  containers: Container[];
  volumes?: Volume[];
}
interface Deployment {
  kind: "Deployment";
  metadata: Meta;
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: { metadata: Meta; spec: PodSpec };
  };
}
interface Service {
  kind: "Service";
  metadata: Meta;
  spec: {
    selector: Record<string, string>;
    ports: { name: string; port: number; targetPort: string | number }[];
  };
}
interface ConfigMap {
  kind: "ConfigMap";
  metadata: Meta;
  data: Record<string, string>;
}
interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: Meta;
  file: string;
}

const manifestFiles = readdirSync(DEPLOY_DIR)
  .filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml")
  .sort();

const manifests: Manifest[] = manifestFiles.flatMap((file) => {
  const docs = parseAllDocuments(readFileSync(new URL(file, DEPLOY_DIR), "utf8"));
  assert.ok(Array.isArray(docs), `${file}: not a YAML stream`);
  return docs.map((doc, i) => {
    assert.deepEqual(
      doc.errors.map((e) => e.message),
      [],
      `${file}: document ${i + 1} does not parse`,
    );
    return { ...(doc.toJS() as Omit<Manifest, "file">), file };
  });
});

function find<T>(kind: string, name: string, namespace?: string): T {
  const hit = manifests.find(
    (m) =>
      m.kind === kind &&
      m.metadata.name === name &&
      (namespace === undefined || m.metadata.namespace === namespace),
  );
  assert.ok(hit !== undefined, `no ${kind} ${namespace ?? "*"}/${name} in deploy/kubernetes`);
  return hit as unknown as T;
}

const server = find<Deployment>("Deployment", "kube-join", "kube-join");
const service = find<Service>("Service", "kube-join", "kube-join");
const configMap = find<ConfigMap>("ConfigMap", "kube-join-config", "kube-join");
const agent = find<Deployment>("Deployment", "tbot");
const deployments = manifests.filter((m) => m.kind === "Deployment") as unknown as Deployment[];

const serverPod = server.spec.template.spec;
const agentPod = agent.spec.template.spec;
const serverContainer = container(serverPod, "kube-join");
const agentContainer = container(agentPod, "tbot");

function container(pod: PodSpec, name: string): Container {
  const c = pod.containers.find((x) => x.name === name);
  assert.ok(c !== undefined, `no container ${name}`);
  return c;
}

function volume(pod: PodSpec, name: string): Volume {
  const v = pod.volumes?.find((x) => x.name === name);
  assert.ok(v !== undefined, `no volume ${name}`);
  return v;
}

function portOf(c: Container, name: string): number {
  const p = c.ports?.find((x) => x.name === name);
  assert.ok(p !== undefined, `container ${c.name} has no port named ${name}`);
  return p.containerPort;
}

/** The flag's value in an argument list (`--flag value`). */
function flag(args: readonly string[], name: string): string {
  const i = args.indexOf(name);
  const value = i < 0 ? undefined : args[i + 1];
  assert.ok(value !== undefined, `missing ${name} in ${JSON.stringify(args)}`);
  return value;
}

/**
 * Where a file path in a container comes from: the mount that holds it and the file name inside
 * the volume; asserts the volume really provides that file (an item of a ConfigMap or Secret).
 */
function sourceOf(pod: PodSpec, c: Container, file: string): { volume: Volume; inside: string } {
  const mount = (c.volumeMounts ?? [])
    .filter((m) => file.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  assert.ok(mount !== undefined, `${file}: not inside any volume mount of container ${c.name}`);
  const v = volume(pod, mount.name);
  const inside = posix.relative(mount.mountPath, file);
  const items = v.configMap?.items ?? v.secret?.items;
  if (items !== undefined) {
    assert.ok(
      items.some((item) => item.path === inside || item.path.startsWith(`${inside}/`)),
      `${file}: volume ${v.name} has no item at ${inside}`,
    );
  }
  return { volume: v, inside };
}

const configText = configMap.data["config.yaml"];
assert.ok(configText !== undefined, "ConfigMap kube-join-config has no config.yaml");
const config: ServiceConfig = parseConfig("config.yaml", configText, "/etc/kube-join");

const resources = parseResources(
  Object.entries(configMap.data)
    .filter(([key]) => key !== "config.yaml")
    .map(([key, text]) => ({ file: key, text })),
);

/** The image's default command line, from the Dockerfile's exec-form ENTRYPOINT and CMD. */
function dockerExec(instruction: "ENTRYPOINT" | "CMD"): string[] {
  const line = read("Dockerfile")
    .split("\n")
    .filter((l) => l.startsWith(`${instruction} `))
    .at(-1);
  assert.ok(line !== undefined, `Dockerfile has no ${instruction}`);
  return JSON.parse(line.slice(instruction.length + 1)) as string[];
}

const packageVersion = (JSON.parse(read("package.json")) as { version: string }).version;

// ---- The checks. ----

describe("manifests", () => {
  test("every document is a named Kubernetes object, and the kustomization lists every file", () => {
    assert.ok(manifests.length >= 6);
    for (const m of manifests) {
      assert.match(m.apiVersion, /^(v1|apps\/v1)$/, `${m.file}: ${m.kind}`);
      assert.match(m.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${m.file}: ${m.kind}`);
    }
    const kustomization = parseYaml(read("deploy/kubernetes/kustomization.yaml")) as {
      resources: string[];
    };
    assert.deepEqual([...kustomization.resources].sort(), manifestFiles);
  });

  test("namespaced objects live in namespaces the manifests create or in default", () => {
    const namespaces = new Set([
      "default",
      ...manifests.filter((m) => m.kind === "Namespace").map((m) => m.metadata.name),
    ]);
    for (const m of manifests.filter((x) => x.kind !== "Namespace")) {
      assert.ok(
        namespaces.has(m.metadata.namespace ?? ""),
        `${m.kind} ${m.metadata.name}: namespace`,
      );
    }
  });

  for (const d of deployments) {
    describe(`Deployment ${d.metadata.name}`, () => {
      const pod = d.spec.template.spec;
      const all = [...(pod.initContainers ?? []), ...pod.containers];

      test("its selector matches its pod labels", () => {
        for (const [key, value] of Object.entries(d.spec.selector.matchLabels)) {
          assert.equal(d.spec.template.metadata.labels?.[key], value, key);
        }
      });

      test("every mount names a volume, and every volume is mounted", () => {
        const declared = (pod.volumes ?? []).map((v) => v.name).sort();
        const mounted = new Set(all.flatMap((c) => (c.volumeMounts ?? []).map((m) => m.name)));
        for (const name of mounted) assert.ok(declared.includes(name), `mount of ${name}`);
        assert.deepEqual(declared, [...mounted].sort());
      });

      test("runs as non-root with a read-only root file system, no privilege escalation", () => {
        assert.equal(pod.securityContext?.runAsNonRoot, true);
        assert.ok((pod.securityContext?.runAsUser ?? 0) > 0);
        for (const c of all) {
          assert.equal(c.securityContext?.readOnlyRootFilesystem, true, c.name);
          assert.equal(c.securityContext?.allowPrivilegeEscalation, false, c.name);
          assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"], c.name);
        }
      });

      test("kube-join containers run the image of this version", () => {
        for (const c of all.filter((x) => x.image.startsWith("kube-join"))) {
          assert.equal(c.image, `kube-join:${packageVersion}`, c.name);
        }
      });

      test("ConfigMap volumes defined here provide the keys they name", () => {
        for (const v of pod.volumes ?? []) {
          const cm = v.configMap;
          if (cm === undefined) continue;
          const defined = manifests.find(
            (m) =>
              m.kind === "ConfigMap" &&
              m.metadata.name === cm.name &&
              m.metadata.namespace === d.metadata.namespace,
          ) as unknown as ConfigMap | undefined;
          if (defined === undefined) continue; // created by the admin: see the docs test
          for (const item of cm.items ?? []) assert.ok(item.key in defined.data, item.key);
          for (const key of Object.keys(defined.data)) {
            assert.ok(
              cm.items?.some((i) => i.key === key),
              `${key} is never mounted`,
            );
          }
        }
      });
    });
  }
});

describe("kube-join Deployment, Service and config agree", () => {
  test("two replicas, and a Service selecting their pods", () => {
    assert.equal(server.spec.replicas, 2);
    for (const [key, value] of Object.entries(service.spec.selector)) {
      assert.equal(server.spec.template.metadata.labels?.[key], value, key);
    }
  });

  test("listen ports: config, container and Service", () => {
    const cases = [
      { name: "join", addr: config.listenAddr, port: 3025 },
      { name: "diag", addr: config.diagAddr, port: 3000 },
    ];
    for (const c of cases) {
      assert.equal(c.addr.port, c.port, `${c.name}: config`);
      assert.equal(c.addr.host, "0.0.0.0", `${c.name}: a pod must listen beyond loopback`);
      assert.equal(portOf(serverContainer, c.name), c.port, `${c.name}: containerPort`);
      const sp = service.spec.ports.find((p) => p.name === c.name);
      assert.ok(sp !== undefined, `Service port ${c.name}`);
      assert.equal(sp.port, c.port);
      assert.equal(sp.targetPort, c.name);
    }
  });

  test("probes: liveness and startup on /healthz, readiness on /readyz, all on the diag port", () => {
    const probes: [Probe | undefined, string][] = [
      [serverContainer.livenessProbe, "/healthz"],
      [serverContainer.startupProbe, "/healthz"],
      [serverContainer.readinessProbe, "/readyz"],
    ];
    for (const [probe, path] of probes) {
      assert.equal(probe?.httpGet?.path, path);
      assert.equal(probe?.httpGet?.port, "diag");
    }
  });

  test("the container runs the image's default command: serve with the mounted config", () => {
    assert.deepEqual(dockerExec("ENTRYPOINT"), ["kube-join"]);
    assert.deepEqual(serverContainer.args, dockerExec("CMD"));
    const configFile = flag(dockerExec("CMD"), "--config");
    const { volume: v, inside } = sourceOf(serverPod, serverContainer, configFile);
    assert.equal(v.configMap?.name, configMap.metadata.name);
    assert.equal(v.configMap?.items?.find((i) => i.path === inside)?.key, "config.yaml");
  });

  test("the join listener serves TLS from a Secret mounted where the config says", () => {
    assert.ok(config.tls !== undefined, "tls: the join listener must not be plain HTTP");
    for (const file of [config.tls.certFile, config.tls.keyFile]) {
      assert.ok(sourceOf(serverPod, serverContainer, file).volume.secret !== undefined, file);
    }
  });

  test("every resource file in the config is a ConfigMap item, and they load as a valid set", () => {
    for (const path of config.resources) {
      const { volume: v, inside } = sourceOf(serverPod, serverContainer, path);
      const items = (v.configMap?.items ?? []).filter((i) => i.path.startsWith(`${inside}/`));
      assert.ok(items.length > 0, path);
    }
    assert.deepEqual(resources.warnings, []);
    assert.ok(resources.bots.size > 0 && resources.tokens.size > 0);
  });

  test("both replicas sign with the one CA from the Secret, copied with mode 0400", () => {
    const files = config.ca.files;
    assert.ok(files !== undefined, "ca: key and cert files (shared by the replicas)");
    const init = serverPod.initContainers?.find((c) => c.name === "ca-keys");
    assert.ok(init !== undefined, "the init container that copies the CA keys");
    const command = init.command ?? [];
    assert.deepEqual(command.slice(0, 3), ["install", "-m", "0400"]);
    const target = command.at(-1) ?? "";
    for (const file of [files.tlsKeyFile, files.tlsCertFile, files.sshKeyFile]) {
      const { volume: runtime } = sourceOf(serverPod, serverContainer, file);
      assert.ok(runtime.emptyDir !== undefined, `${file}: the private copy`);
      assert.equal(posix.join(target, posix.basename(file)), file);
      const copied = command.find((a) => a.endsWith(`/${posix.basename(file)}`) && a !== file);
      assert.ok(copied !== undefined, `${file}: copied by the init container`);
      const secret: Volume["secret"] = sourceOf(serverPod, init, copied).volume.secret;
      assert.equal(secret?.secretName, "kube-join-ca");
      assert.equal(secret?.defaultMode, 0o400);
      assert.ok(sourceOf(serverPod, init, file).volume === runtime, `${file}: same volume`);
    }
  });
});

describe("the agent Deployment joins this kube-join", () => {
  const args = agentContainer.args ?? [];

  test("it runs `kube-join agent` as the ServiceAccount tbot of its own namespace", () => {
    assert.equal(args[0], "agent");
    assert.equal(agentPod.serviceAccountName, "tbot");
    find("ServiceAccount", "tbot", agent.metadata.namespace);
  });

  test("--server is the Service's DNS name and join port, over https", () => {
    const url = new URL(flag(args, "--server"));
    assert.equal(url.protocol, "https:");
    assert.equal(url.hostname, `${service.metadata.name}.${service.metadata.namespace}.svc`);
    assert.equal(Number(url.port), config.listenAddr.port);
  });

  test("--token names a loaded token whose allow rules admit the agent's ServiceAccount", () => {
    const token = resources.tokens.get(flag(args, "--token"));
    assert.ok(token !== undefined, "the token is in the ConfigMap");
    assert.ok(token.botName !== undefined && resources.bots.has(token.botName));
    const spec = kubernetesSpecOf(token.join);
    assert.ok(spec !== undefined);
    assert.ok(
      matchAllowRule(spec.allow, {
        namespace: agent.metadata.namespace ?? "default",
        serviceAccount: agentPod.serviceAccountName ?? "default",
      }),
    );
  });

  test("the projected token: audience = cluster name, 600 s, join-sa-token, where the agent reads it", () => {
    const tokenVolume = volume(agentPod, "join-sa-token");
    const source = tokenVolume.projected?.sources[0]?.serviceAccountToken;
    assert.deepEqual(source, {
      path: "join-sa-token",
      expirationSeconds: 600,
      audience: config.clusterName,
    });
    const mount = agentContainer.volumeMounts?.find((m) => m.name === "join-sa-token");
    assert.equal(mount?.mountPath, "/var/run/secrets/tokens");
    const env = agentContainer.env?.find((e) => e.name === "KUBERNETES_TOKEN_PATH");
    assert.equal(env?.value, `${mount?.mountPath}/${source?.path}`);
  });

  test("--ca-file is mounted, --output is an emptyDir the workload reads", () => {
    sourceOf(agentPod, agentContainer, flag(args, "--ca-file"));
    const output = flag(args, "--output");
    assert.equal(output, "/var/run/bot-identity");
    const mount = agentContainer.volumeMounts?.find((m) => m.mountPath === output);
    assert.ok(mount !== undefined, "--output is a mount point");
    assert.ok(volume(agentPod, mount.name).emptyDir !== undefined);
    const readers = agentPod.containers.filter(
      (c) => c !== agentContainer && c.volumeMounts?.some((m) => m.name === mount.name),
    );
    assert.ok(readers.length > 0, "a workload container shares the identity");
    for (const c of readers) {
      assert.equal(c.volumeMounts?.find((m) => m.name === mount.name)?.readOnly, true);
    }
  });
});

describe("the Teleport guide's manifests (deploy/kubernetes/guide/)", () => {
  const GUIDE_DIR = new URL("deploy/kubernetes/guide/", ROOT);
  const guideFiles = readdirSync(GUIDE_DIR)
    .filter((f) => f.endsWith(".yaml"))
    .sort();
  const guide: Manifest[] = guideFiles.flatMap((file) =>
    parseAllDocuments(readFileSync(new URL(file, GUIDE_DIR), "utf8")).map((doc, i) => {
      assert.deepEqual(
        doc.errors.map((e) => e.message),
        [],
        `${file}: document ${i + 1} does not parse`,
      );
      return { ...(doc.toJS() as Omit<Manifest, "file">), file };
    }),
  );
  const inGuide = <T>(kind: string, name: string): T => {
    const hit = guide.find((m) => m.kind === kind && m.metadata.name === name);
    assert.ok(hit !== undefined, `no ${kind} ${name} in deploy/kubernetes/guide`);
    return hit as unknown as T;
  };
  const tbot = inGuide<Deployment>("Deployment", "tbot");
  const pod = tbot.spec.template.spec;
  const tbotContainer = container(pod, "tbot");
  const tbotConfigMap = inGuide<ConfigMap>("ConfigMap", "tbot-config");
  const tbotYaml = tbotConfigMap.data["tbot.yaml"] ?? "";
  const file = readAgentConfig("tbot.yaml", tbotYaml, () => assert.fail("no token file"), {
    server: false,
    token: false,
    caFile: false,
  });
  const options = resolveAgentOptions(
    parseAgentFlags(tbotContainer.args?.slice(1) ?? []) as AgentFlags,
    file,
    Object.fromEntries((tbotContainer.env ?? []).map((e) => [e.name, e.value])),
  );
  const consumer = inGuide<{ spec: PodSpec; metadata: Meta }>("Pod", "tsh");

  test("the guide's four files, each a named object in default", () => {
    assert.deepEqual(guideFiles, [
      "k8s-deployment-config.yaml",
      "k8s-deployment.yaml",
      "k8s-identity-consumer.yaml",
      "k8s-rbac.yaml",
    ]);
    for (const m of guide) {
      assert.match(m.apiVersion, /^(v1|apps\/v1|rbac\.authorization\.k8s\.io\/v1)$/, m.kind);
      assert.match(m.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
      assert.equal(m.metadata.namespace, "default", `${m.kind} ${m.metadata.name}`);
    }
  });

  test("one token name: example-bot, loaded by kube-join and admitting default:tbot", () => {
    for (const f of guideFiles) {
      assert.doesNotMatch(readFileSync(new URL(f, GUIDE_DIR), "utf8"), /bot-kubernetes/, f);
    }
    assert.equal(options.tokenName, "example-bot");
    const token = resources.tokens.get(options.tokenName);
    assert.ok(token !== undefined, "the token is in kube-join-config");
    const spec = kubernetesSpecOf(token.join);
    assert.ok(spec !== undefined, "a kubernetes token");
    assert.ok(
      matchAllowRule(spec.allow, {
        namespace: tbot.metadata.namespace ?? "default",
        serviceAccount: pod.serviceAccountName ?? "default",
      }),
    );
  });

  test("tbot.yaml: kube-join's Service over https, memory storage, the identity output to identity-output", () => {
    assert.equal(options.server.protocol, "https:");
    assert.equal(
      options.server.hostname,
      `${service.metadata.name}.${service.metadata.namespace}.svc`,
    );
    assert.equal(Number(options.server.port), config.listenAddr.port);
    assert.deepEqual(options.storage, { type: "memory" });
    assert.deepEqual(options.outputs, [
      {
        type: "identity",
        destination: {
          type: "kubernetes_secret",
          name: "identity-output",
          namespace: undefined,
          labels: {},
        },
      },
    ]);
    assert.ok(options.caFile !== undefined, "onboarding.ca_path");
    const { volume: ca } = sourceOf(pod, tbotContainer, options.caFile);
    assert.equal(
      ca.configMap?.name,
      "kube-join-server-ca",
      "the CA ConfigMap docs/operations.md creates",
    );
  });

  test("the Deployment runs the kube-join image as `agent -c /config/tbot.yaml` with the ConfigMap there", () => {
    assert.equal(dockerExec("ENTRYPOINT")[0], "kube-join");
    assert.equal(tbotContainer.image, `kube-join:${packageVersion}`);
    assert.deepEqual(tbotContainer.args, ["agent", "-c", "/config/tbot.yaml"]);
    const mount = tbotContainer.volumeMounts?.find((m) => m.mountPath === "/config");
    assert.equal(volume(pod, mount?.name ?? "").configMap?.name, tbotConfigMap.metadata.name);
  });

  test("the guide's projected token and env: audience = cluster name, KUBERNETES_TOKEN_PATH, POD_NAMESPACE", () => {
    const source = volume(pod, "join-sa-token").projected?.sources[0]?.serviceAccountToken;
    assert.deepEqual(source, {
      path: "join-sa-token",
      expirationSeconds: 600,
      audience: config.clusterName,
    });
    const mount = tbotContainer.volumeMounts?.find((m) => m.name === "join-sa-token");
    assert.equal(options.tokenPath, `${mount?.mountPath}/${source?.path}`);
    const env = (tbotContainer.env ?? []) as Array<{
      name: string;
      valueFrom?: { fieldRef?: { fieldPath?: string } };
    }>;
    assert.equal(
      env.find((e) => e.name === "POD_NAMESPACE")?.valueFrom?.fieldRef?.fieldPath,
      "metadata.namespace",
    );
  });

  test("RBAC: the ServiceAccount tbot may get, create and patch Secrets in its namespace", () => {
    assert.equal(pod.serviceAccountName, "tbot");
    inGuide("ServiceAccount", "tbot");
    // The kubernetes_secret destination talks to the API with the pod's own token.
    assert.notEqual(
      (pod as { automountServiceAccountToken?: boolean }).automountServiceAccountToken,
      false,
    );
    const binding = inGuide<{
      subjects: { kind: string; name: string }[];
      roleRef: { kind: string; name: string };
    }>("RoleBinding", "tbot-secrets-admin");
    assert.deepEqual(binding.subjects, [{ kind: "ServiceAccount", name: "tbot" }]);
    const role = inGuide<{
      rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    }>(binding.roleRef.kind, binding.roleRef.name);
    for (const verb of ["get", "create", "patch"]) {
      assert.ok(
        role.rules.some(
          (r) =>
            r.apiGroups.includes("") &&
            r.resources.includes("secrets") &&
            (r.verbs.includes(verb) || r.verbs.includes("*")),
        ),
        verb,
      );
    }
  });

  test("step 5's consumer mounts the Secret the output writes and reads /identity-output/identity", () => {
    const out = options.outputs[0]?.destination;
    assert.equal(out?.type, "kubernetes_secret");
    const secretVolume = consumer.spec.volumes?.find(
      (v) => v.secret?.secretName === (out?.type === "kubernetes_secret" ? out.name : ""),
    );
    assert.ok(secretVolume !== undefined, "a volume of the Secret identity-output");
    const c = consumer.spec.containers[0]!;
    const mount = c.volumeMounts?.find((m) => m.name === secretVolume.name);
    assert.equal(mount?.mountPath, "/identity-output");
    assert.equal(mount?.readOnly, true);
    assert.match((c.args ?? []).join(" "), /\/identity-output\/identity\b/);
  });

  test("both pods run as non-root with a read-only root file system, no privilege escalation", () => {
    for (const p of [pod, consumer.spec]) {
      assert.equal(p.securityContext?.runAsNonRoot, true);
      for (const c of p.containers) {
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, c.name);
        assert.equal(c.securityContext?.allowPrivilegeEscalation, false, c.name);
        assert.deepEqual(c.securityContext?.capabilities?.drop, ["ALL"], c.name);
      }
    }
  });
});

describe("objects the admin creates are documented", () => {
  const docs = read("docs/operations.md");
  const external: {
    kind: "secret" | "configmap";
    name: string;
    namespace: string;
    keys: string[];
  }[] = [];
  for (const d of deployments) {
    for (const v of d.spec.template.spec.volumes ?? []) {
      const namespace = d.metadata.namespace ?? "default";
      if (v.secret !== undefined) {
        external.push({
          kind: "secret",
          name: v.secret.secretName,
          namespace,
          keys: (v.secret.items ?? []).map((i) => i.key),
        });
      }
      const cm = v.configMap;
      if (
        cm !== undefined &&
        !manifests.some((m) => m.kind === "ConfigMap" && m.metadata.name === cm.name)
      ) {
        external.push({
          kind: "configmap",
          name: cm.name,
          namespace,
          keys: (cm.items ?? []).map((i) => i.key),
        });
      }
    }
  }

  test("no Secret is committed in the manifests", () => {
    assert.deepEqual(
      manifests.filter((m) => m.kind === "Secret").map((m) => m.metadata.name),
      [],
    );
  });

  for (const e of external) {
    test(`${e.kind} ${e.namespace}/${e.name} has its kubectl create command with its keys`, () => {
      const line = docs
        .split("\n")
        .find(
          (l) => l.includes(`kubectl -n ${e.namespace} create ${e.kind}`) && l.includes(e.name),
        );
      assert.ok(
        line !== undefined,
        `docs/operations.md: kubectl -n ${e.namespace} create ${e.kind} ... ${e.name}`,
      );
      for (const key of e.keys) {
        // `kubectl create secret tls` names its keys tls.crt and tls.key itself.
        const implicit = /create secret tls /.test(line) && /^tls\.(crt|key)$/.test(key);
        assert.ok(implicit || line.includes(`${key}=`), `${e.name}: key ${key}`);
      }
    });
  }
});

describe("Dockerfile and .dockerignore", () => {
  const dockerfile = read("Dockerfile");
  const instructions = dockerfile
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));

  test("multi-stage: build with npm ci + npm run build, runtime with production deps only", () => {
    const stages = instructions.filter((l) => l.startsWith("FROM "));
    assert.ok(stages.length >= 2, "at least a build and a runtime stage");
    assert.ok(instructions.some((l) => /^RUN npm ci\b(?!.*--omit=dev)/.test(l)));
    assert.ok(instructions.some((l) => /^RUN npm run build\b/.test(l)));
    assert.ok(instructions.some((l) => /^RUN npm ci\b.*--omit=dev/.test(l)));
    const runtime = instructions.slice(instructions.lastIndexOf(stages.at(-1) ?? ""));
    assert.ok(!runtime.some((l) => /^RUN npm (ci|install)\b/.test(l)), "no install in runtime");
    assert.ok(runtime.some((l) => /^COPY --from=\S+ \S*dist/.test(l)));
  });

  test("the base image is a slim Node LTS (even major, 20 or newer)", () => {
    const arg = /^ARG NODE_IMAGE=node:(\d+)-slim$/m.exec(dockerfile);
    assert.ok(arg !== null, "ARG NODE_IMAGE=node:<major>-slim");
    const major = Number(arg[1]);
    assert.ok(major >= 20 && major % 2 === 0, `node:${major}: an LTS line`);
  });

  test("runs as a numeric non-root user and exposes the join and diag ports", () => {
    const user = instructions.filter((l) => l.startsWith("USER ")).at(-1);
    const uid = Number(/^USER (\d+)(:\d+)?$/.exec(user ?? "")?.[1]);
    assert.ok(uid > 0, `${user}: a numeric uid other than 0`);
    assert.equal(uid, serverPod.securityContext?.runAsUser);
    const exposed = instructions
      .filter((l) => l.startsWith("EXPOSE "))
      .flatMap((l) => l.slice(7).split(/\s+/))
      .sort();
    assert.deepEqual(exposed, ["3000", "3025"]);
  });

  test("copies no secrets: only package files, tsconfig, src and bin from the context", () => {
    const sources = instructions
      .filter((l) => l.startsWith("COPY ") && !l.startsWith("COPY --from="))
      .flatMap((l) => l.slice(5).split(/\s+/).slice(0, -1));
    const allowed = [
      "package.json",
      "package-lock.json",
      "tsconfig.json",
      "tsconfig.build.json",
      "src",
      "bin",
    ];
    for (const s of sources) assert.ok(allowed.includes(s), `COPY ${s}`);
    assert.ok(!/\b(ARG|ENV)\s+\S*(SECRET|PASSWORD|TOKEN|KEY)\S*=/i.test(dockerfile));
  });

  test(".dockerignore keeps node_modules, data, .git and key files out of the context", () => {
    const ignored = read(".dockerignore")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "" && !l.startsWith("#"));
    for (const pattern of ["node_modules", "data", ".git", "dist", "**/*.key", "**/*.pem"]) {
      assert.ok(ignored.includes(pattern), pattern);
    }
  });
});

describe("the manifests' config serves, with files laid out as the pod mounts them", () => {
  const install = systemTool("install", "coreutils");
  const root = mkdtempSync(join(tmpdir(), "kube-join-deploy-"));
  after(() => rmSync(root, { recursive: true, force: true }));
  // The store Secret's URL points at a throwaway real PostgreSQL, as the operator's would.
  let postgres: PostgresCluster | undefined;
  before(async () => {
    if (POSTGRES.skip === false) postgres = await startPostgres();
  });
  after(async () => {
    await postgres?.destroy();
  });
  /** A path of the pod, inside this test's directory. */
  const local = (path: string) => join(root, path);
  const localConfig = (text: string) =>
    text
      .replace(/(?<=[:-] )\/(?=(etc|var)\/)/g, `${root}/`)
      .replace(/0\.0\.0\.0:\d+/g, "127.0.0.1:0");
  const write = (path: string, text: string, mode: number) => {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text);
    chmodSync(path, mode);
  };
  const mountOf = (c: Container, name: string) => {
    const m = c.volumeMounts?.find((x) => x.name === name);
    assert.ok(m !== undefined, `${c.name} mounts ${name}`);
    return m.mountPath;
  };

  /** Lays out ConfigMap and Secret volumes as the kubelet would under fsGroup (mode 0440). */
  async function layOut(): Promise<{ serverCaPem: string }> {
    for (const item of volume(serverPod, "config").configMap?.items ?? []) {
      const text = configMap.data[item.key] ?? "";
      const content = item.key === "config.yaml" ? localConfig(text) : text;
      write(local(posix.join(mountOf(serverContainer, "config"), item.path)), content, 0o440);
    }
    const serverCa = await createTestCa("kube-join server CA");
    const serving = await issueServerCertificate(serverCa);
    const tlsMount = mountOf(serverContainer, "tls");
    write(local(`${tlsMount}/tls.crt`), serving.certPem, 0o440);
    write(local(`${tlsMount}/tls.key`), serving.keyPem, 0o440);
    // The CA as the admin generates it (docs/operations.md), then stored in the Secret.
    const generated = local("ca-init");
    await loadOrCreateAuthority({ clusterName: config.clusterName, dataDir: generated });
    const init = serverPod.initContainers?.find((c) => c.name === "ca-keys");
    assert.ok(init !== undefined);
    const secretMount = mountOf(init, "ca-secret");
    for (const name of Object.values(DATA_DIR_FILES)) {
      mkdirSync(local(secretMount), { recursive: true });
      copyFileSync(join(generated, name), local(`${secretMount}/${name}`));
      chmodSync(local(`${secretMount}/${name}`), 0o440);
    }
    mkdirSync(local(mountOf(serverContainer, "data")), { recursive: true });
    assert.ok(postgres !== undefined, "no PostgreSQL cluster");
    const storeUrl = await postgres.createDatabase("kube_join_deploy");
    const storeItem = volume(serverPod, "store").secret?.items?.find((i) => i.key === "url");
    assert.ok(storeItem !== undefined, "the store Secret provides url");
    write(local(`${mountOf(serverContainer, "store")}/${storeItem.path}`), storeUrl, 0o440);
    return { serverCaPem: serverCa.certPem };
  }

  function quietLog() {
    const fd = openSync("/dev/null", "w");
    after(() => closeSync(fd));
    return createLogger({ level: "silent", fd });
  }

  test(
    "the init container's copy is what makes the CA keys loadable",
    { skip: install.skip || POSTGRES.skip, timeout: 30_000 },
    async () => {
      const { serverCaPem } = await layOut();
      const configFile = local(flag(serverContainer.args ?? [], "--config"));
      const text = readFileSync(configFile, "utf8");
      const localCfg = parseConfig(configFile, text, dirname(configFile));

      // Straight from the Secret volume (0440 under fsGroup): refused, naming the key file.
      const secretMount = mountOf(
        serverPod.initContainers?.find((c) => c.name === "ca-keys") as Container,
        "ca-secret",
      );
      const direct = parseConfig(
        configFile,
        text.replaceAll(mountOf(serverContainer, "ca"), secretMount),
        dirname(configFile),
      );
      await assert.rejects(
        startJoinService(direct, { log: quietLog() }),
        (err: unknown) =>
          err instanceof ConfigError &&
          /tls-ca\.key.*readable by group or others/.test(err.message),
      );

      // Run the init container's command for real, with the pod's paths mapped here.
      const init = serverPod.initContainers?.find((c) => c.name === "ca-keys");
      const [, ...initArgs] = init?.command ?? [];
      mkdirSync(local(mountOf(serverContainer, "ca")), { recursive: true });
      const copy = spawnSync(
        install.path,
        initArgs.map((a) => (a.startsWith("/") ? local(a) + (a.endsWith("/") ? "/" : "") : a)),
        { encoding: "utf8", timeout: 10_000 },
      );
      assert.equal(copy.stderr, "");
      assert.equal(copy.status, 0);

      const service = await startJoinService(localCfg, { log: quietLog() });
      try {
        const ready = await fetch(`${service.diagUrl}/readyz`);
        assert.equal(ready.status, 200);
        assert.equal(service.state.ready, true);
        // The join listener speaks TLS with the Secret's certificate, and exports the CA.
        const ca = await new Promise<{ tls_ca_certs: string[] }>((resolve, reject) => {
          const req = httpsGet(
            `${service.joinUrl}/v1/ca`,
            { agent: new Agent({ ca: serverCaPem }), timeout: 5000 },
            (res) => {
              let body = "";
              res.setEncoding("utf8");
              res.on("data", (chunk: string) => (body += chunk));
              res.on("end", () => resolve(JSON.parse(body) as { tls_ca_certs: string[] }));
            },
          );
          req.on("error", reject);
        });
        const generatedCert = readFileSync(local(`ca-init/${DATA_DIR_FILES.tlsCertFile}`), "utf8");
        assert.equal(ca.tls_ca_certs[0]?.trim(), generatedCert.trim());
      } finally {
        await service.shutdown();
      }
    },
  );
});
