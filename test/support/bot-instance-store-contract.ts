/**
 * The behaviour every `BotInstanceStore` adapter must show, as one suite: the in-memory
 * reference runs it in `test/bot-instance-store.test.ts`, and each database adapter runs the same
 * cases against its real engine.
 */
import { strict as assert } from "node:assert";
import { test } from "node:test";
import {
  INSTANCE_HISTORY_LIMIT,
  type BotInstanceStore,
  type InstanceJoin,
} from "../../src/join/bot-instance-store.ts";

export function join(overrides: Partial<InstanceJoin> = {}): InstanceJoin {
  return {
    botName: "example",
    tokenName: "example-bot",
    podUid: "7c1d7f3a-0b0e-4a4e-9d7a-3f5c2e1b0a01",
    joinMethod: "kubernetes",
    joinType: "static_jwks",
    namespace: "default",
    serviceAccount: "tbot",
    podName: "tbot-5d8f7c9b6-x2x7q",
    nodeName: "node-1",
    atMs: 1_800_000_000_000,
    remoteAddress: "127.0.0.1",
    jti: "jti-1",
    tlsSerial: "0a",
    sshSerial: "1",
    expiresAtMs: 1_800_003_600_000,
    ...overrides,
  };
}

/** Registers the contract's tests; `open` gives a fresh, empty store for each. */
export function botInstanceStoreContract(
  name: string,
  open: () => Promise<BotInstanceStore>,
): void {
  const withStore = (title: string, body: (store: BotInstanceStore) => Promise<void>): void => {
    test(`${name}: ${title}`, async () => {
      const store = await open();
      try {
        await body(store);
      } finally {
        await store.close();
      }
    });
  };

  withStore(
    "a first join makes generation 1 with a UUID; the next join of the pod bumps it",
    async (store) => {
      const first = await store.recordJoin(join());
      assert.match(
        first.botInstanceId,
        /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
      );
      assert.equal(first.generation, 1);
      assert.equal(first.firstJoinMs, first.lastJoinMs);
      const second = await store.recordJoin(
        join({ atMs: 1_800_000_060_000, tlsSerial: "0b", jti: "jti-2" }),
      );
      assert.equal(second.botInstanceId, first.botInstanceId);
      assert.equal(second.generation, 2);
      assert.equal(second.firstJoinMs, 1_800_000_000_000);
      assert.equal(second.lastJoinMs, 1_800_000_060_000);
      assert.equal(second.tlsSerial, "0b");
      assert.deepEqual(
        second.history.map((h) => h.jti),
        ["jti-1", "jti-2"],
      );
      assert.deepEqual(await store.get(first.botInstanceId), second);
    },
  );

  withStore("another pod, token or bot is another instance", async (store) => {
    const a = await store.recordJoin(join());
    const b = await store.recordJoin(join({ podUid: "other-pod" }));
    const c = await store.recordJoin(join({ tokenName: "other-token" }));
    const d = await store.recordJoin(join({ botName: "other-bot" }));
    assert.equal(new Set([a, b, c, d].map((r) => r.botInstanceId)).size, 4);
    assert.deepEqual(
      [a, b, c, d].map((r) => r.generation),
      [1, 1, 1, 1],
    );
    assert.equal((await store.list()).length, 4);
    assert.deepEqual(
      (await store.list({ botName: "other-bot" })).map((r) => r.botInstanceId),
      [d.botInstanceId],
    );
  });

  withStore("the history keeps the last joins only, newest last", async (store) => {
    let last;
    for (let i = 0; i < INSTANCE_HISTORY_LIMIT + 3; i++) {
      last = await store.recordJoin(join({ atMs: 1_800_000_000_000 + i, jti: `jti-${i}` }));
    }
    assert.ok(last);
    assert.equal(last.generation, INSTANCE_HISTORY_LIMIT + 3);
    assert.equal(last.history.length, INSTANCE_HISTORY_LIMIT);
    assert.equal(last.history.at(-1)?.jti, `jti-${INSTANCE_HISTORY_LIMIT + 2}`);
    assert.equal(last.history[0]?.jti, "jti-3");
  });

  withStore(
    "sweep removes only instances whose certificates expired before the cut",
    async (store) => {
      const old = await store.recordJoin(join({ podUid: "old", expiresAtMs: 1000 }));
      const live = await store.recordJoin(join({ podUid: "live", expiresAtMs: 5000 }));
      assert.equal(await store.sweep(2000), 1);
      assert.equal(await store.get(old.botInstanceId), undefined);
      assert.ok(await store.get(live.botInstanceId));
      const again = await store.recordJoin(join({ podUid: "old", expiresAtMs: 9000 }));
      assert.notEqual(again.botInstanceId, old.botInstanceId);
      assert.equal(again.generation, 1);
    },
  );

  withStore(
    "a refused attempt joins the known pod's history without a new generation",
    async (store) => {
      const first = await store.recordJoin(join());
      const refused = await store.recordRefused(join(), {
        atMs: 1_800_000_030_000,
        remoteAddress: "10.0.0.9",
        jti: undefined,
        result: "join_locked",
      });
      assert.ok(refused);
      assert.equal(refused.botInstanceId, first.botInstanceId);
      assert.equal(refused.generation, 1);
      assert.equal(refused.lastJoinMs, first.lastJoinMs);
      assert.deepEqual(refused.history.at(-1), {
        atMs: 1_800_000_030_000,
        remoteAddress: "10.0.0.9",
        jti: undefined,
        result: "join_locked",
      });
      assert.deepEqual(await store.get(first.botInstanceId), refused);
      assert.equal(
        await store.recordRefused(join({ podUid: "never-joined" }), {
          atMs: 1,
          remoteAddress: "x",
          jti: "j",
          result: "join_locked",
        }),
        undefined,
      );
      assert.equal((await store.list()).length, 1);
    },
  );

  withStore("a pod without a node name keeps it undefined", async (store) => {
    const record = await store.recordJoin(join({ nodeName: undefined, jti: undefined }));
    assert.equal(record.nodeName, undefined);
    assert.equal(record.history[0]?.jti, undefined);
    assert.deepEqual(await store.get(record.botInstanceId), record);
  });

  withStore("an unknown id is undefined, an empty store lists nothing", async (store) => {
    assert.equal(await store.get("00000000-0000-4000-8000-000000000000"), undefined);
    assert.deepEqual(await store.list(), []);
    assert.equal(await store.sweep(Number.MAX_SAFE_INTEGER), 0);
  });
}

/**
 * A SQL adapter's batch with one row its database refuses (a NOT NULL pod name): that join alone
 * is refused, with the database's reason matching `reason`; the others of its batch are written.
 */
export async function assertBadRowRefusedAlone(
  store: BotInstanceStore,
  reason: RegExp,
): Promise<void> {
  const bad = join({ podUid: "pod-bad", podName: null as unknown as string });
  const outcomes = await Promise.allSettled([
    store.recordJoin(join({ podUid: "pod-1" })),
    store.recordJoin(bad),
    store.recordJoin(join({ podUid: "pod-2" })),
  ]);
  assert.deepEqual(
    outcomes.map((o) => o.status),
    ["fulfilled", "rejected", "fulfilled"],
  );
  assert.match(String((outcomes[1] as PromiseRejectedResult).reason), reason);
  assert.deepEqual((await store.list()).map((r) => r.podUid).sort(), ["pod-1", "pod-2"]);
}
