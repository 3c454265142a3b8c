import { parseJwks, type KeySet } from "../jwt/keys.ts";
import { DNS_LABEL, DNS_SUBDOMAIN } from "../methods/kubernetes/names.ts";
import { parseRfc3339 } from "../lib/rfc3339.ts";
import { describe, type FieldReader } from "../yaml/field-reader.ts";
import type { AllowRule, JoinToken, KubernetesJoinSpec } from "./types.ts";

/**
 * Every join method Teleport knows. Tokens of any of them load (so a directory exported from
 * Teleport loads whole); only `kubernetes` can join here, the others get `join_method_mismatch`.
 */
export const KNOWN_JOIN_METHODS = [
  "token",
  "ec2",
  "iam",
  "github",
  "circleci",
  "kubernetes",
  "gitlab",
  "gcp",
  "azure",
  "spacelift",
  "tpm",
  "terraform_cloud",
  "bitbucket",
  "oracle",
  "azure_devops",
  "bound_keypair",
] as const;

/** The `spec.kubernetes.type` values kube-join serves. */
export const SUPPORTED_KUBERNETES_TYPES = ["static_jwks", "oidc"] as const;

/**
 * Token names travel in join requests, logs and audit events: printable ASCII without spaces,
 * 1 to 256 characters.
 */
export const TOKEN_NAME_PATTERN = /^[\x21-\x7e]{1,256}$/;

export const TOKEN_FIELDS = ["kind", "version", "metadata", "spec"] as const;
const METADATA_FIELDS = ["name", "description", "labels", "namespace", "revision", "expires"];
// Blocks of the other join methods: accepted without deep validation (they never join here).
const OTHER_METHOD_BLOCKS = KNOWN_JOIN_METHODS.filter(
  (m) => m !== "kubernetes" && m !== "token" && m !== "ec2" && m !== "iam",
);
const SPEC_FIELDS = [
  "roles",
  "bot_name",
  "join_method",
  "kubernetes",
  "allow",
  "aws_iid_ttl",
  "suggested_labels",
  "suggested_agent_matcher_labels",
  ...OTHER_METHOD_BLOCKS,
];
const KUBERNETES_FIELDS = ["type", "allow", "static_jwks", "oidc"];
const ALLOW_RULE_FIELDS = ["service_account", "service_account_namespace", "service_account_name"];
const NOT_AN_API_CLIENT =
  'verifies tokens through the Kubernetes API server\'s TokenReview API, and kube-join does not talk to a Kubernetes API server; use one of the supported types "static_jwks" or "oidc"';

// Kubernetes object names: a namespace is a DNS-1123 label, a service account a DNS-1123
// subdomain. A rule outside these can never match, so it is an admin mistake worth reporting.
const NAMESPACE_GLOB_PATTERN = /^[-a-z0-9*?]+$/;
const SERVICE_ACCOUNT_GLOB_PATTERN = /^[-.a-z0-9*?]+$/;
const MAX_NAMESPACE = 63;
const MAX_SERVICE_ACCOUNT = 253;

/**
 * Validates one `kind: token` document (kind and version already checked by the caller).
 * `bot_name` naming a loaded bot is checked by the caller, across all files.
 */
export function readToken(r: FieldReader, doc: Record<string, unknown>): JoinToken | undefined {
  const before = r.problemCount;
  r.mapping([], doc, TOKEN_FIELDS);
  const metadata = r.mapping(["metadata"], doc["metadata"] ?? {}, METADATA_FIELDS);
  const name = r.requiredString(["metadata", "name"], metadata?.["name"]);
  if (name !== undefined && !TOKEN_NAME_PATTERN.test(name)) {
    r.error(
      ["metadata", "name"],
      "a token name must be 1 to 256 printable ASCII characters without spaces",
    );
  }
  const expiresAt = readExpires(r, metadata?.["expires"]);
  const spec = r.mapping(["spec"], doc["spec"] ?? {}, SPEC_FIELDS) ?? {};
  const roles = readRoles(r, spec["roles"]);
  const botName = r.optionalString(["spec", "bot_name"], spec["bot_name"]);
  if (roles !== undefined) {
    const isBotToken = roles.includes("Bot");
    if (!isBotToken) {
      r.error(
        ["spec", "roles"],
        'must include "Bot" (any case): kube-join joins bots only, e.g. roles: [Bot]',
      );
    }
    if (isBotToken && botName === undefined) {
      r.error(["spec", "bot_name"], 'token with role "Bot" must set bot_name');
    }
    if (!isBotToken && botName !== undefined) {
      r.error(["spec", "bot_name"], 'can only set bot_name on token with role "Bot"');
    }
  }
  const joinMethod = readJoinMethod(r, spec);
  let kubernetes: KubernetesJoinSpec | undefined;
  if (joinMethod === "kubernetes") {
    kubernetes = readKubernetes(r, spec["kubernetes"]);
    if (spec["allow"] !== undefined) {
      r.error(
        ["spec", "allow"],
        "belongs to the ec2 and iam join methods and is ignored for kubernetes: put the rules in spec.kubernetes.allow",
      );
    }
  } else if (joinMethod !== undefined && spec["kubernetes"] !== undefined) {
    r.warn(["spec", "kubernetes"], `ignored: join_method is ${JSON.stringify(joinMethod)}`);
  }
  if (r.problemCount > before || name === undefined || joinMethod === undefined) return undefined;
  return {
    name,
    expiresAt,
    roles: roles ?? [],
    botName,
    joinMethod,
    kubernetes,
    source: r.source.positionOf(["metadata", "name"]),
  };
}

