/**
 * The part of a kubeconfig the agent honours: the current context's cluster (`server`,
 * `certificate-authority(-data)`, `tls-server-name`) and user (`token`, `tokenFile`,
 * `client-certificate(-data)` + `client-key(-data)`). Several files (a `KUBECONFIG` list) merge
 * as kubectl merges them: the first file that sets `current-context` or defines a named cluster,
 * user or context wins. Settings the agent cannot honour faithfully (`exec`, `auth-provider`,
 * impersonation, `insecure-skip-tls-verify`, `proxy-url`, basic auth) are errors rather than
 * silently ignored: ignoring them would mean talking to the API server as someone else, or
 * trusting something other than the cluster's CA.
 */
import { ConfigError } from "../../errors.ts";
import { parseYamlDocument } from "../../yaml/yaml-source.ts";
import type { FieldPath, YamlSource } from "../../yaml/yaml-source.ts";
import { resolveRelativeTo } from "./connection.ts";
import type { KubernetesAuth, KubernetesConnection, Material } from "./connection.ts";

export interface KubeconfigText {
  readonly file: string;
  readonly text: string;
}

/** A named entry (`clusters[i]`, `users[i]`, `contexts[i]`) and where it was written. */
interface Entry {
  readonly source: YamlSource;
  readonly path: FieldPath;
  readonly body: Record<string, unknown>;
}

const UNSUPPORTED_USER_FIELDS: Readonly<Record<string, string>> = {
  exec: "credential plugins are not supported",
  "auth-provider": "auth providers are not supported",
  username: "basic authentication is not supported",
  password: "basic authentication is not supported",
  as: "impersonation is not supported",
  "as-uid": "impersonation is not supported",
  "as-groups": "impersonation is not supported",
  "as-user-extra": "impersonation is not supported",
};

/**
 * Resolves the current context of the merged files into a connection.
 *
 * @throws ConfigError with every problem found, each `file:line:col: field.path: message`.
 */
