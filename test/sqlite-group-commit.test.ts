/**
 * The SQLite store's group commit (joins of one event-loop turn in one transaction) and its
 * checkpoint thread, on real SQLite files.
 */
import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { JoinError } from "../src/errors.ts";
import type { InstanceJoin } from "../src/join/bot-instance-store.ts";
import { InstanceLedger } from "../src/join/instance-ledger.ts";
import type { CheckpointReport } from "../src/store/sqlite-checkpointer.ts";
import { loadSqliteDriver } from "../src/store/sqlite-driver.ts";
import { SqliteStore } from "../src/store/sqlite-store.ts";
import { assertBadRowRefusedAlone, join } from "./support/bot-instance-store-contract.ts";
import { lock } from "./support/lock-store-contract.ts";

const dir = mkdtempSync(joinPath(tmpdir(), "kube-join-sqlite-batch-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const freshPath = (): string => joinPath(dir, `store-${++seq}.db`);

test("sqlite: concurrent joins of one pod are group-committed with consecutive generations", async () => {
  const batches: number[] = [];
  const store = await SqliteStore.open({
    path: freshPath(),
    onWriteBatch: (n) => batches.push(n),
  });
  try {
    const joins = Array.from({ length: 300 }, (_, i) =>
      store.recordJoin(join({ atMs: 1_800_000_000_000 + i, jti: `jti-${i}` })),
    );
    const records = await Promise.all(joins);
    assert.equal(new Set(records.map((r) => r.botInstanceId)).size, 1);
    // In call order, with no gap and no duplicate.
    assert.deepEqual(
      records.map((r) => r.generation),
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    assert.deepEqual(
      records.at(-1)?.history.map((h) => h.jti),
      Array.from({ length: 10 }, (_, i) => `jti-${290 + i}`),
    );
    // Calls of one turn share commits (at most 256 joins each).
    assert.equal(
      batches.reduce((a, b) => a + b, 0),
      300,
    );
    assert.deepEqual(batches, [256, 44]);
    const stored = await store.list();
    assert.equal(stored.length, 1);
    assert.equal(stored[0]?.generation, 300);
  } finally {
    await store.close();
  }
});

test("sqlite: a failed commit refuses every join of its batch with store_unavailable; the next batch recovers", async () => {
  const path = freshPath();
  const store = await SqliteStore.open({ path, busyTimeoutMs: 50 });
  const ledger = new InstanceLedger({ store });
  const driver = await loadSqliteDriver();
  const other = driver.open(path);
  try {
    // Another connection holds the write lock past the busy timeout (as a stuck CLI would).
    other.exec("BEGIN IMMEDIATE");
    const refused = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => ledger.record(join({ podUid: `pod-${i}` }))),
    );
    for (const outcome of refused) {
      assert.equal(outcome.status, "rejected");
      assert.ok(outcome.reason instanceof JoinError);
      assert.equal(outcome.reason.code, "store_unavailable");
    }
    assert.equal(ledger.storeUp, false);
    other.exec("COMMIT");
    const recorded = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ledger.record(join({ podUid: `pod-${i}` }))),
    );
    // Nothing of the failed batch was written: every pod starts at generation 1.
    assert.deepEqual(
      recorded.map((r) => r.generation),
      Array.from({ length: 20 }, () => 1),
    );
    assert.equal(ledger.storeUp, true);
    assert.equal((await store.list()).length, 20);
  } finally {
    other.close();
    await store.close();
  }
});

test("sqlite: one row the database refuses is refused alone; the rest of its batch is written", async () => {
  const store = await SqliteStore.open({ path: freshPath() });
  try {
    await assertBadRowRefusedAlone(store, /NOT NULL/);
  } finally {
    await store.close();
  }
});

test("sqlite: joins waiting for their commit when the store closes are written, later ones refused", async () => {
  const path = freshPath();
  const store = await SqliteStore.open({ path });
  const pending = store.recordJoin(join());
  await store.close();
  assert.equal((await pending).generation, 1);
  await assert.rejects(store.recordJoin(join()), /closed/);
  const again = await SqliteStore.open({ path });
  try {
    assert.equal((await again.list()).length, 1);
  } finally {
    await again.close();
  }
});

test("sqlite: the checkpoint thread keeps the WAL bounded while joins are written, and the CLI still writes", async () => {
  const path = freshPath();
  const reports: CheckpointReport[] = [];
  const store = await SqliteStore.open({
    path,
    checkpointIntervalMs: 20,
    onCheckpoint: (r) => reports.push(r),
  });
  let walMax = 0;
  const distinct = (i: number, j: number): InstanceJoin =>
    join({ podUid: `pod-${i}-${j}`, podName: `tbot-${"x".repeat(200)}-${i}-${j}` });
  try {
    // 40 bursts of 100 new pods: about 3 pages of WAL each, 48 MB without checkpoints.
    for (let i = 0; i < 40; i++) {
      await Promise.all(Array.from({ length: 100 }, (_, j) => store.recordJoin(distinct(i, j))));
      walMax = Math.max(walMax, statSync(`${path}-wal`).size);
      await sleep(25);
    }
    assert.ok(
      reports.some((r) => r.checkpointed > 0),
      JSON.stringify(reports.slice(-3)),
    );
    assert.ok(walMax < 8 * 1024 * 1024, `the WAL grew to ${walMax} bytes`);
    // The CLI's connection (no thread of its own) reads and writes beside the serving one.
    const cli = await SqliteStore.open({ path });
    try {
      assert.equal((await cli.list()).length, 4000);
      await cli.createLock(lock({ name: "l1" }));
    } finally {
      await cli.close();
    }
    assert.deepEqual(
      (await store.listLocks()).map((l) => l.name),
      ["l1"],
    );
    // Once writes pause, the thread copies the whole WAL into the database file.
    await sleep(200);
    const last = reports.at(-1);
    assert.ok(last !== undefined && last.checkpointed === last.walFrames, JSON.stringify(last));
  } finally {
    await store.close();
  }
});
