import { JoinError } from "./errors.ts";
import type { AllowRule } from "./resources/types.ts";

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
  if (!Array.isArray(rules) || !isPart(sa?.namespace) || !isPart(sa?.serviceAccount)) return false;
  return rules.some((rule: unknown) => ruleMatches(rule, sa));
}

/**
 * Throws `no_matching_allow_rule` unless a rule admits the service account. The message names the
 * service account that asked and never the rules (they are another party's configuration).
 */
export function requireAllowedServiceAccount(
  rules: readonly AllowRule[],
  sa: ServiceAccountRef,
): void {
  if (matchAllowRule(rules, sa)) return;
  throw new JoinError(
    "no_matching_allow_rule",
    `service account ${JSON.stringify(`${String(sa?.namespace)}:${String(sa?.serviceAccount)}`)} is not allowed by any rule of this join token`,
  );
}

function ruleMatches(rule: unknown, sa: ServiceAccountRef): boolean {
  if (typeof rule !== "object" || rule === null) return false;
  const r = rule as Record<string, unknown>;
  switch (own(r, "kind")) {
    case "exact": {
      const namespace = own(r, "namespace");
      const name = own(r, "name");
      return (
        isPart(namespace) &&
        isPart(name) &&
        namespace === sa.namespace &&
        name === sa.serviceAccount
      );
    }
    case "glob": {
      const compiled = compiledGlobs(r);
      return (
        compiled !== undefined &&
        compiled.namespace(sa.namespace) &&
        compiled.name(sa.serviceAccount)
      );
    }
    default:
      return false;
  }
}

type Matcher = (text: string) => boolean;
interface CompiledGlobRule {
  readonly namespace: Matcher;
  readonly name: Matcher;
}

// Rules are immutable objects loaded once; compiling per rule object keeps every join cheap, and
// the WeakMap lets a reload's old rules be collected. `null` remembers a rule that cannot match.
const compiledRules = new WeakMap<object, CompiledGlobRule | null>();

function compiledGlobs(rule: Record<string, unknown>): CompiledGlobRule | undefined {
  let compiled = compiledRules.get(rule);
  if (compiled === undefined) {
    const namespaceGlob = own(rule, "namespaceGlob");
    const nameGlob = own(rule, "nameGlob");
    compiled =
      isPart(namespaceGlob) && isPart(nameGlob)
        ? { namespace: compileGlob(namespaceGlob), name: compileGlob(nameGlob) }
        : null;
    compiledRules.set(rule, compiled);
  }
  return compiled ?? undefined;
}

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
