/**
 * The three Secret calls the `kubernetes_secret` destination makes, and what their refusals
 * mean. A write is one server-side apply of the whole object (`PATCH` with
 * `application/apply-patch+yaml`), so the API server swaps every key at once: a pod reading the
 * Secret, or the kubelet refreshing a mounted one, sees the previous complete set or the new one.
 *
 * - `fieldManager=kube-join-agent`: the agent's own name in `metadata.managedFields`, so keys it
 *   stops writing are removed by the next apply and keys someone else added are left alone.
 * - `force=true`: the agent owns the identity keys. Without it, one `kubectl edit` of a key (or a
 *   Secret pre-created with `kubectl create secret`) would make every later renewal fail with a
 *   field-manager conflict until a human intervened, while the identity expired.
 * - `metadata.resourceVersion` from the read just before: force takes over *fields*, but a write
 *   based on an object that changed in between is still refused (409 Conflict), and retried on
 *   the agent's next attempt from a fresh read. A Secret that does not exist is applied without
 *   one, which creates it (the API server authorizes that as `create` as well as `patch`).
 */
import type { KubernetesApiClient, KubernetesApiResponse } from "./api-client.ts";

/** The field manager the agent's applies are recorded under (`metadata.managedFields`). */
export const FIELD_MANAGER = "kube-join-agent";

export interface SecretRef {
  readonly namespace: string;
  readonly name: string;
}

export interface StoredSecret {
  readonly resourceVersion: string;
  readonly type: string;
  readonly data: ReadonlyMap<string, Buffer>;
}

export type SecretFailure =
  | "transport"
  | "unauthorized"
  | "forbidden"
  | "conflict"
  | "invalid"
  | "not_found"
  | "unavailable"
  | "bad_response";

/** A refused or failed Secret call. The message names the object and the cause, never data. */
export class SecretApiError extends Error {
  override readonly name = "SecretApiError";
  readonly failure: SecretFailure;
  readonly status: number | undefined;

  constructor(failure: SecretFailure, message: string, status?: number) {
    super(message);
    this.failure = failure;
    this.status = status;
  }
}

type Verb = "get" | "create" | "patch";

/** The Secret, or undefined when it does not exist (404). */
export async function getSecret(
  client: KubernetesApiClient,
  ref: SecretRef,
): Promise<StoredSecret | undefined> {
  const response = await call(client, { method: "GET", path: secretPath(ref) }, ref, "get");
  if (response.status === 404 && statusReason(response.body) === "NotFound") return undefined;
  if (response.status !== 200) throw refusal(client, response, ref, "get");
  return parseSecret(response.body, ref);
}

/**
 * Applies the whole Secret: `type: Opaque`, `data` exactly `data`, the given labels, and
 * `resourceVersion` when the caller read one (omitted: the Secret is created). Returns the
 * stored object, checked to hold exactly what was sent.
 */
export async function applySecret(
  client: KubernetesApiClient,
  ref: SecretRef,
  secret: {
    readonly labels: Readonly<Record<string, string>>;
    readonly data: ReadonlyMap<string, Buffer>;
    readonly resourceVersion: string | undefined;
  },
): Promise<StoredSecret> {
  const data: Record<string, string> = {};
  for (const [key, bytes] of secret.data) data[key] = bytes.toString("base64");
  const metadata: Record<string, unknown> = { name: ref.name, namespace: ref.namespace };
  if (Object.keys(secret.labels).length > 0) metadata["labels"] = { ...secret.labels };
  if (secret.resourceVersion !== undefined) metadata["resourceVersion"] = secret.resourceVersion;
  const body = JSON.stringify({ apiVersion: "v1", kind: "Secret", metadata, type: "Opaque", data });
  // Applying to a Secret that does not exist creates it, which needs `create` too.
  const verb: Verb = secret.resourceVersion === undefined ? "create" : "patch";
  const response = await call(
    client,
    {
      method: "PATCH",
      path: secretPath(ref),
      query: { fieldManager: FIELD_MANAGER, force: "true" },
      body,
      contentType: "application/apply-patch+yaml",
    },
    ref,
    verb,
  );
  if (response.status !== 200 && response.status !== 201) {
    throw refusal(client, response, ref, verb);
  }
  const stored = parseSecret(response.body, ref);
  // Keys another field manager added stay (server-side apply leaves fields it does not own);
  // every key of the set must be stored exactly as sent, or something (a mutating webhook)
  // changed the identity on its way in.
  const altered = [...secret.data]
    .filter(([key, bytes]) => stored.data.get(key)?.equals(bytes) !== true)
    .map(([key]) => key);
  if (altered.length > 0 || stored.type !== "Opaque") {
    throw new SecretApiError(
      "bad_response",
      `the API server stored Secret ${ref.namespace}/${ref.name} other than applied ` +
        `(${altered.length > 0 ? `keys changed: ${altered.join(", ")}` : `type ${stored.type}`})`,
      response.status,
    );
  }
  return stored;
}

function secretPath(ref: SecretRef): string {
  return `/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets/${encodeURIComponent(ref.name)}`;
}

async function call(
  client: KubernetesApiClient,
  request: Parameters<KubernetesApiClient["request"]>[0],
  ref: SecretRef,
  verb: Verb,
): Promise<KubernetesApiResponse> {
  try {
    return await client.request(request);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new SecretApiError(
      "transport",
      `${verb} of Secret ${ref.namespace}/${ref.name} failed: ${message}`,
    );
  }
}