/** Roles as written, except that any spelling of `Bot` becomes `Bot`. */
function readRoles(r: FieldReader, value: unknown): string[] | undefined {
  const roles = r.stringList(["spec", "roles"], value);
  if (roles === undefined || roles.length === 0) {
    if (roles !== undefined || value === undefined || value === null) {
      r.error(["spec", "roles"], "provisioning token is missing roles: set roles: [Bot]");
    }
    return undefined;
  }
  const canonical = roles.map((role) => (role.toLowerCase() === "bot" ? "Bot" : role));
  canonical.forEach((role, i) => {
    if (role !== "Bot") {
      r.warn(
        ["spec", "roles", i],
        `role ${JSON.stringify(role)} never joins here: kube-join issues bot certificates only`,
      );
    }
  });
  return [...new Set(canonical)];
}

function readJoinMethod(r: FieldReader, spec: Record<string, unknown>): string | undefined {
  const path = ["spec", "join_method"];
  const method = r.optionalString(path, spec["join_method"]);
  if (method === undefined) {
    if (
      spec["join_method"] !== undefined &&
      spec["join_method"] !== null &&
      spec["join_method"] !== ""
    ) {
      return undefined; // ill-typed, already reported
    }
    if (spec["kubernetes"] !== undefined) {
      r.error(
        path,
        'must be set to "kubernetes": Teleport defaults an empty join method to "token" (or "ec2"), which would ignore the kubernetes block',
      );
      return undefined;
    }
    // Teleport's default, for tokens exported from a cluster that predate join methods.
    return spec["allow"] === undefined ? "token" : "ec2";
  }
  if (!(KNOWN_JOIN_METHODS as readonly string[]).includes(method)) {
    r.error(
      path,
      `unknown join method ${JSON.stringify(method)}; join method must be one of ${KNOWN_JOIN_METHODS.join(", ")}`,
    );
    return undefined;
  }
  return method;
}

function readExpires(r: FieldReader, value: unknown): number | undefined {
  const path = ["metadata", "expires"];
  if (value instanceof Date) return value.getTime(); // only with a YAML 1.1 timestamp tag
  const text = r.optionalString(path, value);
  if (text === undefined) return undefined;
  const ms = parseRfc3339(text);
  if (ms === undefined) {
    r.error(
      path,
      `must be an RFC 3339 timestamp such as "2030-01-31T15:04:05Z", got ${JSON.stringify(text)}`,
    );
  }
  return ms;
}

function readKubernetes(r: FieldReader, value: unknown): KubernetesJoinSpec | undefined {
  const base = ["spec", "kubernetes"];
  if (value === undefined || value === null) {
    r.error(base, '"kubernetes" configuration must be provided for the join method "kubernetes"');
    return undefined;
  }
  const block = r.mapping(base, value, KUBERNETES_FIELDS);
  if (block === undefined) return undefined;
  const allow = readAllowRules(r, block["allow"]);
  const type = readKubernetesType(r, block["type"]);
  if (type === "static_jwks") {
    if (block["oidc"] !== undefined) {
      r.error([...base, "oidc"], 'must not be set when type is "static_jwks"');
    }
    const keySet = readStaticJwks(r, block["static_jwks"]);
    if (keySet === undefined || allow === undefined) return undefined;
    return { type, keySet, allow };
  }
  if (type === "oidc") {
    if (block["static_jwks"] !== undefined) {
      r.error([...base, "static_jwks"], 'must not be set when type is "oidc"');
    }
    const oidc = readOidc(r, block["oidc"]);
    if (oidc === undefined || allow === undefined) return undefined;
    return { type, ...oidc, allow };
  }
  return undefined;
}