export function parseKubeconfig(files: readonly KubeconfigText[]): KubernetesConnection {
  const problems: string[] = [];
  const sources: YamlSource[] = [];
  for (const { file, text } of files) {
    const source = parseYamlDocument(file, text);
    if (source.value === null) continue; // an empty file contributes nothing, as in kubectl
    if (!isRecord(source.value)) {
      problems.push(source.problem([], "a kubeconfig must be a mapping"));
      continue;
    }
    sources.push(source);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const names = files.map((f) => f.file).join(", ");

  let current: { name: string; source: YamlSource } | undefined;
  const clusters = new Map<string, Entry>();
  const users = new Map<string, Entry>();
  const contexts = new Map<string, Entry>();
  for (const source of sources) {
    const root = source.value as Record<string, unknown>;
    const currentContext = root["current-context"];
    if (currentContext !== undefined && typeof currentContext !== "string") {
      problems.push(source.problem(["current-context"], "must be a string"));
    } else if (current === undefined && currentContext !== undefined && currentContext !== "") {
      current = { name: currentContext, source };
    }
    collect(source, "clusters", "cluster", clusters, problems);
    collect(source, "users", "user", users, problems);
    collect(source, "contexts", "context", contexts, problems);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  if (current === undefined) {
    throw new ConfigError([
      `KUBECONFIG (${names}): no current-context is set (kubectl config use-context NAME)`,
    ]);
  }
  const context = contexts.get(current.name);
  if (context === undefined) {
    throw new ConfigError([
      current.source.problem(
        ["current-context"],
        `names the context "${current.name}", which no file of KUBECONFIG defines`,
      ),
    ]);
  }

  const clusterName = context.body["cluster"];
  const userName = context.body["user"];
  if (typeof clusterName !== "string" || clusterName === "") {
    problems.push(context.source.problem([...context.path, "cluster"], "must name a cluster"));
  }
  if (userName !== undefined && typeof userName !== "string") {
    problems.push(context.source.problem([...context.path, "user"], "must be a string"));
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const cluster = clusters.get(clusterName as string);
  if (cluster === undefined) {
    throw new ConfigError([
      context.source.problem(
        [...context.path, "cluster"],
        `names the cluster "${String(clusterName)}", which no file of KUBECONFIG defines`,
      ),
    ]);
  }
  let user: Entry | undefined;
  if (typeof userName === "string" && userName !== "") {
    user = users.get(userName);
    if (user === undefined) {
      throw new ConfigError([
        context.source.problem(
          [...context.path, "user"],
          `names the user "${userName}", which no file of KUBECONFIG defines`,
        ),
      ]);
    }
  }

  const server = readServer(cluster, problems);
  const ca = readMaterial(cluster, "certificate-authority", "certificate-authority-data", problems);
  if (ca === undefined && !problems.some((p) => p.includes("certificate-authority"))) {
    problems.push(
      cluster.source.problem(
        cluster.path,
        "certificate-authority or certificate-authority-data is required: the agent trusts " +
          "only the cluster's own CA, never the system's roots",
      ),
    );
  }
  if (cluster.body["insecure-skip-tls-verify"] === true) {
    problems.push(
      cluster.source.problem(
        [...cluster.path, "insecure-skip-tls-verify"],
        "is not supported: the agent always verifies the API server against the cluster's CA",
      ),
    );
  }
  if (cluster.body["proxy-url"] !== undefined) {
    problems.push(
      cluster.source.problem([...cluster.path, "proxy-url"], "is not supported: no proxy is used"),
    );
  }
  const tlsServerName = cluster.body["tls-server-name"];
  if (tlsServerName !== undefined && typeof tlsServerName !== "string") {
    problems.push(cluster.source.problem([...cluster.path, "tls-server-name"], "must be a string"));
  }
  const auth = user === undefined ? ({ kind: "none" } as const) : readAuth(user, problems);
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    server: server as URL,
    source: `KUBECONFIG ${names} (context ${current.name})`,
    ca: ca as Material,
    tlsServerName:
      typeof tlsServerName === "string" && tlsServerName !== "" ? tlsServerName : undefined,
    auth,
  };
}

function collect(
  source: YamlSource,
  listKey: "clusters" | "users" | "contexts",
  bodyKey: "cluster" | "user" | "context",
  into: Map<string, Entry>,
  problems: string[],
): void {
  const list = (source.value as Record<string, unknown>)[listKey];
  if (list === undefined || list === null) return;
  if (!Array.isArray(list)) {
    problems.push(source.problem([listKey], "must be a list"));
    return;
  }
  list.forEach((item: unknown, index) => {
    const path = [listKey, index];
    if (!isRecord(item)) {
      problems.push(source.problem(path, "must be a mapping with name and " + bodyKey));
      return;
    }
    const name = item["name"];
    const body = item[bodyKey];
    if (typeof name !== "string" || name === "") {
      problems.push(source.problem([...path, "name"], "must be a non-empty string"));
      return;
    }
    if (!isRecord(body)) {
      problems.push(source.problem([...path, bodyKey], "must be a mapping"));
      return;
    }
    // kubectl's merge: the first file that defines a name wins.
    if (!into.has(name)) into.set(name, { source, path: [...path, bodyKey], body });
  });
}

function readServer(cluster: Entry, problems: string[]): URL | undefined {
  const value = cluster.body["server"];
  const where = [...cluster.path, "server"];
  if (typeof value !== "string" || value === "") {
    problems.push(cluster.source.problem(where, "must be the API server's https:// URL"));
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    problems.push(cluster.source.problem(where, "is not a URL"));
    return undefined;
  }
  if (url.protocol !== "https:") {
    problems.push(cluster.source.problem(where, "must be an https:// URL"));
    return undefined;
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    problems.push(
      cluster.source.problem(where, "must not carry credentials, a query or a fragment"),
    );
    return undefined;
  }
  return url;
}

/** `file` (a path) or `data` (base64), not both; undefined when neither is set. */
function readMaterial(
  entry: Entry,
  fileKey: string,
  dataKey: string,
  problems: string[],
): Material | undefined {
  const file = entry.body[fileKey];
  const data = entry.body[dataKey];
  if (file !== undefined && data !== undefined) {
    problems.push(
      entry.source.problem([...entry.path, dataKey], `set ${fileKey} or ${dataKey}, not both`),
    );
    return undefined;
  }
  if (data !== undefined) {
    const bytes = typeof data === "string" ? decodeBase64(data) : undefined;
    if (bytes === undefined) {
      problems.push(entry.source.problem([...entry.path, dataKey], "must be non-empty base64"));
      return undefined;
    }
    return { kind: "inline", bytes };
  }
  if (file !== undefined) {
    if (typeof file !== "string" || file === "") {
      problems.push(entry.source.problem([...entry.path, fileKey], "must be a file path"));
      return undefined;
    }
    return { kind: "file", path: resolveRelativeTo(entry.source.file, file) };
  }
  return undefined;
}

function readAuth(user: Entry, problems: string[]): KubernetesAuth {
  for (const [field, why] of Object.entries(UNSUPPORTED_USER_FIELDS)) {
    if (user.body[field] !== undefined) {
      problems.push(user.source.problem([...user.path, field], `is not supported: ${why}`));
    }
  }
  const cert = readMaterial(user, "client-certificate", "client-certificate-data", problems);
  const key = readMaterial(user, "client-key", "client-key-data", problems);
  const token = user.body["token"];
  const tokenFile = user.body["tokenFile"];
  let bearer: Material | undefined;
  if (token !== undefined) {
    // The token itself never appears in a message; only where it was written.
    if (typeof token !== "string" || token.trim() === "") {
      problems.push(user.source.problem([...user.path, "token"], "must be a non-empty string"));
    } else {
      bearer = { kind: "inline", bytes: Buffer.from(token.trim(), "utf8") };
    }
  } else if (tokenFile !== undefined) {
    if (typeof tokenFile !== "string" || tokenFile === "") {
      problems.push(user.source.problem([...user.path, "tokenFile"], "must be a file path"));
    } else {
      bearer = { kind: "file", path: resolveRelativeTo(user.source.file, tokenFile) };
    }
  }
  if ((cert === undefined) !== (key === undefined)) {
    problems.push(
      user.source.problem(
        user.path,
        "a client certificate needs both client-certificate(-data) and client-key(-data)",
      ),
    );
    return { kind: "none" };
  }
  if (cert !== undefined && key !== undefined) {
    if (bearer !== undefined) {
      problems.push(
        user.source.problem(user.path, "set a token or a client certificate, not both"),
      );
    }
    return { kind: "client-certificate", cert, key };
  }
  return bearer === undefined ? { kind: "none" } : { kind: "bearer-token", token: bearer };
}

function decodeBase64(text: string): Buffer | undefined {
  const compact = text.replace(/\s+/g, "");
  if (compact === "" || !/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) {
    return undefined;
  }
  return Buffer.from(compact, "base64");
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
