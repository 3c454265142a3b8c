import { describe, test } from "node:test";
import { strict as assert } from "node:assert";
import { JoinError } from "../src/errors.ts";
import {
  matchAllowRule,
  requireAllowedServiceAccount,
  type AllowRule,
} from "../src/methods/kubernetes/allow-rules.ts";

const exact = (namespace: string, name: string): AllowRule => ({ kind: "exact", namespace, name });
const glob = (namespaceGlob: string, nameGlob: string): AllowRule => ({
  kind: "glob",
  namespaceGlob,
  nameGlob,
});
const sa = (ref: string): { namespace: string; serviceAccount: string } => {
  const [namespace = "", serviceAccount = ""] = ref.split(":");
  return { namespace, serviceAccount };
};

describe("matchAllowRule", () => {
  const cases: ReadonlyArray<{ rule: AllowRule; account: string; match: boolean }> = [
    // Exact: equal, case-sensitive, both parts.
    { rule: exact("default", "tbot"), account: "default:tbot", match: true },
    { rule: exact("default", "tbot"), account: "default:tbot2", match: false },
    { rule: exact("default", "tbot"), account: "default:tbo", match: false },
    { rule: exact("default", "tbot"), account: "defaultx:tbot", match: false },
    { rule: exact("default", "tbot"), account: "Default:tbot", match: false },
    { rule: exact("default", "tbot"), account: "default:TBOT", match: false },
    { rule: exact("default", "tbot"), account: "tbot:default", match: false },
    { rule: exact("default", "tbot"), account: "kube-system:tbot", match: false },
    // An exact rule is not a glob.
    { rule: exact("default", "tbot-*"), account: "default:tbot-1", match: false },
    { rule: exact("default", "tbot-*"), account: "default:tbot-*", match: true },
    // Globs: anchored at both ends.
    { rule: glob("default", "tbot-*"), account: "default:tbot-1", match: true },
    { rule: glob("default", "tbot-*"), account: "default:tbot-", match: true },
    { rule: glob("default", "tbot-*"), account: "default:xtbot-1", match: false },
    { rule: glob("default", "tbot-*"), account: "default:tbot", match: false },
    { rule: glob("default", "*-bot"), account: "default:ci-bot", match: true },
    { rule: glob("default", "*-bot"), account: "default:ci-bot-2", match: false },
    { rule: glob("ci-*", "tbot"), account: "ci-42:tbot", match: true },
    { rule: glob("ci-*", "tbot"), account: "xci-42:tbot", match: false },
    { rule: glob("ci-*", "tbot"), account: "ci-42:tbot2", match: false },
    { rule: glob("*", "*"), account: "any:thing", match: true },
    { rule: glob("a*b*c", "x"), account: "abc:x", match: true },
    { rule: glob("a*b*c", "x"), account: "a-b-b-c:x", match: true },
    { rule: glob("a*b*c", "x"), account: "a-c-b:x", match: false },
    { rule: glob("ab*ba", "x"), account: "aba:x", match: false },
    { rule: glob("**", "x"), account: "q:x", match: true },
    // `?` is exactly one character.
    { rule: glob("default", "tbot-?"), account: "default:tbot-1", match: true },
    { rule: glob("default", "tbot-?"), account: "default:tbot-", match: false },
    { rule: glob("default", "tbot-?"), account: "default:tbot-12", match: false },
    { rule: glob("default", "?"), account: "default:é", match: true },
    // Regex metacharacters are literal.
    { rule: glob("default", "a.b"), account: "default:a.b", match: true },
    { rule: glob("default", "a.b"), account: "default:axb", match: false },
    { rule: glob("default", "(x)"), account: "default:(x)", match: true },
    { rule: glob("default", "(x)"), account: "default:x", match: false },
    { rule: glob("default", "x|y"), account: "default:x", match: false },
    { rule: glob("default", "[ab]"), account: "default:a", match: false },
    { rule: glob("default", "a+"), account: "default:aa", match: false },
    { rule: glob("default", "^a$"), account: "default:^a$", match: true },
    { rule: glob("default", "\\d"), account: "default:1", match: false },
    // Globs are case-sensitive too.
    { rule: glob("default", "tbot-*"), account: "default:TBOT-1", match: false },
  ];
  for (const c of cases) {
    const pattern =
      c.rule.kind === "exact"
        ? `${c.rule.namespace}:${c.rule.name}`
        : `${c.rule.namespaceGlob}:${c.rule.nameGlob}`;
    test(`${c.rule.kind} ${pattern} ${c.match ? "matches" : "does not match"} ${c.account}`, () => {
      assert.equal(matchAllowRule([c.rule], sa(c.account)), c.match);
    });
  }

  test("any matching rule allows; none, or no rules at all, denies", () => {
    const rules = [exact("default", "other"), glob("ci-*", "tbot")];
    assert.equal(matchAllowRule(rules, sa("ci-1:tbot")), true);
    assert.equal(matchAllowRule(rules, sa("default:tbot")), false);
    assert.equal(matchAllowRule([], sa("default:tbot")), false);
  });

  test("the compiled glob is reused and a rule object answers the same every time", () => {
    const rule = glob("team-?", "*");
    for (let i = 0; i < 3; i++) {
      assert.equal(matchAllowRule([rule], sa("team-a:x")), true);
      assert.equal(matchAllowRule([rule], sa("team-ab:x")), false);
    }
  });

  test("a pathological glob on a long near-miss answers at once (no backtracking regex)", () => {
    const rule = glob("*a*a*a*a*a*a*a*a*b", "*");
    const longName = "a".repeat(253);
    assert.equal(matchAllowRule([rule], { namespace: longName, serviceAccount: "x" }), false);
    assert.equal(matchAllowRule([rule], { namespace: `${longName}b`, serviceAccount: "x" }), true);
  });

  // Fail closed: anything the loader should never produce matches nothing.
  const hostileRules: ReadonlyArray<[string, unknown]> = [
    ["unknown kind", { kind: "regex", namespace: "default", name: "tbot" }],
    ["no kind", { namespace: "default", name: "tbot" }],
    ["exact with a non-string part", { kind: "exact", namespace: "default", name: ["tbot"] }],
    ["exact with empty parts", { kind: "exact", namespace: "", name: "" }],
    ["glob with a non-string part", { kind: "glob", namespaceGlob: "*", nameGlob: 7 }],
    ["glob with a missing part", { kind: "glob", namespaceGlob: "*" }],
    ["glob with an empty part", { kind: "glob", namespaceGlob: "*", nameGlob: "" }],
    ["null", null],
    ["a string", "default:tbot"],
    [
      "kind inherited from a prototype",
      Object.create({ kind: "glob", namespaceGlob: "*", nameGlob: "*" }),
    ],
  ];
  for (const [name, rule] of hostileRules) {
    test(`fails closed: ${name}`, () => {
      assert.equal(matchAllowRule([rule as AllowRule], sa("default:tbot")), false);
      assert.equal(
        matchAllowRule([rule as AllowRule], { namespace: "", serviceAccount: "" }),
        false,
      );
    });
  }

  const hostileAccounts: ReadonlyArray<[string, unknown]> = [
    ["empty parts", { namespace: "", serviceAccount: "" }],
    ["non-string parts", { namespace: ["default"], serviceAccount: "tbot" }],
    ["missing parts", {}],
    ["null", null],
  ];
  for (const [name, account] of hostileAccounts) {
    test(`fails closed for a service account with ${name}`, () => {
      const rules = [glob("*", "*"), exact("default", "tbot")];
      assert.equal(
        matchAllowRule(rules, account as { namespace: string; serviceAccount: string }),
        false,
      );
    });
  }

  test("rules that are not a list match nothing", () => {
    assert.equal(matchAllowRule("*" as unknown as AllowRule[], sa("default:tbot")), false);
  });
});

describe("requireAllowedServiceAccount", () => {
  const rules = [exact("default", "tbot"), glob("secret-team-*", "deployer")];

  test("returns when a rule matches", () => {
    assert.equal(requireAllowedServiceAccount(rules, sa("default:tbot")), undefined);
  });

  test("throws no_matching_allow_rule naming the asking service account, never the rules", () => {
    assert.throws(
      () => requireAllowedServiceAccount(rules, sa("default:tbot2")),
      (err: unknown) => {
        assert.ok(err instanceof JoinError);
        assert.equal(err.code, "no_matching_allow_rule");
        assert.match(err.message, /default:tbot2/);
        assert.doesNotMatch(err.message, /secret-team|deployer|default:tbot"|default:tbot\b(?!2)/);
        return true;
      },
    );
  });
});
