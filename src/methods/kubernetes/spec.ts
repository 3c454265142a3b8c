/**
 * Reads `spec.kubernetes` of a join token: the type (`static_jwks` or `oidc`), its keys or
 * issuer, and the allow rules. Problems carry the field path (`spec.kubernetes.allow[0]...`).
 */
import { parseJwks, type KeySet } from "../../jwt/keys.ts";
import { describe, type FieldReader } from "../../yaml/field-reader.ts";
import type { AllowRule } from "./allow-rules.ts";
import { DNS_LABEL, DNS_SUBDOMAIN } from "./names.ts";

/** `spec.kubernetes` as read: plain data, what `kube-join check` shows. */
export type KubernetesJoinSpec =
  | {
      readonly type: "static_jwks";
      readonly keySet: KeySet;
      readonly allow: readonly AllowRule[];
    }
  | {
      readonly type: "oidc";
      readonly issuer: string;
      readonly insecureAllowHttpIssuer: boolean;
      readonly allow: readonly AllowRule[];
    };

/** The `spec.kubernetes.type` values kube-join serves. */
export const SUPPORTED_KUBERNETES_TYPES = ["static_jwks", "oidc"] as const;

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
 * Reads the `spec` of a `join_method: kubernetes` token: its `kubernetes` block, and that the
 * ec2/iam `allow` is not used instead. Undefined when there were problems (all recorded in `r`).
 */
export function readKubernetesSpec(
  r: FieldReader,
  spec: Readonly<Record<string, unknown>>,
): KubernetesJoinSpec | undefined {
  const kubernetes = readKubernetes(r, spec["kubernetes"]);
  if (spec["allow"] !== undefined) {
    r.error(
      ["spec", "allow"],
      "belongs to the ec2 and iam join methods and is ignored for kubernetes: put the rules in spec.kubernetes.allow",
    );
    return undefined;
  }
  return kubernetes;
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
