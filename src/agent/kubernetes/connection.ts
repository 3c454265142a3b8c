/** The connection an API client needs; how it is found is in `environment.ts`. */
import { dirname, isAbsolute, resolve } from "node:path";
import { ConfigError } from "../../errors.ts";

/** Bytes given inline (a kubeconfig's `*-data`, `token`) or a file read at each request. */
export type Material =
  | { readonly kind: "inline"; readonly bytes: Buffer }
  | { readonly kind: "file"; readonly path: string };

export type KubernetesAuth =
  | { readonly kind: "none" }
  | { readonly kind: "bearer-token"; readonly token: Material }
  | { readonly kind: "client-certificate"; readonly cert: Material; readonly key: Material };

export interface KubernetesConnection {
  /** The API server's base URL (`https://host:port`, possibly with a path prefix). */
  readonly server: URL;
  /** For messages: `KUBECONFIG /home/me/.kube/config (context kind-kind)` or `in-cluster ...`. */
  readonly source: string;
  /** The only trust anchors for the API server's certificate (PEM). */
  readonly ca: Material;
  /** A kubeconfig's `tls-server-name`: the name checked in the server certificate. */
  readonly tlsServerName: string | undefined;
  readonly auth: KubernetesAuth;
}

/** Where the kubelet mounts a pod's service-account credentials. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/** The pod's own service account, as client-go's `rest.InClusterConfig` finds it. */
export function inClusterConnection(env: NodeJS.ProcessEnv, dir: string): KubernetesConnection {
  const host = env["KUBERNETES_SERVICE_HOST"]?.trim() ?? "";
  const port = env["KUBERNETES_SERVICE_PORT"]?.trim() ?? "";
  if (host === "" || port === "") {
    throw new ConfigError([
      "no Kubernetes API credentials: KUBECONFIG is not set, and KUBERNETES_SERVICE_HOST and " +
        "KUBERNETES_SERVICE_PORT (set by the kubelet in every pod) are not set either",
    ]);
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw new ConfigError([`KUBERNETES_SERVICE_PORT must be a TCP port number, got "${port}"`]);
  }
  // An IPv6 service address (`fd00::1`) goes in brackets, as Go's net.JoinHostPort writes it.
  const authority =
    host.includes(":") && !host.startsWith("[") ? `[${host}]:${port}` : `${host}:${port}`;
  let server: URL;
  try {
    server = new URL(`https://${authority}`);
  } catch {
    throw new ConfigError([`KUBERNETES_SERVICE_HOST is not a host name or address: "${host}"`]);
  }
  return {
    server,
    source: `in-cluster service account (${dir})`,
    ca: { kind: "file", path: `${dir}/ca.crt` },
    tlsServerName: undefined,
    auth: { kind: "bearer-token", token: { kind: "file", path: `${dir}/token` } },
  };
}

/** A kubeconfig path, relative to the kubeconfig file that names it (client-go's rule). */
export function resolveRelativeTo(kubeconfigFile: string, path: string): string {
  return isAbsolute(path) ? path : resolve(dirname(kubeconfigFile), path);
}
