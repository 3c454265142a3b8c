import { strict as assert } from "node:assert";
import { test } from "node:test";
import { JoinError } from "../src/errors.ts";
import type { InstanceJoin } from "../src/join/bot-instance-store.ts";
import { InstanceLedger, JoinLockedError } from "../src/join/instance-ledger.ts";
import { LockWatcher } from "../src/join/lock-watcher.ts";
import { startInstanceSweeper } from "../src/service/instance-sweeper.ts";
import { MemoryStore } from "../src/store/memory-store.ts";
import { join } from "./support/bot-instance-store-contract.ts";
import { lock } from "./support/lock-store-contract.ts";

const NOW = 1_800_000_000_000;
const query = {
  botName: "example",
  tokenName: "example-bot",
  podUid: join().podUid,
  namespace: "default",
  serviceAccount: "tbot",
};

test("a stored lock is enforced after the next poll, lifted after delete and poll", async () => {
  const store = new MemoryStore();
  const watcher = new LockWatcher({ store });
  const ledger = new InstanceLedger({ store, locks: watcher });
  await watcher.poll();
  ledger.refuseIfLocked(query, NOW);
  await store.createLock(lock({ name: "l1", target: { kubernetes_namespace: "default" } }));
  ledger.refuseIfLocked(query, NOW); // not polled yet: the join sees the last poll's set
  await watcher.poll();
  assert.throws(
    () => ledger.refuseIfLocked(query, NOW),
    (err: unknown) =>
      err instanceof JoinLockedError &&
      err.code === "join_locked" &&
      err.lockName === "l1" &&
      err.targetField === "kubernetes_namespace" &&
      err.message ===
        "a lock in force refuses new certificates for this bot: compromised: see incident 42" &&
      !err.message.includes("default"),
  );
  await store.deleteLock("l1");
  await watcher.poll();
  ledger.refuseIfLocked(query, NOW);
});

test("an instance lock matches the pod's later joins, resolved from memory", async () => {
  const store = new MemoryStore();
  const watcher = new LockWatcher({ store });
  const ledger = new InstanceLedger({ store, locks: watcher });
  const record = await ledger.record(join());
  await store.createLock(
    lock({ name: "i", target: { bot_instance_id: record.botInstanceId }, message: undefined }),
  );
  await watcher.poll();
  assert.throws(
    () => ledger.refuseIfLocked(query, NOW),
    /^JoinError: a lock in force refuses new certificates for this bot$/,
  );
  ledger.refuseIfLocked({ ...query, podUid: "another-pod" }, NOW);
});

test("YAML locks and stored locks apply together; a failed poll keeps the last set", async () => {
  const store = new MemoryStore();
  let failing = false;
  const flaky = {
    listLocks: () => (failing ? Promise.reject(new Error("down")) : store.listLocks()),
    get: (id: string) => store.get(id),
    createLock: store.createLock.bind(store),
    deleteLock: store.deleteLock.bind(store),
  };
  const errors: unknown[] = [];
  let recovered = 0;
  const watcher = new LockWatcher({
    store: flaky,
    onPollError: (e) => errors.push(e),
    onPollRecovered: () => recovered++,
  });
  watcher.setResourceLocks([
    lock({ name: "yaml", target: { join_token: "other" }, origin: "locks.yaml:3" }),
  ]);
  await store.createLock(lock({ name: "stored", target: { user: "bot-example" } }));
  await watcher.poll();
  assert.equal(watcher.current.size, 2);
  failing = true;
  await watcher.poll();
  await watcher.poll();
  assert.equal(errors.length, 1, "one report per failure streak");
  assert.equal(watcher.current.size, 2);
  failing = false;
  await watcher.poll();
  assert.equal(recovered, 1);
});

test("a failed write is store_unavailable, reported once per outage, and recovers by itself", async () => {
  const store = new MemoryStore();
  let down = false;
  const flaky = Object.assign(Object.create(store) as MemoryStore, {
    recordJoin: (j: InstanceJoin) =>
      down ? Promise.reject(new Error("disk I/O error")) : store.recordJoin(j),
  });
  const events: string[] = [];
  const ledger = new InstanceLedger({
    store: flaky,
    onWriteFailure: () => events.push("failure"),
    onStoreDown: () => events.push("down"),
    onStoreUp: () => events.push("up"),
  });
  await ledger.record(join());
  down = true;
  for (let i = 0; i < 3; i++) {
    await assert.rejects(
      ledger.record(join()),
      (err: unknown) =>
        err instanceof JoinError &&
        err.code === "store_unavailable" &&
        !err.message.includes("disk"),
    );
  }
  assert.equal(ledger.storeUp, false);
  down = false;
  assert.equal((await ledger.record(join())).generation, 2);
  assert.equal(ledger.storeUp, true);
  assert.deepEqual(events, ["failure", "down", "failure", "failure", "up"]);
});

test("the sweeper removes instances past their certificates' expiry plus the retention", async () => {
  const store = new MemoryStore();
  await store.recordJoin(join({ podUid: "old", expiresAtMs: NOW - 2 * 3_600_000 }));
  await store.recordJoin(join({ podUid: "recent", expiresAtMs: NOW - 60_000 }));
  const swept: number[] = [];
  const sweeper = startInstanceSweeper({
    store,
    retentionMs: 3_600_000,
    now: () => NOW,
    onSwept: (n) => swept.push(n),
  });
  try {
    await sweeper.sweepOnce();
  } finally {
    sweeper.stop();
  }
  assert.deepEqual(swept, [1]);
  assert.deepEqual(
    (await store.list()).map((r) => r.podUid),
    ["recent"],
  );
});
