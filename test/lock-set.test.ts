import { strict as assert } from "node:assert";
import { test } from "node:test";
import { formatTarget, LockSet, type Lock, type LockSubject } from "../src/locks/lock.ts";

const NOW = 1_800_000_000_000;

const subject: LockSubject = {
  user: "bot-example",
  joinToken: "example-bot",
  botInstanceId: "0d6c3f0e-8f1a-4c59-b7a2-2f4e5d6c7b8a",
  kubernetesServiceAccount: "default:tbot",
  kubernetesNamespace: "default",
};

function lock(name: string, target: Lock["target"], expiresAtMs?: number): Lock {
  return { name, target, message: undefined, expiresAtMs, createdAtMs: undefined, origin: "t" };
}

const cases: [string, Lock["target"], boolean][] = [
  ["the bot's user", { user: "bot-example" }, true],
  ["another bot", { user: "bot-other" }, false],
  ["the join token", { join_token: "example-bot" }, true],
  ["the instance", { bot_instance_id: subject.botInstanceId ?? "" }, true],
  ["another instance", { bot_instance_id: "11111111-1111-4111-8111-111111111111" }, false],
  ["the service account", { kubernetes_service_account: "default:tbot" }, true],
  ["a same-named account elsewhere", { kubernetes_service_account: "other:tbot" }, false],
  ["the namespace", { kubernetes_namespace: "default" }, true],
  ["a namespace that only starts the same", { kubernetes_namespace: "def" }, false],
  ["all of two fields", { user: "bot-example", kubernetes_namespace: "default" }, true],
  ["one of two fields only", { user: "bot-example", kubernetes_namespace: "prod" }, false],
];

for (const [title, target, matches] of cases) {
  test(`a lock on ${title} ${matches ? "matches" : "does not match"}`, () => {
    const set = new LockSet([lock("l", target)]);
    assert.equal(set.match(subject, NOW)?.name, matches ? "l" : undefined);
  });
}

test("an expired lock is not in force; one expiring later is", () => {
  const set = new LockSet([
    lock("old", { user: "bot-example" }, NOW),
    lock("new", { user: "bot-example" }, NOW + 1),
  ]);
  assert.equal(set.match(subject, NOW)?.name, "new");
  assert.equal(set.match(subject, NOW + 1), undefined);
});

test("an instance lock never matches a pod's first join (no instance yet)", () => {
  const set = new LockSet([lock("i", { bot_instance_id: "x" })]);
  assert.equal(set.match({ ...subject, botInstanceId: undefined }, NOW), undefined);
});

test("a lock with an empty target is ignored, never a lock on everything", () => {
  const set = new LockSet([lock("empty", {})]);
  assert.equal(set.size, 0);
  assert.equal(set.match(subject, NOW), undefined);
  assert.equal(LockSet.EMPTY.match(subject, NOW), undefined);
});

test("a target prints as field=value pairs in a fixed order", () => {
  assert.equal(
    formatTarget({ kubernetes_namespace: "default", user: "bot-example" }),
    "user=bot-example,kubernetes_namespace=default",
  );
});
