/**
 * tbot's `version: v2` config file, as the Teleport guide's ConfigMap holds it (docs/agent.md,
 * "The config file"). Read with the project's one YAML reader, so a mistake reads like every
 * other admin YAML here: `file:line:col: path: message`, all of them at once, "did you mean" for a
 * misspelt key. Pure but for reading `onboarding.token` when it names a file.
 */
import { resolve } from "node:path";
import { ConfigError } from "../errors.ts";
import { parseDuration } from "../lib/duration.ts";
import {
  Diagnostics,
  FieldReader,
  didYouMean,
  inFileOrder,
  isPlainObject,
} from "../yaml/field-reader.ts";
import type { FieldPath } from "../yaml/yaml-source.ts";
import { formatFieldPath, parseYamlDocument } from "../yaml/yaml-source.ts";
import type { DestinationSpec } from "./destinations/open.ts";
import { OUTPUT_TYPES } from "./outputs/index.ts";
import type { OutputType } from "./outputs/index.ts";

/** One `outputs[]` (or `services[]`) entry. */
export interface OutputSpec {
  readonly type: OutputType;
  readonly destination: DestinationSpec;
}

/** What the file says; absent fields are left to the flags and the defaults. */
export interface AgentFileConfig {
  readonly file: string;
  /** `proxy_server` or `auth_server`, as a URL: `https://`, or `http://` with `insecure` (loopback). */
  readonly server: URL | undefined;
  /** `onboarding.token`, read from the file it names when it is an absolute path. */
  readonly tokenName: string | undefined;
  readonly caPath: string | undefined;
  /** `sha256:<hex>`, lower case. */
  readonly caPins: readonly string[];
  readonly tokenPath: string | undefined;
  readonly storage: DestinationSpec | undefined;
  readonly outputs: readonly OutputSpec[];
  readonly ttlMs: number | undefined;
  readonly renewEveryMs: number | undefined;
  readonly oneshot: boolean | undefined;
  readonly diagAddr: { readonly host: string; readonly port: number } | undefined;
}

/** What the command line already supplies, so the file need not (a flag overrides the file). */
export interface FlagsProvided {
  readonly server: boolean;
  readonly token: boolean;
  readonly caFile: boolean;
}

const SUPPORTED_VERSION = "v2";
const ROOT_KEYS = [
  "version",
  "onboarding",
  "proxy_server",
  "auth_server",
  "insecure",
  "storage",
  "outputs",
  "services",
  "certificate_ttl",
  "credential_ttl",
  "renewal_interval",
  "oneshot",
  "diag_addr",
] as const;
const ONBOARDING_KEYS = ["join_method", "token", "ca_path", "ca_pins", "kubernetes"] as const;
const DESTINATION_KEYS = {
  directory: ["type", "path"],
  memory: ["type"],
  kubernetes_secret: ["type", "name", "namespace", "labels"],
} as const;
const DESTINATION_TYPES = Object.keys(DESTINATION_KEYS) as Array<keyof typeof DESTINATION_KEYS>;
const CA_PIN = /^sha256:[0-9a-f]{64}$/i;
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d{1,5})$/;
const MIN_TTL_MS = 2 * 60_000;

/**
 * Reads an agent config file.
 *
 * @param readTokenFile reads `onboarding.token` when it is an absolute path (tbot reads such a
 *   value as a file holding the token); throws the fs error.
 * @throws ConfigError with every problem of the file, each `file:line:col: path: message`.
 * @example
 *   const config = readAgentConfig("tbot.yaml", text, (p) => readFileSync(p, "utf8"), provided);
 */
export function readAgentConfig(
  file: string,
  text: string,
  readTokenFile: (path: string) => string,
  provided: FlagsProvided,
): AgentFileConfig {
  const source = parseYamlDocument(file, text);
  const diagnostics = new Diagnostics();
  const r = new FieldReader(source, diagnostics);
  const config = readRoot(r, source.value, readTokenFile, provided);
  if (diagnostics.problems.length > 0 || config === undefined) {
    // Top to bottom, as the admin reads the file.
    throw new ConfigError(
      diagnostics.problems.length > 0
        ? inFileOrder(diagnostics.problems, [file])
        : [`${file}: not an agent config`],
    );
  }
  return config;
}