function readKubernetesType(r: FieldReader, value: unknown): "static_jwks" | "oidc" | undefined {
  const path = ["spec", "kubernetes", "type"];
  const type = r.optionalString(path, value);
  if (type === undefined) {
    if (value === undefined || value === null || value === "") {
      r.error(
        path,
        `must be set: Teleport treats an empty type as "in_cluster", which ${NOT_AN_API_CLIENT}`,
      );
    }
    return undefined;
  }
  if (type === "in_cluster") {
    r.error(path, `"in_cluster" is not supported: it ${NOT_AN_API_CLIENT}`);
    return undefined;
  }
  if (type !== "static_jwks" && type !== "oidc") {
    r.error(path, `must be one of "static_jwks", "oidc", got ${JSON.stringify(type)}`);
    return undefined;
  }
  return type;
}

function readStaticJwks(r: FieldReader, value: unknown): KeySet | undefined {
  const base = ["spec", "kubernetes", "static_jwks"];
  if (value === undefined || value === null) {
    r.error(base, 'must be set when type is "static_jwks"');
    return undefined;
  }
  const block = r.mapping(base, value, ["jwks"]);
  if (block === undefined) return undefined;
  const path = [...base, "jwks"];
  const jwks = block["jwks"];
  if (jwks === undefined || jwks === null || (typeof jwks === "string" && jwks.trim() === "")) {
    r.error(path, 'must be set when type is "static_jwks"');
    return undefined;
  }
  if (typeof jwks !== "string") {
    r.error(
      path,
      `must be the JWKS as a string (jwks: |, then the JSON on the lines below), got ${describe(jwks)}`,
    );
    return undefined;
  }
  const parsed = parseJwks(jwks);
  if (!parsed.ok) {
    for (const problem of parsed.problems) r.error(path, problem);
    return undefined;
  }
  for (const warning of parsed.warnings) r.warn(path, warning);
  return parsed.keySet;
}

// Teleport's texts for the same checks (issue 6), so operators moving between the two recognise them.
const ISSUER_NOT_HTTPS = "oidc.issuer must be https:// unless insecure_allow_http_issuer is set";
const ISSUER_NOT_A_URL = "oidc.issuer must be a valid URL";

function readOidc(
  r: FieldReader,
  value: unknown,
): { issuer: string; insecureAllowHttpIssuer: boolean } | undefined {
  const base = ["spec", "kubernetes", "oidc"];
  if (value === undefined || value === null) {
    r.error(base, 'must be set when type is "oidc"');
    return undefined;
  }
  const block = r.mapping(base, value, ["issuer", "insecure_allow_http_issuer"]);
  if (block === undefined) return undefined;
  const insecure = r.optionalBoolean(
    [...base, "insecure_allow_http_issuer"],
    block["insecure_allow_http_issuer"],
  );
  const path = [...base, "issuer"];
  const issuer = r.requiredString(path, block["issuer"], 'must be set when type is "oidc"');
  if (issuer === undefined) return undefined;
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    r.error(
      path,
      `${ISSUER_NOT_A_URL}: expected an https:// URL, such as "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE", got ${JSON.stringify(issuer)}`,
    );
    return undefined;
  }
  if (url.protocol === "http:") {
    if (insecure !== true) {
      r.error(
        path,
        `${ISSUER_NOT_HTTPS} (keys fetched over plain HTTP can be replaced by anyone on the path)`,
      );
      return undefined;
    }
  } else if (url.protocol !== "https:") {
    r.error(
      path,
      `${ISSUER_NOT_HTTPS}, which allows http:// but never scheme ${JSON.stringify(url.protocol.slice(0, -1))}`,
    );
    return undefined;
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    r.error(path, "must not contain user info, a query or a fragment (an OIDC issuer never does)");
    return undefined;
  }
  return { issuer, insecureAllowHttpIssuer: insecure === true };
}

