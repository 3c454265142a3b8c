import { strict as assert } from "node:assert";
import { after, before, test } from "node:test";
import pg from "pg";
import { PostgresStore } from "../src/store/postgres-store.ts";
import { SCHEMA_VERSION } from "../src/store/schema.ts";
import { StoreOpenError } from "../src/store/store.ts";
import { botInstanceStoreContract, join } from "./support/bot-instance-store-contract.ts";
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