function readRoot(
  r: FieldReader,
  value: unknown,
  readTokenFile: (path: string) => string,
  provided: FlagsProvided,
): AgentFileConfig | undefined {
  const root = r.mapping([], value ?? {}, ROOT_KEYS);
  if (root === undefined) return undefined;

  const version = r.requiredString(["version"], root["version"], `must be "${SUPPORTED_VERSION}"`);
  if (version !== undefined && version !== SUPPORTED_VERSION) {
    r.error(
      ["version"],
      `"${version}" is not supported: kube-join reads tbot's version "${SUPPORTED_VERSION}" config`,
    );
  }
  const insecure = r.optionalBoolean(["insecure"], root["insecure"]) ?? false;
  const server = readServer(r, root, insecure, provided);
  const onboarding = readOnboarding(r, root["onboarding"], readTokenFile, provided);
  if (
    !provided.caFile &&
    onboarding.caPath === undefined &&
    onboarding.caPins.length === 0 &&
    server?.protocol === "https:"
  ) {
    r.error(
      ["onboarding"],
      `ca_path or ca_pins is required to trust ${server.host} over HTTPS (the system's CAs are never used)`,
    );
  }
  const storage =
    root["storage"] === undefined || root["storage"] === null
      ? undefined
      : readDestination(r, ["storage"], root["storage"]);
  const placed = [
    ...readOutputs(r, ["outputs"], root["outputs"]),
    ...readOutputs(r, ["services"], root["services"]),
  ];
  checkPlaces(r, [
    ...(storage === undefined ? [] : [{ path: ["storage"], destination: storage }]),
    ...placed.map((o) => ({ path: o.path, destination: o.spec.destination })),
  ]);
  const outputs = placed.map((o) => o.spec);
  const ttlMs = readTtl(r, root);
  const renewEveryMs = readDuration(r, ["renewal_interval"], root["renewal_interval"]);
  if (ttlMs !== undefined && renewEveryMs !== undefined && renewEveryMs >= ttlMs) {
    r.error(["renewal_interval"], "must be shorter than the credential_ttl");
  }
  return {
    file: r.source.file,
    server,
    tokenName: onboarding.tokenName,
    caPath: onboarding.caPath,
    caPins: onboarding.caPins,
    tokenPath: onboarding.tokenPath,
    storage,
    outputs,
    ttlMs,
    renewEveryMs,
    oneshot: r.optionalBoolean(["oneshot"], root["oneshot"]),
    diagAddr: readDiagAddr(r, root["diag_addr"]),
  };
}

/** `proxy_server` or `auth_server`, exactly one: both are kube-join's join listener here. */
function readServer(
  r: FieldReader,
  root: Record<string, unknown>,
  insecure: boolean,
  provided: FlagsProvided,
): URL | undefined {
  const proxy = r.optionalString(["proxy_server"], root["proxy_server"]);
  const auth = r.optionalString(["auth_server"], root["auth_server"]);
  if (proxy !== undefined && auth !== undefined) {
    r.error(["auth_server"], "set proxy_server or auth_server, not both");
    return undefined;
  }
  const key = proxy !== undefined ? "proxy_server" : "auth_server";
  const address = proxy ?? auth;
  if (address === undefined) {
    if (!provided.server) {
      r.error(
        [],
        "proxy_server (or auth_server) must be set: kube-join's join listener, host:port",
      );
    }
    return undefined;
  }
  const match = HOST_PORT.exec(address);
  const port = Number(match?.[2]);
  if (match === null || !(port >= 1 && port <= 65_535)) {
    r.error([key], `must be host:port, e.g. kube-join.example:3025 (got "${address}")`);
    return undefined;
  }
  const host = match[1]!;
  if (insecure && !isLoopback(host)) {
    r.error(
      ["insecure"],
      `plain HTTP is allowed only to a loopback address (127.0.0.0/8, ::1, localhost), not ${host}: the join token would travel unencrypted`,
    );
    return undefined;
  }
  return new URL(`${insecure ? "http" : "https"}://${host}:${port}`);
}

function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, "").toLowerCase();
  return bare === "localhost" || bare === "::1" || /^127(\.\d{1,3}){3}$/.test(bare);
}

