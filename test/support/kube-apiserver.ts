import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import type { TLSSocket } from "node:tls";

/**
 * A stand-in for the part of the Kubernetes API server the agent's `kubernetes_secret`
 * destination and `kubectl get secret` use, on 127.0.0.1 over HTTPS. These machines run no API
 * server, so this is the narrowest faithful stand-in; test/kubernetes-secret.test.ts checks it
 * against the real kubectl. What it implements, following the real server's wire behaviour:
 *
 * - authentication: bearer tokens (and client certificates, user = the certificate's CN);
 *   anything else is 401 with a `Status` body;
 * - discovery as kubectl reads it: `/api` (APIVersions), `/apis` (an empty APIGroupList),
 *   `/api/v1` (an APIResourceList with `secrets`), `/version`;
 * - Secrets: `GET`, `POST` (create), `PATCH` with `application/apply-patch+yaml` (server-side
 *   apply of a JSON body: required `fieldManager`, `force`, per-field ownership by manager, fields
 *   a manager stops applying removed, field-manager conflicts without `force`, a carried
 *   `metadata.resourceVersion` as a precondition), immutable `type`, data-key validation,
 *   `resourceVersion` bumped only by a change;
 * - authorization: per user, the verbs get/create/patch on secrets; an apply that creates needs
 *   `create` as well as `patch`, as upstream; a refusal is 403 with the authorizer's message.
 *
 * An apply carrying a `resourceVersion` for a Secret that does not exist creates it, the
 * precondition ignored: what the real server does for ConfigMaps and Secrets (their registry
 * allows create on update), as reported in kubernetes/kubernetes#106745.
 */

export type SecretVerb = "get" | "create" | "patch";

export interface StandInSecret {
  readonly resourceVersion: string;
  readonly type: string;
  readonly data: Readonly<Record<string, string>>;
  readonly labels: Readonly<Record<string, string>>;
  /** Field owners: `manager/operation` -> field keys (`type`, `data.KEY`, `labels.KEY`). */
  readonly managers: Readonly<Record<string, readonly string[]>>;
}

export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly contentType: string | undefined;
  readonly user: string | undefined;
  /** The parsed JSON body of a POST or PATCH. */
  readonly body: unknown;
}

interface StoredSecret {
  uid: string;
  created: string;
  resourceVersion: string;
  type: string;
  data: Map<string, string>;
  labels: Map<string, string>;
  /** `manager\u0000operation` -> fields, in insertion order. */
  owners: Map<string, Set<string>>;
  times: Map<string, string>;
}

type Hook = (request: RecordedRequest) => void | Promise<void>;

const ALL_VERBS: readonly SecretVerb[] = ["get", "create", "patch"];
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_BODY = 3 * 1024 * 1024;

export class KubeApiServer {
  readonly requests: RecordedRequest[] = [];
  private readonly secrets = new Map<string, StoredSecret>();
  private readonly namespaces = new Set(["default", "kube-system", "kube-public"]);
  private readonly verbs = new Map<string, Set<SecretVerb>>();
  private readonly hooks: { method: string; hook: Hook }[] = [];
  private readonly sockets = new Set<Socket>();
  private revision = 1000;
  private server: Server;
  private port = 0;

  private constructor(
    private readonly tls: { key: string; cert: string; clientCa?: string },
    private readonly tokens: ReadonlyMap<string, string>,
  ) {
    this.server = this.createHttpsServer();
  }

