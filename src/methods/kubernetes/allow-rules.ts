/**
 * The allow rules of a kubernetes join token (`spec.kubernetes.allow`): which service accounts may
 * join with it. Compiled once when the resources load; matching is exact and fails closed.
 */
import { JoinError } from "../../errors.ts";

/** One entry of `spec.kubernetes.allow`, as read from the resource. */
export type AllowRule =
  | { readonly kind: "exact"; readonly namespace: string; readonly name: string }
  | { readonly kind: "glob"; readonly namespaceGlob: string; readonly nameGlob: string };

/** The service account a verified token proves, as allow rules see it. */
export interface ServiceAccountRef {
  readonly namespace: string;
  readonly serviceAccount: string;
}

/**
 * Whether any allow rule admits the service account. Pure and fail-closed: a rule of an unknown
 * kind, with a non-string field or an empty pattern, and a service account with an empty or
 * non-string part, match nothing.
 *
 * - `{ kind: "exact" }` (`service_account: "ns:name"`): both parts equal, case-sensitive.
 * - `{ kind: "glob" }` (`service_account_namespace` + `service_account_name`): `*` matches any run
 *   of characters (also none), `?` exactly one; every other character is literal; each pattern
 *   must match the whole part (anchored at both ends).
 *
 * @example
 * matchAllowRule([{ kind: "glob", namespaceGlob: "ci-*", nameGlob: "tbot" }],
 *   { namespace: "ci-42", serviceAccount: "tbot" }); // true
 */
export function matchAllowRule(rules: readonly AllowRule[], sa: ServiceAccountRef): boolean {
  return compileAllowRules(rules)(sa);
}

/** The allow rules of one token, compiled: whether they admit a service account. */
export type ServiceAccountMatcher = (sa: ServiceAccountRef) => boolean;

/**
 * Compiles allow rules once (at load), with the semantics of {@link matchAllowRule}: every glob is
 * turned into its matcher here, so a join only runs the matchers.
 */
export function compileAllowRules(rules: readonly AllowRule[]): ServiceAccountMatcher {
  if (!Array.isArray(rules)) return () => false;
  const matchers: Array<(sa: ServiceAccountRef) => boolean> = [];
  for (const rule of rules as readonly unknown[]) {
    const matcher = compileRule(rule);
    if (matcher !== undefined) matchers.push(matcher);
  }
  return (sa) => isPart(sa?.namespace) && isPart(sa?.serviceAccount) && matchers.some((m) => m(sa));
}

/**
 * Throws `no_matching_allow_rule` unless a rule admits the service account. The message names the
 * service account that asked and never the rules (they are another party's configuration).
 */
export function requireAllowedServiceAccount(
  rules: readonly AllowRule[] | ServiceAccountMatcher,
  sa: ServiceAccountRef,
): void {
  const allowed = typeof rules === "function" ? rules : compileAllowRules(rules);
  if (allowed(sa)) return;
  throw new JoinError(
    "no_matching_allow_rule",
    `service account ${JSON.stringify(`${String(sa?.namespace)}:${String(sa?.serviceAccount)}`)} is not allowed by any rule of this join token`,
  );
}

/** A rule's matcher; undefined for anything the loader never produces (it matches nothing). */
function compileRule(rule: unknown): ((sa: ServiceAccountRef) => boolean) | undefined {
  if (typeof rule !== "object" || rule === null) return undefined;
  const r = rule as Record<string, unknown>;
  switch (own(r, "kind")) {
    case "exact": {
      const namespace = own(r, "namespace");
      const name = own(r, "name");
      if (!isPart(namespace) || !isPart(name)) return undefined;
      return (sa) => namespace === sa.namespace && name === sa.serviceAccount;
    }
    case "glob": {
      const namespaceGlob = own(r, "namespaceGlob");
      const nameGlob = own(r, "nameGlob");
      if (!isPart(namespaceGlob) || !isPart(nameGlob)) return undefined;
      const namespace = compileGlob(namespaceGlob);
      const name = compileGlob(nameGlob);
      return (sa) => namespace(sa.namespace) && name(sa.serviceAccount);
    }
    default:
      return undefined;
  }
}

type Matcher = (text: string) => boolean;
/**
 * Compiles a `*`/`?` glob into an anchored matcher. Not a RegExp: a backtracking regex for
 * `*a*a*a*a*b` takes exponential-looking time on a long near-miss, while this splits the pattern
 * on `*` into segments once and matches them greedily left to right, which is correct for globs
 * (the leftmost placement of each middle segment leaves the most room for the rest) and costs at
 * most O(text x pattern). Characters are compared as code points, so `?` is one character.
 */
function compileGlob(pattern: string): Matcher {
  const segments = pattern.split("*").map((s) => Array.from(s));
  const first = segments[0] as string[];
  if (segments.length === 1) {
    return (text) => {
      const chars = Array.from(text);
      return chars.length === first.length && segmentAt(first, chars, 0);
    };
  }
  const last = segments[segments.length - 1] as string[];
  const middle = segments.slice(1, -1).filter((s) => s.length > 0);
  const minLength = first.length + last.length + middle.reduce((n, s) => n + s.length, 0);
  return (text) => {
    const chars = Array.from(text);
    if (chars.length < minLength) return false;
    if (!segmentAt(first, chars, 0)) return false;
    const end = chars.length - last.length;
    if (!segmentAt(last, chars, end)) return false;
    let position = first.length;
    for (const segment of middle) {
      let found = -1;
      for (let at = position; at + segment.length <= end; at++) {
        if (segmentAt(segment, chars, at)) {
          found = at;
          break;
        }
      }
      if (found < 0) return false;
      position = found + segment.length;
    }
    return true;
  };
}

function segmentAt(segment: readonly string[], chars: readonly string[], at: number): boolean {
  if (at < 0 || at + segment.length > chars.length) return false;
  for (let i = 0; i < segment.length; i++) {
    const p = segment[i];
    if (p !== "?" && p !== chars[at + i]) return false;
  }
  return true;
}

// Only the rule's own fields count: nothing inherited can turn a rule into a wildcard.
function own(object: Record<string, unknown>, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

function isPart(value: unknown): value is string {
  return typeof value === "string" && value !== "";
}
