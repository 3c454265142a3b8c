import { strict as assert } from "node:assert";
import { after, before, test } from "node:test";
import pg from "pg";
import { JoinError } from "../src/errors.ts";
import { InstanceLedger } from "../src/join/instance-ledger.ts";
import { PostgresStore } from "../src/store/postgres-store.ts";
import { SCHEMA_VERSION } from "../src/store/schema.ts";
import { StoreOpenError } from "../src/store/store.ts";
import {
  assertBadRowRefusedAlone,
  botInstanceStoreContract,
  join,
} from "./support/bot-instance-store-contract.ts";
import { lockStoreContract } from "./support/lock-store-contract.ts";
import { PG_PASSWORD, POSTGRES, startPostgres, type PostgresCluster } from "./support/postgres.ts";

const skip = POSTGRES.skip;
let cluster: PostgresCluster | undefined;
before(async () => {
  if (skip === false) cluster = await startPostgres();
});
after(async () => {
  await cluster?.destroy();
});

function need(): PostgresCluster {
  if (cluster === undefined) throw new Error("no PostgreSQL cluster");
  return cluster;
}

async function fresh(): Promise<PostgresStore> {
  return PostgresStore.open({ url: await need().createDatabase() });
}

if (skip !== false) {
  test("postgres: contract", { skip }, () => undefined);
} else {
  botInstanceStoreContract("postgres", fresh);
  lockStoreContract("postgres", fresh);
}

test(
  "postgres: joins of one pod racing on two pools give consecutive generations",
  { skip },
  async () => {
    const url = await need().createDatabase();
    // Two replicas starting at once: the advisory lock keeps their migrations apart.
    const [a, b] = await Promise.all([PostgresStore.open({ url }), PostgresStore.open({ url })]);
    try {
      const records = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          (i % 2 === 0 ? a : b).recordJoin(join({ atMs: 1_800_000_000_000 + i, jti: `j${i}` })),
        ),
      );
      assert.equal(new Set(records.map((r) => r.botInstanceId)).size, 1);
      assert.deepEqual(
        records.map((r) => r.generation).sort((x, y) => x - y),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      const [only] = await a.list();
      assert.equal(only?.generation, 20);
      assert.equal(only?.history.length, 10);
    } finally {
      await a.close();
      await b.close();
    }
  },
);

test(
  "postgres: a password given apart from the URL (as password_file gives it) logs in",
  { skip },
  async () => {
    await need().createDatabase("kj_password_apart");
    const store = await PostgresStore.open({
      url: need().urlWithoutPassword("kj_password_apart"),
      password: PG_PASSWORD,
    });
    try {
      assert.equal(store.location, `postgres://127.0.0.1:${need().port}/kj_password_apart`);
      assert.deepEqual(await store.list(), []);
    } finally {
      await store.close();
    }
  },
);

test(
  "postgres: a wrong password is a clear start error without the password",
  { skip },
  async () => {
    await need().createDatabase("kj_wrong_password");
    await assert.rejects(
      PostgresStore.open({
        url: need().urlWithoutPassword("kj_wrong_password"),
        password: "not-the-password",
      }),
      (err: unknown) => {
        assert.ok(err instanceof StoreOpenError);
        assert.match(err.message, /refused the password of user kube_join \(28P01\)/);
        assert.ok(!err.message.includes("not-the-password"));
        return true;
      },
    );
  },
);

test("postgres: no server, a missing database: clear start errors", { skip }, async () => {
  await assert.rejects(
    PostgresStore.open({ url: `postgres://kube_join:x@127.0.0.1:1/none` }),
    (err: unknown) =>
      err instanceof StoreOpenError &&
      /^cannot reach PostgreSQL at postgres:\/\/127\.0\.0\.1:1\/none \(ECONNREFUSED\)/.test(
        err.message,
      ) &&
      !err.message.includes(":x@"),
  );
  await assert.rejects(
    PostgresStore.open({ url: need().urlWithoutPassword("no_such_db"), password: PG_PASSWORD }),
    (err: unknown) => err instanceof StoreOpenError && /\(3D000\)/.test(err.message),
  );
});

test(
  "postgres: a schema from a newer kube-join is refused and left as it was",
  { skip },
  async () => {
    const url = await need().createDatabase();
    await (await PostgresStore.open({ url })).close();
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query("INSERT INTO schema_version (version, applied_at_ms) VALUES ($1, 0)", [
        SCHEMA_VERSION + 1,
      ]);
      await assert.rejects(PostgresStore.open({ url }), (err: unknown) => {
        assert.ok(err instanceof StoreOpenError);
        assert.match(err.message, new RegExp(`schema version ${SCHEMA_VERSION + 1}, newer`));
        return true;
      });
      const rows = await client.query("SELECT max(version)::int AS v FROM schema_version");
      assert.equal(rows.rows[0]?.v, SCHEMA_VERSION + 1);
    } finally {
      await client.end();
    }
  },
);

