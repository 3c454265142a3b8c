/**
 * A minimal Kubernetes API client on node:https: one JSON request at a time, the cluster's CA as
 * the only trust anchor, credentials read afresh for every request (the kubelet rotates a pod's
 * projected token about hourly, and `ca.crt` when the cluster's CA rotates). No client library:
 * the agent needs three calls on one resource, and @kubernetes/client-node would bring a
 * request stack, a YAML parser and an OpenAPI model of the whole API for them.
 */
import { readFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import type { KubernetesConnection, Material } from "./connection.ts";

export interface KubernetesApiRequest {
  readonly method: "GET" | "POST" | "PATCH";
  /** From the API root, e.g. `/api/v1/namespaces/default/secrets/identity-output`. */
  readonly path: string;
  readonly query?: Readonly<Record<string, string>>;
  /** A JSON text (for apply: JSON is YAML, so it goes as `application/apply-patch+yaml`). */
  readonly body?: string;
  readonly contentType?: "application/json" | "application/apply-patch+yaml";
}

export interface KubernetesApiResponse {
  readonly status: number;
  /** The parsed JSON body; undefined when the body was empty or not JSON. */
  readonly body: unknown;
}

/** Why no HTTP answer came back; the message names the server, never a credential. */
export type KubernetesTransportFailure =
  "credentials_unreadable" | "unreachable" | "tls" | "oversized";

export class KubernetesTransportError extends Error {
  override readonly name = "KubernetesTransportError";
  readonly failure: KubernetesTransportFailure;

  constructor(failure: KubernetesTransportFailure, message: string) {
    super(message);
    this.failure = failure;
  }
}

export interface KubernetesApiClient {
  readonly connection: KubernetesConnection;
  /** Sends one request; resolves with any HTTP answer, rejects with `KubernetesTransportError`. */
  request(request: KubernetesApiRequest): Promise<KubernetesApiResponse>;
}

/** A Secret is at most 1 MiB; its JSON (base64 data, managedFields) stays well under this. */
const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;
const USER_AGENT = "kube-join-agent";

/** Node's codes for a server certificate that the configured CA does not vouch for. */
const TLS_VERIFY_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * @example
 *   const client = createKubernetesApiClient(resolveKubernetesConnection(process.env));
 *   const { status, body } = await client.request({ method: "GET", path: "/api/v1" });
 */
export function createKubernetesApiClient(
  connection: KubernetesConnection,
  options: { readonly timeoutMs?: number } = {},
): KubernetesApiClient {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    connection,
    async request(request) {
      const credentials = await readCredentials(connection);
      return send(connection, credentials, request, timeoutMs);
    },
  };
}

interface Credentials {
  readonly ca: Buffer;
  readonly token: string | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
}

async function readCredentials(connection: KubernetesConnection): Promise<Credentials> {
  const { auth } = connection;
  const ca = await readMaterial(connection.ca, "the cluster CA certificate");
  if (auth.kind === "bearer-token") {
    const token = (await readMaterial(auth.token, "the bearer token")).toString("utf8").trim();
    if (token === "") {
      const where = auth.token.kind === "file" ? ` ${auth.token.path}` : "";
      throw new KubernetesTransportError(
        "credentials_unreadable",
        `the bearer token${where} is empty`,
      );
    }
    return { ca, token, cert: undefined, key: undefined };
  }
  if (auth.kind === "client-certificate") {
    return {
      ca,
      token: undefined,
      cert: await readMaterial(auth.cert, "the client certificate"),
      key: await readMaterial(auth.key, "the client key"),
    };
  }
  return { ca, token: undefined, cert: undefined, key: undefined };
}

async function readMaterial(material: Material, what: string): Promise<Buffer> {
  if (material.kind === "inline") return material.bytes;
  try {
    return await readFile(material.path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "error";
    throw new KubernetesTransportError(
      "credentials_unreadable",
      `cannot read ${what} ${material.path}: ${code}`,
    );
  }
}

function send(
  connection: KubernetesConnection,
  credentials: Credentials,
  request: KubernetesApiRequest,
  timeoutMs: number,
): Promise<KubernetesApiResponse> {
  const url = new URL(connection.server.href);
  url.pathname = `${url.pathname.replace(/\/+$/, "")}${request.path}`;
  for (const [name, value] of Object.entries(request.query ?? {})) {
    url.searchParams.set(name, value);
  }
  // A deadline for the whole exchange: an API server (or a proxy in front of it) that trickles
  // its answer must not hold the renewal loop past the identity's expiry.
  const deadline = AbortSignal.timeout(timeoutMs);
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      const code = (err as NodeJS.ErrnoException).code;
      if (deadline.aborted) {
        reject(
          new KubernetesTransportError(
            "unreachable",
            `the Kubernetes API at ${url.origin} gave no complete answer within ${timeoutMs} ms`,
          ),
        );
      } else if (code !== undefined && TLS_VERIFY_CODES.has(code)) {
        reject(
          new KubernetesTransportError(
            "tls",
            `the Kubernetes API at ${url.origin} presented a certificate that the cluster CA ` +
              `from ${connection.source} does not vouch for (${code}: ${err.message})`,
          ),
        );
      } else {
        reject(
          new KubernetesTransportError(
            "unreachable",
            `cannot reach the Kubernetes API at ${url.origin}: ${code === undefined ? err.message : `${code}: ${err.message}`}`,
          ),
        );
      }
    };
    const headers: Record<string, string | number> = {
      accept: "application/json",
      "user-agent": USER_AGENT,
    };
    if (credentials.token !== undefined) headers["authorization"] = `Bearer ${credentials.token}`;
    if (request.body !== undefined) {
      headers["content-type"] = request.contentType ?? "application/json";
      headers["content-length"] = Buffer.byteLength(request.body);
    }
    const req = httpsRequest(
      url,
      {
        method: request.method,
        headers,
        signal: deadline,
        // `ca` replaces Node's bundled roots: only the cluster's CA can vouch for the server.
        ca: credentials.ca,
        rejectUnauthorized: true,
        ...(connection.tlsServerName === undefined ? {} : { servername: connection.tlsServerName }),
        ...(credentials.cert === undefined ? {} : { cert: credentials.cert, key: credentials.key }),
        // One TLS session per request: credentials change between requests (a rotated token or
        // client certificate), and the agent talks to the API a few times per renewal.
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            reject(
              new KubernetesTransportError(
                "oversized",
                `the Kubernetes API at ${url.origin} answered with more than ${MAX_RESPONSE_BYTES} bytes`,
              ),
            );
            req.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          let body: unknown;
          try {
            body = text === "" ? undefined : JSON.parse(text);
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
        res.on("error", fail);
      },
    );
    req.on("error", fail);
    req.end(request.body);
  });
}