function readAllowRules(r: FieldReader, value: unknown): AllowRule[] | undefined {
  const base = ["spec", "kubernetes", "allow"];
  const list = r.optionalList(base, value);
  if (list === undefined || list.length === 0) {
    if (list !== undefined || value === undefined || value === null) {
      r.error(base, "at least one rule must be set");
    }
    return undefined;
  }
  const rules: AllowRule[] = [];
  let ok = true;
  list.forEach((item, i) => {
    const rule = readAllowRule(r, [...base, i], item);
    if (rule === undefined) ok = false;
    else rules.push(rule);
  });
  if (!ok) return undefined;
  rules.forEach((rule, i) => {
    if (rule.kind === "glob" && rule.namespaceGlob === "*" && rule.nameGlob === "*") {
      r.warn([...base, i], "allows every service account of every namespace of the cluster");
    }
  });
  return rules;
}

function readAllowRule(
  r: FieldReader,
  path: readonly (string | number)[],
  value: unknown,
): AllowRule | undefined {
  const rule = r.mapping(path, value, ALLOW_RULE_FIELDS);
  if (rule === undefined) return undefined;
  const exact = r.optionalString([...path, "service_account"], rule["service_account"]);
  const namespace = r.optionalString(
    [...path, "service_account_namespace"],
    rule["service_account_namespace"],
  );
  const name = r.optionalString([...path, "service_account_name"], rule["service_account_name"]);
  const hasExact = rule["service_account"] !== undefined;
  const hasGlob =
    rule["service_account_namespace"] !== undefined || rule["service_account_name"] !== undefined;
  if (hasExact && hasGlob) {
    r.error(
      path,
      "set either service_account or service_account_namespace with service_account_name, not both",
    );
    return undefined;
  }
  if (!hasExact && !hasGlob) {
    r.error(
      path,
      'must set service_account ("namespace:name") or both service_account_namespace and service_account_name',
    );
    return undefined;
  }
  if (hasExact) {
    const raw = rule["service_account"];
    if (raw === null || raw === "") {
      r.error([...path, "service_account"], 'must be "namespace:name", got an empty value');
      return undefined;
    }
    return exact === undefined ? undefined : readExactRule(r, [...path, "service_account"], exact);
  }
  let ok = true;
  for (const [field, glob, other] of [
    ["service_account_namespace", namespace, "service_account_name"],
    ["service_account_name", name, "service_account_namespace"],
  ] as const) {
    if (glob === undefined) {
      if (rule[field] === undefined || rule[field] === null || rule[field] === "") {
        r.error([...path, field], `must be set together with ${other} (use "*" to allow any)`);
      }
      ok = false;
    }
  }
  if (!ok || namespace === undefined || name === undefined) return undefined;
  const nsOk = checkName(r, [...path, "service_account_namespace"], namespace, "namespace", true);
  const nameOk = checkName(
    r,
    [...path, "service_account_name"],
    name,
    "service account name",
    true,
  );
  if (!nsOk || !nameOk) return undefined;
  return { kind: "glob", namespaceGlob: namespace, nameGlob: name };
}

function readExactRule(
  r: FieldReader,
  path: readonly (string | number)[],
  text: string,
): AllowRule | undefined {
  const parts = text.split(":");
  const [namespace, name] = parts;
  if (
    parts.length !== 2 ||
    namespace === undefined ||
    name === undefined ||
    namespace === "" ||
    name === ""
  ) {
    r.error(
      path,
      `must be "namespace:name" (exactly one ":" with a namespace and a service account name), got ${JSON.stringify(text)}`,
    );
    return undefined;
  }
  const nsOk = checkName(r, path, namespace, "namespace", false);
  const nameOk = checkName(r, path, name, "service account name", false);
  if (!nsOk || !nameOk) return undefined;
  return { kind: "exact", namespace, name };
}

function checkName(
  r: FieldReader,
  path: readonly (string | number)[],
  value: string,
  what: "namespace" | "service account name",
  glob: boolean,
): boolean {
  const isNamespace = what === "namespace";
  const max = isNamespace ? MAX_NAMESPACE : MAX_SERVICE_ACCOUNT;
  const pattern = glob
    ? isNamespace
      ? NAMESPACE_GLOB_PATTERN
      : SERVICE_ACCOUNT_GLOB_PATTERN
    : isNamespace
      ? DNS_LABEL
      : DNS_SUBDOMAIN;
  if (value.length <= max && pattern.test(value)) return true;
  const rule = isNamespace
    ? `a lowercase DNS label ([a-z0-9-], at most ${max} characters)`
    : `a lowercase DNS subdomain ([a-z0-9.-], at most ${max} characters)`;
  const globNote = glob ? ', plus the globs "*" and "?"' : "";
  r.error(
    path,
    `${what} ${JSON.stringify(value)} can never match: a Kubernetes ${what} is ${rule}${globNote}`,
  );
  return false;
}