function readOnboarding(
  r: FieldReader,
  value: unknown,
  readTokenFile: (path: string) => string,
  provided: FlagsProvided,
): {
  tokenName: string | undefined;
  caPath: string | undefined;
  caPins: string[];
  tokenPath: string | undefined;
} {
  const none = { tokenName: undefined, caPath: undefined, caPins: [], tokenPath: undefined };
  if (value === undefined || value === null) {
    r.error([], "onboarding must be set: join_method: kubernetes and the join token's name");
    return none;
  }
  const block = r.mapping(["onboarding"], value, ONBOARDING_KEYS);
  if (block === undefined) return none;
  const method = r.requiredString(
    ["onboarding", "join_method"],
    block["join_method"],
    'must be set: kube-join agents join with "kubernetes"',
  );
  if (method !== undefined && method !== "kubernetes") {
    r.error(
      ["onboarding", "join_method"],
      `"${method}" is not supported: kube-join agents join with "kubernetes" only${didYouMean(method, ["kubernetes"])}`,
    );
  }
  let tokenName: string | undefined;
  const token = provided.token
    ? r.optionalString(["onboarding", "token"], block["token"])
    : r.requiredString(
        ["onboarding", "token"],
        block["token"],
        "must be set: the join token's name",
      );
  if (token !== undefined && token.startsWith("/")) {
    // tbot reads an absolute path as a file holding the token (TryReadValueAsFile).
    try {
      tokenName = readTokenFile(token).trim();
      if (tokenName === "") r.error(["onboarding", "token"], `the token file ${token} is empty`);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      r.error(["onboarding", "token"], `cannot read the token file ${token}: ${code}`);
    }
  } else {
    tokenName = token;
  }
  const caPath = r.optionalString(["onboarding", "ca_path"], block["ca_path"]);
  const caPins: string[] = [];
  (r.stringList(["onboarding", "ca_pins"], block["ca_pins"]) ?? []).forEach((pin, i) => {
    if (CA_PIN.test(pin)) caPins.push(pin.toLowerCase());
    else {
      r.error(
        ["onboarding", "ca_pins", i],
        "must be sha256:<64 hex digits>, the SHA-256 of a CA certificate's SubjectPublicKeyInfo",
      );
    }
  });
  let tokenPath: string | undefined;
  if (block["kubernetes"] !== undefined && block["kubernetes"] !== null) {
    const kubernetes = r.mapping(["onboarding", "kubernetes"], block["kubernetes"], ["token_path"]);
    tokenPath = r.optionalString(
      ["onboarding", "kubernetes", "token_path"],
      kubernetes?.["token_path"],
    );
  }
  return { tokenName, caPath, caPins, tokenPath };
}

/**
 * Two destinations writing one place would replace each other's sets in turn (a directory's
 * `current`, a Secret's keys), so a reader would see the files of one, then the other.
 */
function checkPlaces(
  r: FieldReader,
  placed: ReadonlyArray<{ path: FieldPath; destination: DestinationSpec }>,
): void {
  const place = (d: DestinationSpec): string | undefined => {
    switch (d.type) {
      case "directory":
        return `directory ${resolve(d.path)}`;
      case "kubernetes_secret":
        return `secret ${d.namespace ?? "$POD_NAMESPACE"}/${d.name}`;
      case "memory":
        return undefined;
    }
  };
  const seen = new Map<string, FieldPath>();
  for (const { path, destination } of placed) {
    const key = place(destination);
    if (key === undefined) continue;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, path);
    else {
      r.error(
        path,
        `writes where ${formatFieldPath(first)} writes: each destination needs a place of its own`,
      );
    }
  }
}

function readOutputs(
  r: FieldReader,
  path: FieldPath,
  value: unknown,
): Array<{ spec: OutputSpec; path: FieldPath }> {
  const out: Array<{ spec: OutputSpec; path: FieldPath }> = [];
  (r.optionalList(path, value) ?? []).forEach((item, i) => {
    const at = [...path, i];
    const entry = r.mapping(at, item, ["type", "destination"]);
    if (entry === undefined) return;
    const type = r.requiredString([...at, "type"], entry["type"]);
    if (type !== undefined && !(OUTPUT_TYPES as readonly string[]).includes(type)) {
      r.error(
        [...at, "type"],
        `output type "${type}" is not supported: kube-join writes ${OUTPUT_TYPES.map((t) => `"${t}"`).join(", ")}${didYouMean(type, OUTPUT_TYPES)}`,
      );
    }
    if (entry["destination"] === undefined || entry["destination"] === null) {
      r.error(at, "destination must be set (type: directory, memory or kubernetes_secret)");
      return;
    }
    const destination = readDestination(r, [...at, "destination"], entry["destination"]);
    if (
      destination !== undefined &&
      type !== undefined &&
      (OUTPUT_TYPES as readonly string[]).includes(type)
    ) {
      out.push({ spec: { type: type as OutputType, destination }, path: [...at, "destination"] });
    }
  });
  return out;
}

