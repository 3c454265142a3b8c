/**
 * Where the agent's Kubernetes API client connects and how it authenticates, in client-go's
 * order (tbot builds its client with `clientcmd.BuildConfigFromFlags("", $KUBECONFIG)`):
 * `KUBECONFIG` when set, else the pod's own service account (`KUBERNETES_SERVICE_HOST`/`_PORT`,
 * the mounted `token` and `ca.crt`). Resolved once, when the destination is built, so an admin's
 * mistake fails at start-up; files (the token above all, which the kubelet rotates) are named
 * here and read afresh for every request by the client.
 */
import { readFileSync } from "node:fs";
import { delimiter } from "node:path";
import { ConfigError } from "../../errors.ts";
import { SERVICE_ACCOUNT_DIR, inClusterConnection } from "./connection.ts";
import type { KubernetesConnection } from "./connection.ts";
import { parseKubeconfig } from "./kubeconfig.ts";

/**
 * Picks the connection from the environment: `KUBECONFIG` (a list separated by `:`, merged as
 * kubectl merges it) when set and non-empty, else the in-cluster service account.
 *
 * @throws ConfigError when neither is usable, or the kubeconfig is unreadable or unsupported.
 * @example resolveKubernetesConnection(process.env).server.origin // "https://10.96.0.1:443"
 */
export function resolveKubernetesConnection(
  env: NodeJS.ProcessEnv,
  options: { readonly serviceAccountDir?: string } = {},
): KubernetesConnection {
  const kubeconfig = env["KUBECONFIG"];
  if (kubeconfig !== undefined && kubeconfig.trim() !== "") {
    const files = kubeconfig.split(delimiter).filter((file) => file.trim() !== "");
    return parseKubeconfig(files.map((file) => ({ file, text: readKubeconfig(file) })));
  }
  return inClusterConnection(env, options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR);
}

function readKubeconfig(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new ConfigError([`KUBECONFIG names ${file}, which cannot be read: ${code}`]);
  }
}