test(
  "postgres: a restart fails queries meanwhile and the pool recovers by itself",
  { skip },
  async () => {
    const url = await need().createDatabase();
    const idleErrors: Error[] = [];
    const store = await PostgresStore.open({
      url,
      queryTimeoutMs: 2_000,
      onIdleError: (err) => idleErrors.push(err),
    });
    try {
      await store.recordJoin(join());
      await need().stop();
      await assert.rejects(store.recordJoin(join({ atMs: 1_800_000_001_000 })));
      await need().start();
      let record;
      for (let i = 0; i < 50 && record === undefined; i++) {
        record = await store.recordJoin(join({ atMs: 1_800_000_002_000 })).catch(() => undefined);
        if (record === undefined) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(record?.generation, 2);
    } finally {
      await store.close();
    }
  },
);

test(
  "postgres: concurrent joins go as one statement; one pod's joins of a batch stay consecutive",
  { skip },
  async () => {
    const batches: number[] = [];
    const store = await PostgresStore.open({
      url: await need().createDatabase(),
      onWriteBatch: (n) => batches.push(n),
    });
    try {
      const distinct = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.recordJoin(join({ podUid: `pod-${i}` }))),
      );
      assert.deepEqual(batches, [50]);
      assert.equal(new Set(distinct.map((r) => r.botInstanceId)).size, 50);
      assert.ok(distinct.every((r, i) => r.podUid === `pod-${i}` && r.generation === 1));
      batches.length = 0;
      // 30 joins of one pod in one turn: ON CONFLICT cannot update a row twice in a statement,
      // so they go one statement after another, in call order.
      const same = await Promise.all(
        Array.from({ length: 30 }, (_, i) =>
          store.recordJoin(join({ atMs: 1_800_000_000_000 + i, jti: `j${i}` })),
        ),
      );
      assert.deepEqual(
        same.map((r) => r.generation),
        Array.from({ length: 30 }, (_, i) => i + 1),
      );
      assert.equal(new Set(same.map((r) => r.botInstanceId)).size, 1);
      assert.deepEqual(
        same.at(-1)?.history.map((h) => h.jti),
        Array.from({ length: 10 }, (_, i) => `j${20 + i}`),
      );
      assert.equal(
        batches.reduce((a, b) => a + b, 0),
        30,
      );
      // A mixed turn: two pods, three joins each: three statements of two.
      batches.length = 0;
      const mixed = await Promise.all(
        ["a", "b", "a", "b", "a", "b"].map((pod) => store.recordJoin(join({ podUid: pod }))),
      );
      assert.deepEqual(
        mixed.map((r) => r.generation),
        [1, 1, 2, 2, 3, 3],
      );
      assert.deepEqual(batches, [2, 2, 2]);
    } finally {
      await store.close();
    }
  },
);

test(
  "postgres: a failed statement refuses every join of its batch with store_unavailable; the next recovers",
  { skip },
  async () => {
    const url = await need().createDatabase();
    const store = await PostgresStore.open({ url });
    const ledger = new InstanceLedger({ store });
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      await store.recordJoin(join({ podUid: "warm" }));
      // A privilege taken away (an operator's mistake): every row of the statement fails.
      await admin.query("REVOKE INSERT, UPDATE ON bot_instances FROM CURRENT_USER");
      const refused = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) => ledger.record(join({ podUid: `pod-${i}` }))),
      );
      for (const outcome of refused) {
        assert.equal(outcome.status, "rejected");
        assert.ok(outcome.reason instanceof JoinError);
        assert.equal(outcome.reason.code, "store_unavailable");
      }
      assert.equal(ledger.storeUp, false);
      await admin.query("GRANT INSERT, UPDATE ON bot_instances TO CURRENT_USER");
      const recorded = await Promise.all(
        Array.from({ length: 20 }, (_, i) => ledger.record(join({ podUid: `pod-${i}` }))),
      );
      assert.ok(recorded.every((r) => r.generation === 1));
      assert.equal(ledger.storeUp, true);
      assert.equal((await store.list()).length, 21);
    } finally {
      await admin.end();
      await store.close();
    }
  },
);

test(
  "postgres: one row PostgreSQL refuses is refused alone; the rest of its batch is written",
  { skip },
  async () => {
    const store = await PostgresStore.open({ url: await need().createDatabase() });
    try {
      await assertBadRowRefusedAlone(store, /null value/);
    } finally {
      await store.close();
    }
  },
);
