/**
 * tbot's `kubernetes_secret` destination: the set's files are the `data` keys of one `Opaque`
 * Secret, written by one server-side apply per set (docs/kubernetes-secret.md). The namespace is
 * the destination's own, else `POD_NAMESPACE` (which the guide's Deployment sets from the
 * downward API); the API credentials come from `KUBECONFIG`, else the pod's service account.
 */
import { ConfigError } from "../../errors.ts";
import { AgentError } from "../agent-error.ts";
import { createKubernetesApiClient } from "../kubernetes/api-client.ts";
import { resolveKubernetesConnection } from "../kubernetes/environment.ts";
import { SecretApiError, applySecret, getSecret } from "../kubernetes/secrets.ts";
import type { Destination, FileSet, SetFile } from "./destination.ts";

/**
 * RFC 1123 names, as the API server checks them: a namespace is a DNS label, a Secret's name a
 * DNS subdomain. The same patterns as src/methods/kubernetes/names.ts, kept here because the agent
 * does not reach into the service's join methods (.dependency-cruiser.cjs).
 */
const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN =
  /^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;
/** What the Secret API accepts as a `data` key (`validation.IsConfigMapKey`). */
const SECRET_KEY = /^[-._a-zA-Z0-9]{1,253}$/;
/** The name part of a label key, and a label value when not empty: at most 63 characters. */
const LABEL_PART = /^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/**
 * Builds the destination. Checks the name, namespace, labels and API credentials now, so a
 * mistake stops the agent at start-up; talks to the API only when the set is read or written.
 *
 * @throws ConfigError naming the problem (no namespace, a bad name or label, no credentials, a
 *   kubeconfig the agent cannot honour).
 * @example
 *   const destination = createKubernetesSecretDestination({
 *     name: "identity-output", namespace: undefined, labels: {}, env: process.env,
 *   }); // namespace from POD_NAMESPACE, credentials in-cluster
 */
export function createKubernetesSecretDestination(options: {
  name: string;
  namespace: string | undefined;
  labels: Readonly<Record<string, string>>;
  env: NodeJS.ProcessEnv;
}): Destination {
  const { name, labels, env } = options;
  const problems: string[] = [];
  if (!DNS_SUBDOMAIN.test(name)) {
    problems.push(
      `kubernetes_secret: name "${name}" is not a Secret name (lower-case letters, digits, "-" ` +
        `and ".", at most 253 characters)`,
    );
  }
  const namespace = nonEmpty(options.namespace) ?? nonEmpty(env["POD_NAMESPACE"]);
  if (namespace === undefined) {
    problems.push(
      `kubernetes_secret ${name}: no namespace: set the destination's namespace, or ` +
        `POD_NAMESPACE (in a pod: env POD_NAMESPACE from fieldRef metadata.namespace)`,
    );
  } else if (!DNS_LABEL.test(namespace)) {
    const from = nonEmpty(options.namespace) === undefined ? "POD_NAMESPACE" : "namespace";
    problems.push(`kubernetes_secret ${name}: ${from} "${namespace}" is not a namespace name`);
  }
  for (const [key, value] of Object.entries(labels)) {
    if (!isLabelKey(key)) {
      problems.push(`kubernetes_secret ${name}: labels: "${key}" is not a label name`);
    } else if (typeof value !== "string" || (value !== "" && !LABEL_PART.test(value))) {
      problems.push(
        `kubernetes_secret ${name}: labels.${key}: "${String(value)}" is not a label value`,
      );
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const ref = { namespace: namespace as string, name };
  const description = `kubernetes_secret ${ref.namespace}/${name}`;
  const client = createKubernetesApiClient(resolveKubernetesConnection(env));
  const ownLabels = { ...labels };

  return {
    description,
    async write(set: FileSet): Promise<void> {
      if (set.size === 0) {
        // An empty apply would remove every key the agent owns: the last good identity.
        throw new AgentError("write_failed", `${description}: refusing to write an empty set`);
      }
      const data = new Map<string, Buffer>();
      for (const [file, { contents }] of set) {
        if (!SECRET_KEY.test(file)) {
          throw new AgentError(
            "write_failed",
            `${description}: "${file}" cannot be a Secret key (letters, digits, "-", "_", ".")`,
          );
        }
        data.set(file, contents);
      }
      try {
        const existing = await getSecret(client, ref);
        await applySecret(client, ref, {
          labels: ownLabels,
          data,
          resourceVersion: existing?.resourceVersion,
        });
      } catch (err) {
        throw asAgentError(description, "writing", err);
      }
    },
    async read(): Promise<FileSet | undefined> {
      let secret;
      try {
        secret = await getSecret(client, ref);
      } catch (err) {
        throw asAgentError(description, "reading", err);
      }
      if (secret === undefined || secret.data.size === 0) return undefined;
      // A Secret has no file modes (the pod that mounts it picks them): 0600 for every file
      // never widens a private key if the set is written on to a directory.
      const files = new Map<string, SetFile>();
      for (const [file, contents] of secret.data) files.set(file, { contents, mode: 0o600 });
      return files;
    },
  };
}

function asAgentError(description: string, doing: string, err: unknown): AgentError {
  if (err instanceof SecretApiError) {
    return new AgentError("write_failed", `${description}: ${doing} the Secret: ${err.message}`);
  }
  // A bug of ours: the message is ours, never the set's contents.
  const message = err instanceof Error ? err.message : String(err);
  return new AgentError("agent_internal", `${description}: ${doing} the Secret: ${message}`);
}

/** `name` or `prefix/name`, the prefix a DNS subdomain (`app.kubernetes.io/name`). */
function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf("/");
  if (slash === -1) return LABEL_PART.test(key);
  return DNS_SUBDOMAIN.test(key.slice(0, slash)) && LABEL_PART.test(key.slice(slash + 1));
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed === undefined || trimmed === "" ? undefined : trimmed;
}