function readDestination(
  r: FieldReader,
  path: FieldPath,
  value: unknown,
): DestinationSpec | undefined {
  if (typeof value === "string") {
    // tbot's v1 wrote `storage: memory` style shorthands; v2 wants the block.
    r.error(path, `must be a mapping such as { type: ${value} }, got a string`);
    return undefined;
  }
  if (!isPlainObject(value)) {
    r.mapping(path, value, []);
    return undefined;
  }
  const type = r.requiredString([...path, "type"], value["type"]);
  if (type === undefined) return undefined;
  if (!(DESTINATION_TYPES as string[]).includes(type)) {
    r.error(
      [...path, "type"],
      `destination type "${type}" is not supported: use ${DESTINATION_TYPES.join(", ")}${didYouMean(type, DESTINATION_TYPES)}`,
    );
    return undefined;
  }
  const kind = type as keyof typeof DESTINATION_KEYS;
  const block = r.mapping(path, value, DESTINATION_KEYS[kind]);
  if (block === undefined) return undefined;
  switch (kind) {
    case "memory":
      return { type: "memory" };
    case "directory": {
      const dir = r.requiredString([...path, "path"], block["path"]);
      return dir === undefined ? undefined : { type: "directory", path: dir };
    }
    case "kubernetes_secret": {
      const name = r.requiredString(
        [...path, "name"],
        block["name"],
        "must be set: the Secret's name",
      );
      const namespace = r.optionalString([...path, "namespace"], block["namespace"]);
      const labels: Record<string, string> = {};
      if (block["labels"] !== undefined && block["labels"] !== null) {
        const map = isPlainObject(block["labels"]) ? block["labels"] : undefined;
        if (map === undefined)
          r.error([...path, "labels"], "must be a mapping of label names to values");
        for (const [key, label] of Object.entries(map ?? {})) {
          const text = r.optionalString([...path, "labels", key], label);
          if (text !== undefined) labels[key] = text;
        }
      }
      return name === undefined
        ? undefined
        : { type: "kubernetes_secret", name, namespace, labels };
    }
  }
}

/** `certificate_ttl` (tbot 16) or `credential_ttl` (17+): one of them, at least 2m. */
function readTtl(r: FieldReader, root: Record<string, unknown>): number | undefined {
  const certificate = readDuration(r, ["certificate_ttl"], root["certificate_ttl"]);
  const credential = readDuration(r, ["credential_ttl"], root["credential_ttl"]);
  if (certificate !== undefined && credential !== undefined) {
    r.error(["certificate_ttl"], "set credential_ttl or its older name certificate_ttl, not both");
    return undefined;
  }
  const ttl = credential ?? certificate;
  if (ttl !== undefined && ttl < MIN_TTL_MS) {
    r.error(
      [credential === undefined ? "certificate_ttl" : "credential_ttl"],
      "must be at least 2m (the service refuses under 1m)",
    );
    return undefined;
  }
  return ttl;
}

function readDuration(r: FieldReader, path: FieldPath, value: unknown): number | undefined {
  const text = r.optionalString(path, value);
  if (text === undefined) return undefined;
  let ms: number;
  try {
    ms = Math.round(parseDuration(text));
  } catch {
    ms = 0;
  }
  if (!(ms > 0) || !Number.isSafeInteger(ms)) {
    r.error(path, `not a positive duration: "${text}" (use e.g. 30s, 20m, 1h)`);
    return undefined;
  }
  return ms;
}

function readDiagAddr(r: FieldReader, value: unknown): { host: string; port: number } | undefined {
  const address = r.optionalString(["diag_addr"], value);
  if (address === undefined) return undefined;
  const match = HOST_PORT.exec(address);
  const port = Number(match?.[2]);
  if (match === null || !(port >= 0 && port <= 65_535)) {
    r.error(["diag_addr"], `must be host:port, e.g. 127.0.0.1:3000 (got "${address}")`);
    return undefined;
  }
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port };
}