function parseSecret(body: unknown, ref: SecretRef): StoredSecret {
  const bad = (why: string) =>
    new SecretApiError(
      "bad_response",
      `the API server's answer for Secret ${ref.namespace}/${ref.name} is not a usable Secret: ${why}`,
    );
  if (!isRecord(body) || body["kind"] !== "Secret") throw bad("kind is not Secret");
  const metadata = body["metadata"];
  if (!isRecord(metadata)) throw bad("no metadata");
  const resourceVersion = metadata["resourceVersion"];
  if (typeof resourceVersion !== "string" || resourceVersion === "") {
    throw bad("no metadata.resourceVersion");
  }
  if (metadata["name"] !== ref.name || (metadata["namespace"] ?? ref.namespace) !== ref.namespace) {
    throw bad("it names another object");
  }
  const type = body["type"] ?? "Opaque";
  if (typeof type !== "string") throw bad("type is not a string");
  const rawData = body["data"] ?? {};
  if (!isRecord(rawData)) throw bad("data is not a mapping");
  const data = new Map<string, Buffer>();
  for (const [key, value] of Object.entries(rawData)) {
    if (
      typeof value !== "string" ||
      !/^[A-Za-z0-9+/]*={0,2}$/.test(value) ||
      value.length % 4 !== 0
    ) {
      throw bad(`data.${key} is not base64`);
    }
    data.set(key, Buffer.from(value, "base64"));
  }
  return { resourceVersion, type, data };
}

/**
 * Turns a non-success answer into an error an operator can act on. Only the Status `reason`,
 * `details.causes[].field` and, for a 403, the user and verb the authorizer names are taken from
 * the server's body: its free-text message is not repeated, since a webhook may put anything in
 * it.
 */
function refusal(
  client: KubernetesApiClient,
  response: KubernetesApiResponse,
  ref: SecretRef,
  requestVerb: Verb,
): SecretApiError {
  const { status, body } = response;
  const reason = statusReason(body);
  const secret = `Secret ${ref.namespace}/${ref.name}`;
  const origin = client.connection.server.origin;
  const label = `${status}${reason === undefined ? "" : ` ${reason}`}`;
  switch (status) {
    case 401:
      return new SecretApiError(
        "unauthorized",
        `the Kubernetes API at ${origin} did not accept the agent's credentials from ` +
          `${client.connection.source} (${label})`,
        status,
      );
    case 403: {
      const message = isRecord(body) && typeof body["message"] === "string" ? body["message"] : "";
      const verb =
        /\bcannot (get|create|patch|update) resource\b/.exec(message)?.[1] ?? requestVerb;
      const user = /\bUser "([^"\\]{1,253})"/.exec(message)?.[1];
      const names = verb === "create" ? "" : `, resourceNames: ["${ref.name}"]`;
      return new SecretApiError(
        "forbidden",
        `the Kubernetes API refused to ${verb} secrets in namespace "${ref.namespace}"` +
          `${user === undefined ? "" : ` for ${user}`} (${label}). A Role in namespace ` +
          `"${ref.namespace}" with the rule {apiGroups: [""], resources: ["secrets"]${names}, ` +
          `verbs: ["${verb}"]}, bound to the agent's service account, allows it; the ` +
          `kubernetes_secret destination needs get, create and patch (docs/kubernetes-secret.md)`,
        status,
      );
    }
    case 404:
      return new SecretApiError(
        "not_found",
        `${requestVerb} of ${secret} answered ${label}: does the namespace "${ref.namespace}" exist?`,
        status,
      );
    case 409:
      return new SecretApiError(
        "conflict",
        `${secret} changed between the agent's read and its write (${label}); the Secret was ` +
          `left as it was and the next attempt starts from a fresh read`,
        status,
      );
    case 422: {
      const fields = causeFields(body);
      const immutableType = fields.includes("type");
      return new SecretApiError(
        "invalid",
        `the API server refused ${secret} as invalid (${label}` +
          `${fields.length === 0 ? "" : `: ${fields.join(", ")}`})` +
          (immutableType
            ? `; the existing Secret is not of type Opaque and a Secret's type cannot change: ` +
              `delete it or name another Secret`
            : ""),
        status,
      );
    }
    default:
      return new SecretApiError(
        status === 429 || status >= 500 ? "unavailable" : "bad_response",
        `${requestVerb} of ${secret} answered ${label}`,
        status,
      );
  }
}

function statusReason(body: unknown): string | undefined {
  if (!isRecord(body) || body["kind"] !== "Status") return undefined;
  const reason = body["reason"];
  return typeof reason === "string" && /^[A-Za-z]{1,64}$/.test(reason) ? reason : undefined;
}

function causeFields(body: unknown): string[] {
  const details = isRecord(body) ? body["details"] : undefined;
  const causes = isRecord(details) ? details["causes"] : undefined;
  if (!Array.isArray(causes)) return [];
  const fields = causes
    .map((cause: unknown) => (isRecord(cause) ? cause["field"] : undefined))
    .filter(
      (field): field is string => typeof field === "string" && /^[\w.[\]-]{1,256}$/.test(field),
    );
  return [...new Set(fields)].slice(0, 10);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
