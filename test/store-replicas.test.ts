/**
 * Two `serve` replicas on one real PostgreSQL (a throwaway cluster from Debian's binaries): one
 * instance with consecutive generations whichever replica a pod reaches, a CLI lock enforced by
 * both within 5 s, and a PostgreSQL restart mid-run answered with store_unavailable, then 200s,
 * with no crash.
 */
import { strict as assert } from "node:assert";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { ensureBuilt, runCli, type ServiceProcess } from "./support/service.ts";
import { PG_PASSWORD, POSTGRES, startPostgres, type PostgresCluster } from "./support/postgres.ts";
import {
  configYaml,
  eventually,
  joinAsPod,
  kubeJoin,
  newClusterKey,
  resourcesYaml,
  startStoreService,
} from "./support/store-service.ts";

const skip = POSTGRES.skip;
const key = newClusterKey();
let cluster: PostgresCluster | undefined;
const replicas: ServiceProcess[] = [];
let storeLines: string[] = [];

before(async () => {
  if (skip !== false) return;
  await ensureBuilt();
  cluster = await startPostgres();
  await cluster.createDatabase("kj_replicas");
  const url = cluster.urlWithoutPassword("kj_replicas");
  storeLines = [
    "store:",
    "  engine: postgres",
    "  postgres:",
    `    url: "${url}"`,
    "    password_file: ./pg-password",
    "  lock_poll_interval: 1s",
  ];
  // Started together: the advisory lock keeps their schema migrations apart.
  const started = await Promise.all(
    [0, 1].map(() =>
      startStoreService(key, storeLines, { extraFiles: { "pg-password": `${PG_PASSWORD}\n` } }),
    ),
  );
  replicas.push(...started);
});

after(async () => {
  for (const replica of replicas) await replica.stop();
  await cluster?.destroy();
});

function replica(i: number): ServiceProcess {
  const r = replicas[i];
  if (r === undefined) throw new Error("replicas not started");
  return r;
}

test(
  "joins of one pod alternating between the replicas make one instance, consecutive generations",
  { skip },
  async () => {
    const pod = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9";
    const results = [];
    for (let i = 0; i < 6; i++)
      results.push(await joinAsPod(replica(i % 2).baseUrl, key, { uid: pod }));
    assert.deepEqual(
      results.map((r) => r.status),
      [200, 200, 200, 200, 200, 200],
    );
    assert.equal(new Set(results.map((r) => r.body["bot_instance_id"])).size, 1);
    assert.deepEqual(
      results.map((r) => r.body["generation"]),
      [1, 2, 3, 4, 5, 6],
    );
    const list = await kubeJoin(
      "instances",
      "show",
      String(results[0]?.body["bot_instance_id"]),
      "--config",
      join(replica(1).dir, "config.yaml"),
    );
    assert.match(list.stdout, /^Generation: +6$/m);
  },
);

test(
  "a lock created with the CLI refuses joins on both replicas within 5 s",
  { skip },
  async () => {
    const config = join(replica(0).dir, "config.yaml");
    const created = await kubeJoin(
      "lock",
      "create",
      "--namespace",
      "default",
      "--name",
      "replicas-lock",
      "--config",
      config,
    );
    assert.equal(created.code, 0, created.stderr);
    try {
      for (const i of [0, 1]) {
        await eventually(
          async () => (await joinAsPod(replica(i).baseUrl, key)).status === 403,
          5_000,
          `replica ${i} refuses`,
        );
      }
    } finally {
      assert.equal((await kubeJoin("lock", "delete", "replicas-lock", "--config", config)).code, 0);
    }
    for (const i of [0, 1]) {
      await eventually(
        async () => (await joinAsPod(replica(i).baseUrl, key)).status === 200,
        5_000,
        `replica ${i} joins again`,
      );
    }
  },
);

test(
  "restarting PostgreSQL mid-run: store_unavailable during the outage, 200s after, no crash",
  { skip },
  async () => {
    const db = cluster;
    assert.ok(db);
    await db.stop();
    try {
      for (const i of [0, 1]) {
        const r = await joinAsPod(replica(i).baseUrl, key);
        assert.equal(r.status, 503, JSON.stringify(r.body));
        assert.equal((r.body["error"] as { code: string }).code, "store_unavailable");
      }
    } finally {
      await db.start();
    }
    for (const i of [0, 1]) {
      await eventually(
        async () => (await joinAsPod(replica(i).baseUrl, key)).status === 200,
        10_000,
        `replica ${i} recovers`,
      );
      assert.equal(replica(i).child.exitCode, null, "still running");
    }
    const down = replica(0)
      .logs()
      .filter((l) => l["msg"] === "store unavailable: joins are refused until it is back");
    assert.equal(down.length, 1, "logged once per outage");
  },
);

test("a wrong PostgreSQL password stops serve at start with one clear line", { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-pg-wrong-"));
  writeFileSync(join(dir, "resources.yaml"), resourcesYaml(key));
  writeFileSync(join(dir, "pg-password"), "wrong-password\n");
  writeFileSync(join(dir, "config.yaml"), configYaml(storeLines));
  const result = await runCli(["serve", "--config", join(dir, "config.yaml")]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /refused the password of user kube_join \(28P01\)/);
  assert.doesNotMatch(result.stderr, /wrong-password/);
  assert.doesNotMatch(result.stderr, /\n\s+at /);
});
