import { strict as assert } from "node:assert";
import { test } from "node:test";
import { ConfigError } from "../src/errors.ts";
import { parseResources } from "../src/resources/load.ts";
import { summarize } from "../src/commands/check.ts";

const NOW = Date.parse("2026-12-01T00:00:00Z");

function load(text: string) {
  return parseResources([{ file: "locks.yaml", text }], NOW);
}

function problems(text: string): string[] {
  try {
    load(text);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  assert.fail("expected problems");
}

test("a Teleport-style lock loads with every kube-join target", () => {
  const set = load(`kind: lock
version: v2
metadata:
  name: stop-example
spec:
  target:
    user: bot-example
  message: "compromised: see incident 42"
  expires: "2026-12-31T23:59:59Z"
---
kind: lock
version: v2
metadata:
  name: quarantine
spec:
  target:
    kubernetes_namespace: ci
    kubernetes_service_account: ci:tbot
    join_token: ci-bot
    bot_instance_id: 0d6c3f0e-8f1a-4c59-b7a2-2f4e5d6c7b8a
  created_by: admin
  created_at: "2026-11-30T10:00:00Z"
`);
  assert.deepEqual(set.locks.get("stop-example"), {
    name: "stop-example",
    target: { user: "bot-example" },
    message: "compromised: see incident 42",
    expiresAtMs: Date.parse("2026-12-31T23:59:59Z"),
    createdAtMs: undefined,
    origin: "locks.yaml:4",
  });
  assert.deepEqual(set.locks.get("quarantine")?.target, {
    join_token: "ci-bot",
    bot_instance_id: "0d6c3f0e-8f1a-4c59-b7a2-2f4e5d6c7b8a",
    kubernetes_service_account: "ci:tbot",
    kubernetes_namespace: "ci",
  });
  const summary = summarize(set, NOW);
  assert.match(
    summary,
    /Locks \(2\):\n {2}stop-example\n {4}target: user=bot-example\n {4}expires: 2026-12-31T23:59:59\.000Z\n {4}message: compromised/,
  );
  assert.match(summary, /OK: 0 bot\(s\) and 0 token\(s\) and 2 lock\(s\) from 1 file/);
});

test("every problem of a lock is reported with file:line:col and its field path", () => {
  const found = problems(`kind: lock
version: v2
metadata:
  name: bad
spec:
  target:
    user: alice
    role: admin
    kubernetes_service_account: tbot
    kubernetes_namespace: Not_A_Label
    bot_instance_id: instance-1
  expires: tomorrow
  mesage: typo
`);
  assert.deepEqual(found, [
    'locks.yaml:7:5: spec.target.user: must be bot-NAME (Teleport\'s user of a bot; kube-join joins bots only), got "alice"',
    "locks.yaml:8:5: spec.target.role: kube-join cannot enforce a lock on role; it locks: user, join_token, bot_instance_id, kubernetes_service_account, kubernetes_namespace",
    'locks.yaml:9:5: spec.target.kubernetes_service_account: must be NAMESPACE:NAME, got "tbot"',
    'locks.yaml:10:5: spec.target.kubernetes_namespace: must be a namespace name (a DNS label), got "Not_A_Label"',
    "locks.yaml:11:5: spec.target.bot_instance_id: must be a bot instance id (a lowercase UUID, as kube-join instances list shows)",
    "locks.yaml:12:3: spec.expires: must be an RFC 3339 date-time such as 2026-12-31T23:59:59Z",
    'locks.yaml:13:3: spec.mesage: unknown field (did you mean "message"?); known fields here: target, message, expires, created_at, created_by',
  ]);
});

test("a lock without a target, or with an empty one, never loads (it would lock nothing)", () => {
  assert.deepEqual(
    problems("kind: lock\nversion: v2\nmetadata:\n  name: a\nspec:\n  message: x\n"),
    [
      "locks.yaml:5:1: spec.target: must be set, with one or more of: user, join_token, bot_instance_id, kubernetes_service_account, kubernetes_namespace",
    ],
  );
  assert.match(
    problems("kind: lock\nversion: v2\nmetadata:\n  name: a\nspec:\n  target: {}\n")[0] ?? "",
    /spec\.target: must name one or more of/,
  );
});

test("a lock's version must be v2, names are unique, a passed expiry is a warning", () => {
  assert.match(
    problems(
      "kind: lock\nversion: v1\nmetadata:\n  name: a\nspec:\n  target:\n    join_token: t\n",
    )[0] ?? "",
    /version: must be "v2" for kind lock, got "v1"/,
  );
  const twice =
    "kind: lock\nversion: v2\nmetadata:\n  name: a\nspec:\n  target:\n    join_token: t\n";
  assert.match(
    problems(`${twice}---\n${twice}`)[0] ?? "",
    /duplicate lock name "a": already defined at locks\.yaml:4/,
  );
  const set = load(
    'kind: lock\nversion: v2\nmetadata:\n  name: old\nspec:\n  target:\n    join_token: t\n  expires: "2026-01-01T00:00:00Z"\n',
  );
  assert.equal(set.locks.size, 1);
  assert.match(set.warnings[0] ?? "", /spec\.expires: has passed: the lock is not in force/);
});