  /**
   * Starts on 127.0.0.1 with a server certificate for 127.0.0.1. `tokens` maps bearer tokens to
   * user names; each user may get, create and patch secrets until `setVerbs` says otherwise.
   */
  static async start(options: {
    key: string;
    cert: string;
    tokens: Readonly<Record<string, string>>;
    /** PEM of the CA whose client certificates authenticate (user = CN). */
    clientCa?: string;
    namespaces?: readonly string[];
  }): Promise<KubeApiServer> {
    const server = new KubeApiServer(
      {
        key: options.key,
        cert: options.cert,
        ...(options.clientCa ? { clientCa: options.clientCa } : {}),
      },
      new Map(Object.entries(options.tokens)),
    );
    for (const namespace of options.namespaces ?? []) server.namespaces.add(namespace);
    await server.listen(0);
    return server;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** The verbs on secrets `user` is allowed; the others are refused with 403. */
  setVerbs(user: string, verbs: readonly SecretVerb[]): void {
    this.verbs.set(user, new Set(verbs));
  }

  /** Runs `hook` when the next `method` request arrives, before it is handled. */
  beforeNext(method: "GET" | "POST" | "PATCH", hook: Hook): void {
    this.hooks.push({ method, hook });
  }

  secret(namespace: string, name: string): StandInSecret | undefined {
    const stored = this.secrets.get(`${namespace}/${name}`);
    if (stored === undefined) return undefined;
    const managers: Record<string, string[]> = {};
    for (const [owner, fields] of stored.owners) {
      if (fields.size > 0) managers[owner.replace("\u0000", "/")] = [...fields];
    }
    return {
      resourceVersion: stored.resourceVersion,
      type: stored.type,
      data: Object.fromEntries(stored.data),
      labels: Object.fromEntries(stored.labels),
      managers,
    };
  }

  /** Another writer's change (an `Update` by `manager`): the data is replaced, the RV bumped. */
  updateSecretAs(
    manager: string,
    namespace: string,
    name: string,
    data: Readonly<Record<string, string>>,
  ): void {
    const stored = this.secrets.get(`${namespace}/${name}`);
    if (stored === undefined) throw new Error(`no Secret ${namespace}/${name}`);
    stored.data = new Map(Object.entries(data));
    for (const fields of stored.owners.values()) {
      for (const field of fields) if (field.startsWith("data.")) fields.delete(field);
    }
    this.own(
      stored,
      `${manager}\u0000Update`,
      Object.keys(data).map((k) => `data.${k}`),
    );
    stored.resourceVersion = this.nextRevision();
  }

  deleteSecret(namespace: string, name: string): void {
    this.secrets.delete(`${namespace}/${name}`);
  }

  /** Stops listening (clients get ECONNREFUSED) but keeps every Secret; `resume` listens again. */
  async pause(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async resume(): Promise<void> {
    this.server = this.createHttpsServer();
    await this.listen(this.port);
  }

  async close(): Promise<void> {
    if (this.server.listening) await this.pause();
  }

  private createHttpsServer(): Server {
    const server = createServer(
      {
        key: this.tls.key,
        cert: this.tls.cert,
        ...(this.tls.clientCa === undefined
          ? {}
          : { ca: this.tls.clientCa, requestCert: true, rejectUnauthorized: false }),
      },
      (req, res) => {
        this.handle(req, res).catch((err: unknown) => {
          sendStatus(res, 500, "InternalError", `stand-in failure: ${String(err)}`);
        });
      },
    );
    server.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    return server;
  }

  private async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "127.0.0.1", () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  private nextRevision(): string {
    this.revision += 1;
    return String(this.revision);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://127.0.0.1");
    const raw = await readBody(req);
    if (raw === undefined) return sendStatus(res, 413, "RequestEntityTooLarge", "too large");
    // JSON only (what the agent sends, and kubectl after a 415 for protobuf); the media type is
    // checked by the handlers, after authentication and authorization, as the real server does.
    const mediaType = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    let body: unknown;
    let undecodable = false;
    if (raw.length > 0 && /^application\/(json|apply-patch\+yaml)$/.test(mediaType)) {
      try {
        body = JSON.parse(raw.toString("utf8"));
      } catch {
        undecodable = true;
      }
    } else if (raw.length > 0) {
      undecodable = true;
    }
    const user = this.authenticate(req);
    const recorded: RecordedRequest = {
      method: req.method ?? "",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      contentType: req.headers["content-type"],
      user,
      body,
    };
    this.requests.push(recorded);
    if (undecodable && user !== undefined && (req.method === "POST" || req.method === "PATCH")) {
      return mediaType === "application/json" || mediaType === "application/apply-patch+yaml"
        ? sendStatus(
            res,
            400,
            "BadRequest",
            "error decoding the body: the stand-in accepts JSON only",
          )
        : sendStatus(
            res,
            415,
            "UnsupportedMediaType",
            `the body of the request was in an unknown format - accepted media types include: ` +
              `application/json, application/apply-patch+yaml`,
          );
    }
    const hookAt = this.hooks.findIndex((h) => h.method === recorded.method);
    if (hookAt >= 0) {
      const [entry] = this.hooks.splice(hookAt, 1);
      await entry?.hook(recorded);
    }
    if (user === undefined) return sendStatus(res, 401, "Unauthorized", "Unauthorized");

    const path = url.pathname;
    if (req.method === "GET" && path === "/version") {
      return sendJson(res, 200, {
        major: "1",
        minor: "32",
        gitVersion: "v1.32.0-kube-join-stand-in",
        platform: "linux/amd64",
      });
    }
    if (req.method === "GET" && path === "/api") {
      return sendJson(res, 200, {
        kind: "APIVersions",
        versions: ["v1"],
        serverAddressByClientCIDRs: [
          { clientCIDR: "0.0.0.0/0", serverAddress: `127.0.0.1:${this.port}` },
        ],
      });
    }
    if (req.method === "GET" && path === "/apis") {
      return sendJson(res, 200, { kind: "APIGroupList", apiVersion: "v1", groups: [] });
    }
    if (req.method === "GET" && path === "/api/v1") {
      return sendJson(res, 200, {
        kind: "APIResourceList",
        groupVersion: "v1",
        resources: [
          {
            name: "secrets",
            singularName: "secret",
            namespaced: true,
            kind: "Secret",
            verbs: ["create", "get", "patch"],
          },
        ],
      });
    }
    const named = /^\/api\/v1\/namespaces\/([^/]+)\/secrets\/([^/]+)$/.exec(path);
    const collection = /^\/api\/v1\/namespaces\/([^/]+)\/secrets$/.exec(path);
    if (named !== null) {
      const namespace = decodeURIComponent(named[1]!);
      const name = decodeURIComponent(named[2]!);
      if (req.method === "GET") return this.get(res, user, namespace, name);
      if (req.method === "PATCH") return this.apply(res, recorded, user, namespace, name);
      return sendStatus(res, 405, "MethodNotAllowed", "the stand-in serves GET and PATCH here");
    }
    if (collection !== null && req.method === "POST") {
      return this.create(res, recorded, user, decodeURIComponent(collection[1]!));
    }
    return sendStatus(res, 404, "NotFound", "the server could not find the requested resource");
  }

  private authenticate(req: IncomingMessage): string | undefined {
    const header = req.headers["authorization"];
    if (header !== undefined) {
      const match = /^Bearer (\S+)$/.exec(header);
      return match === null ? undefined : this.tokens.get(match[1]!);
    }
    const socket = req.socket as TLSSocket;
    if (this.tls.clientCa === undefined || !socket.authorized) return undefined;
    const cn = socket.getPeerCertificate().subject?.CN;
    return typeof cn === "string" && cn !== "" ? cn : undefined;
  }

  private allowed(user: string, verb: SecretVerb): boolean {
    return (this.verbs.get(user) ?? new Set(ALL_VERBS)).has(verb);
  }

  private forbid(
    res: ServerResponse,
    user: string,
    verb: SecretVerb,
    namespace: string,
    name: string | undefined,
  ): void {
    const what = name === undefined ? "secrets" : `secrets "${name}"`;
    sendStatus(
      res,
      403,
      "Forbidden",
      `${what} is forbidden: User "${user}" cannot ${verb} resource "secrets" in API group "" ` +
        `in the namespace "${namespace}"`,
      { ...(name === undefined ? {} : { name }), kind: "secrets" },
    );
  }

  private get(res: ServerResponse, user: string, namespace: string, name: string): void {
    if (!this.allowed(user, "get")) return this.forbid(res, user, "get", namespace, name);
    const stored = this.secrets.get(`${namespace}/${name}`);
    if (stored === undefined) return notFound(res, name);
    sendJson(res, 200, render(namespace, name, stored));
  }

  private create(
    res: ServerResponse,
    request: RecordedRequest,
    user: string,
    namespace: string,
  ): void {
    if (!this.allowed(user, "create"))
      return this.forbid(res, user, "create", namespace, undefined);
    if (!this.namespaces.has(namespace)) return namespaceNotFound(res, namespace);
    const object = checkSecretBody(res, request.body, namespace, undefined);
    if (object === undefined) return;
    const key = `${namespace}/${object.name}`;
    if (object.resourceVersion !== undefined) {
      return sendStatus(
        res,
        500,
        "InternalError",
        "resourceVersion should not be set on objects to be created",
      );
    }
    if (this.secrets.has(key)) {
      return sendStatus(res, 409, "AlreadyExists", `secrets "${object.name}" already exists`, {
        name: object.name,
        kind: "secrets",
      });
    }
    const stored = newSecret(object.type ?? "Opaque", this.nextRevision());
    stored.data = new Map(Object.entries(object.data));
    stored.labels = new Map(Object.entries(object.labels));
    const manager = request.query["fieldManager"] ?? "unknown";
    this.own(stored, `${manager}\u0000Update`, [
      "type",
      ...Object.keys(object.data).map((k) => `data.${k}`),
      ...Object.keys(object.labels).map((k) => `labels.${k}`),
    ]);
    this.secrets.set(key, stored);
    sendJson(res, 201, render(namespace, object.name, stored));
  }

  private apply(
    res: ServerResponse,
    request: RecordedRequest,
    user: string,
    namespace: string,
    name: string,
  ): void {
    if (!this.allowed(user, "patch")) return this.forbid(res, user, "patch", namespace, name);
    const mediaType = (request.contentType ?? "").split(";")[0]!.trim();
    if (mediaType !== "application/apply-patch+yaml") {
      return sendStatus(
        res,
        415,
        "UnsupportedMediaType",
        `the body of the request was in an unknown format - accepted media types include: ` +
          `application/apply-patch+yaml (the stand-in implements server-side apply only)`,
      );
    }
    const manager = request.query["fieldManager"];
    if (manager === undefined || manager === "") {
      return sendStatus(
        res,
        422,
        "Invalid",
        `PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch`,
        {
          group: "meta.k8s.io",
          kind: "PatchOptions",
          causes: [{ reason: "FieldValueRequired", field: "fieldManager" }],
        },
      );
    }
    const force = request.query["force"];
    if (force !== undefined && force !== "true" && force !== "false") {
      return sendStatus(res, 400, "BadRequest", `invalid force value ${JSON.stringify(force)}`);
    }
    const object = checkSecretBody(res, request.body, namespace, name);
    if (object === undefined) return;
    const key = `${namespace}/${name}`;
    let stored = this.secrets.get(key);
    const creating = stored === undefined;
    if (
      object.resourceVersion !== undefined &&
      stored !== undefined &&
      stored.resourceVersion !== object.resourceVersion
    ) {
      return conflict(res, name);
    }
    if (creating) {
      if (!this.allowed(user, "create")) return this.forbid(res, user, "create", namespace, name);
      if (!this.namespaces.has(namespace)) return namespaceNotFound(res, namespace);
      stored = newSecret(object.type ?? "Opaque", "");
    }
    const target = stored as StoredSecret;
    if (object.type !== undefined && object.type !== target.type) {
      return sendStatus(
        res,
        422,
        "Invalid",
        `Secret "${name}" is invalid: type: Invalid value: "${object.type}": field is immutable`,
        {
          name,
          kind: "Secret",
          causes: [
            {
              reason: "FieldValueInvalid",
              message: `Invalid value: "${object.type}": field is immutable`,
              field: "type",
            },
          ],
        },
      );
    }
    const owner = `${manager}\u0000Apply`;
    const applied = new Map<string, string>();
    if (object.type !== undefined) applied.set("type", object.type);
    for (const [k, v] of Object.entries(object.data)) applied.set(`data.${k}`, v);
    for (const [k, v] of Object.entries(object.labels)) applied.set(`labels.${k}`, v);
    // Field-manager conflicts: another manager owns a field this apply sets to another value.
    const conflicts: { field: string; manager: string }[] = [];
    for (const [field, value] of applied) {
      if (valueOf(target, field) === value || valueOf(target, field) === undefined) continue;
      for (const [other, fields] of target.owners) {
        if (other !== owner && fields.has(field))
          conflicts.push({ field, manager: other.split("\u0000")[0]! });
      }
    }
    if (conflicts.length > 0 && force !== "true") {
      const causes = conflicts.map((c) => ({
        reason: "FieldManagerConflict",
        message: `conflict with "${c.manager}" using v1`,
        field: `.${c.field.replace(/^labels\./, "metadata.labels.")}`,
      }));
      return sendStatus(
        res,
        409,
        "Conflict",
        `Apply failed with ${causes.length} conflict${causes.length === 1 ? "" : "s"}: ` +
          causes.map((c) => `${c.message}: ${c.field}`).join(", "),
        { causes },
      );
    }
    const before = JSON.stringify(render(namespace, name, target));
    // force: the applied fields leave every other manager's set.
    for (const [other, fields] of target.owners) {
      if (other === owner) continue;
      for (const field of applied.keys()) {
        if (force === "true" || valueOf(target, field) !== applied.get(field)) fields.delete(field);
      }
    }
    // Fields this manager applied before and not now are removed, unless someone else owns them.
    const previous = target.owners.get(owner) ?? new Set<string>();
    for (const field of previous) {
      if (applied.has(field)) continue;
      const sharedWith = [...target.owners].some(
        ([other, fields]) => other !== owner && fields.has(field),
      );
      if (!sharedWith) removeField(target, field);
    }
    for (const [field, value] of applied) setField(target, field, value);
    target.owners.set(owner, new Set(applied.keys()));
    if (creating) {
      target.resourceVersion = this.nextRevision();
      this.secrets.set(key, target);
      return sendJson(res, 201, render(namespace, name, target));
    }
    if (JSON.stringify(render(namespace, name, target)) !== before) {
      target.resourceVersion = this.nextRevision();
      target.times.set(owner, new Date().toISOString().replace(/\.\d{3}Z$/, "Z"));
    }
    sendJson(res, 200, render(namespace, name, target));
  }

  private own(stored: StoredSecret, owner: string, fields: readonly string[]): void {
    const set = stored.owners.get(owner) ?? new Set<string>();
    for (const field of fields) set.add(field);
    stored.owners.set(owner, set);
    stored.times.set(owner, new Date().toISOString().replace(/\.\d{3}Z$/, "Z"));
  }
}

interface SecretBody {
  readonly name: string;
  readonly resourceVersion: string | undefined;
  readonly type: string | undefined;
  readonly data: Record<string, string>;
  readonly labels: Record<string, string>;
}

function checkSecretBody(
  res: ServerResponse,
  body: unknown,
  namespace: string,
  urlName: string | undefined,
): SecretBody | undefined {
  const bad = (message: string): undefined => {
    sendStatus(res, 400, "BadRequest", message);
    return undefined;
  };
  if (!isRecord(body)) return bad("the body must be a Secret object");
  if (body["apiVersion"] !== "v1" || body["kind"] !== "Secret") {
    return bad(
      `the stand-in serves only v1 Secret here, got ${String(body["apiVersion"])} ${String(body["kind"])}`,
    );
  }
  const metadata = isRecord(body["metadata"]) ? body["metadata"] : {};
  const name = metadata["name"];
  if (typeof name !== "string" || name === "") return bad("metadata.name: Required value");
  if (urlName !== undefined && name !== urlName) {
    return bad(`the name of the object (${name}) does not match the name on the URL (${urlName})`);
  }
  if (metadata["namespace"] !== undefined && metadata["namespace"] !== namespace) {
    return bad(
      "the namespace of the provided object does not match the namespace sent on the request",
    );
  }
  const resourceVersion = metadata["resourceVersion"];
  if (resourceVersion !== undefined && typeof resourceVersion !== "string") {
    return bad("metadata.resourceVersion must be a string");
  }
  const type = body["type"];
  if (type !== undefined && typeof type !== "string") return bad("type must be a string");
  const data = body["data"] ?? {};
  if (!isRecord(data)) return bad("data must be a mapping");
  const causes: { reason: string; field: string; message: string }[] = [];
  for (const [key, value] of Object.entries(data)) {
    if (typeof value !== "string" || !BASE64.test(value) || value.length % 4 !== 0) {
      return bad(`illegal base64 data in data.${key}`);
    }
    if (!SECRET_KEY.test(key)) {
      causes.push({
        reason: "FieldValueInvalid",
        field: `data[${key}]`,
        message: `Invalid value: "${key}": a valid config key must consist of alphanumeric characters, '-', '_' or '.'`,
      });
    }
  }
  if (causes.length > 0) {
    sendStatus(
      res,
      422,
      "Invalid",
      `Secret "${name}" is invalid: ${causes.map((c) => `${c.field}: ${c.message}`).join(", ")}`,
      {
        name,
        kind: "Secret",
        causes,
      },
    );
    return undefined;
  }
  const labels = isRecord(metadata["labels"]) ? metadata["labels"] : {};
  for (const value of Object.values(labels))
    if (typeof value !== "string") return bad("labels must be strings");
  return {
    name,
    resourceVersion,
    type,
    data: data as Record<string, string>,
    labels: labels as Record<string, string>,
  };
}

function newSecret(type: string, resourceVersion: string): StoredSecret {
  return {
    uid: randomUUID(),
    created: new Date().toISOString().replace(/\.\d{3}Z$/, "Z"),
    resourceVersion,
    type,
    data: new Map(),
    labels: new Map(),
    owners: new Map(),
    times: new Map(),
  };
}

function valueOf(stored: StoredSecret, field: string): string | undefined {
  if (field === "type") return stored.type;
  if (field.startsWith("data.")) return stored.data.get(field.slice(5));
  return stored.labels.get(field.slice(7));
}

function setField(stored: StoredSecret, field: string, value: string): void {
  if (field === "type") stored.type = value;
  else if (field.startsWith("data.")) stored.data.set(field.slice(5), value);
  else stored.labels.set(field.slice(7), value);
}

function removeField(stored: StoredSecret, field: string): void {
  if (field.startsWith("data.")) stored.data.delete(field.slice(5));
  else if (field.startsWith("labels.")) stored.labels.delete(field.slice(7));
}

/** The object as the real API server writes it, `managedFields` in FieldsV1 form included. */
function render(namespace: string, name: string, stored: StoredSecret): Record<string, unknown> {
  const managedFields = [...stored.owners]
    .filter(([, fields]) => fields.size > 0)
    .map(([owner, fields]) => {
      const [manager, operation] = owner.split("\u0000") as [string, string];
      const fieldsV1: Record<string, Record<string, unknown>> = {};
      for (const field of fields) {
        if (field === "type") fieldsV1["f:type"] = {};
        else if (field.startsWith("data.")) {
          fieldsV1["f:data"] ??= {};
          fieldsV1["f:data"][`f:${field.slice(5)}`] = {};
        } else {
          fieldsV1["f:metadata"] ??= { "f:labels": {} };
          (fieldsV1["f:metadata"]["f:labels"] as Record<string, unknown>)[`f:${field.slice(7)}`] =
            {};
        }
      }
      return {
        manager,
        operation,
        apiVersion: "v1",
        time: stored.times.get(owner) ?? stored.created,
        fieldsType: "FieldsV1",
        fieldsV1,
      };
    });
  return {
    kind: "Secret",
    apiVersion: "v1",
    metadata: {
      name,
      namespace,
      uid: stored.uid,
      resourceVersion: stored.resourceVersion,
      creationTimestamp: stored.created,
      ...(stored.labels.size > 0 ? { labels: Object.fromEntries(stored.labels) } : {}),
      managedFields,
    },
    ...(stored.data.size > 0 ? { data: Object.fromEntries(stored.data) } : {}),
    type: stored.type,
  };
}

function notFound(res: ServerResponse, name: string): void {
  sendStatus(res, 404, "NotFound", `secrets "${name}" not found`, { name, kind: "secrets" });
}

function namespaceNotFound(res: ServerResponse, namespace: string): void {
  sendStatus(res, 404, "NotFound", `namespaces "${namespace}" not found`, {
    name: namespace,
    kind: "namespaces",
  });
}

function conflict(res: ServerResponse, name: string): void {
  sendStatus(
    res,
    409,
    "Conflict",
    `Operation cannot be fulfilled on secrets "${name}": the object has been modified; please ` +
      `apply your changes to the latest version and try again`,
    { name, kind: "secrets" },
  );
}

/** A `Status` body as the API server writes it for every failure. */
function sendStatus(
  res: ServerResponse,
  code: number,
  reason: string,
  message: string,
  details?: Record<string, unknown>,
): void {
  sendJson(res, code, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  });
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-cache, private",
  });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY) chunks.push(chunk);
    });
    req.on("end", () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
