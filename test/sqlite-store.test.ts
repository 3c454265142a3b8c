import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join as joinPath } from "node:path";
import { test } from "node:test";
import { loadSqliteDriver, type SqliteDriverName } from "../src/store/sqlite-driver.ts";
import { SqliteStore } from "../src/store/sqlite-store.ts";
import { StoreOpenError } from "../src/store/store.ts";
import { SCHEMA_VERSION } from "../src/store/schema.ts";
import { botInstanceStoreContract, join } from "./support/bot-instance-store-contract.ts";
import { lockStoreContract } from "./support/lock-store-contract.ts";

const dir = mkdtempSync(joinPath(tmpdir(), "kube-join-sqlite-"));
process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
let seq = 0;
const freshPath = (): string => {
  mkdirSync(dir, { recursive: true });
  return joinPath(dir, `store-${++seq}.db`);
};

// Node 22.13+ has node:sqlite built in; older Node uses better-sqlite3, built by `npm ci`.
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
const nodeHasSqlite = major > 22 || (major === 22 && minor >= 13);
const expectedDriver: SqliteDriverName = nodeHasSqlite ? "node:sqlite" : "better-sqlite3";

test("the loader picks node:sqlite where Node has it, else better-sqlite3", async () => {
  const driver = await loadSqliteDriver();
  assert.equal(driver.name, expectedDriver);
});

for (const name of ["node:sqlite", "better-sqlite3"] as const) {
  // The other binding may not load on this Node (no node:sqlite on Node 20; on Node 26 the
  // better-sqlite3 built for Node 20 by `.ci/run`'s first run): its cases skip, saying why.
  const loaded = await loadSqliteDriver(name).then(
    () => undefined,
    (err: unknown) => (err instanceof Error ? err.message : String(err)),
  );
  if (loaded !== undefined && name === expectedDriver) {
    throw new Error(`the SQLite driver this Node must use does not load: ${loaded}`);
  }
  const skip = loaded === undefined ? false : loaded;
  if (skip !== false) {
    test(`sqlite (${name}): contract`, { skip }, () => undefined);
    continue;
  }
  botInstanceStoreContract(`sqlite (${name})`, () =>
    SqliteStore.open({ path: freshPath(), driver: name }),
  );
  lockStoreContract(`sqlite (${name})`, () =>
    SqliteStore.open({ path: freshPath(), driver: name }),
  );
}

test("sqlite: instances and locks outlive the process's handle on the file", async () => {
  const path = freshPath();
  const first = await SqliteStore.open({ path });
  const record = await first.recordJoin(join());
  await first.createLock({
    name: "l1",
    target: { join_token: "example-bot" },
    message: undefined,
    expiresAtMs: undefined,
    createdAtMs: 5,
    origin: "store",
  });
  await first.close();
  const again = await SqliteStore.open({ path });
  try {
    assert.deepEqual(await again.get(record.botInstanceId), record);
    assert.equal((await again.recordJoin(join({ atMs: 1_800_000_001_000 }))).generation, 2);
    assert.deepEqual(
      (await again.listLocks()).map((l) => l.name),
      ["l1"],
    );
  } finally {
    await again.close();
  }
});

test("sqlite: a file that is not a database is a clear start error, left untouched", async () => {
  const path = freshPath();
  writeFileSync(path, "this is not a database, just text that someone put here\n".repeat(100));
  await assert.rejects(SqliteStore.open({ path }), (err: unknown) => {
    assert.ok(err instanceof StoreOpenError);
    assert.match(err.message, /is not a SQLite database or is corrupt/);
    assert.ok(err.message.includes(path));
    return true;
  });
});

test("sqlite: a path that cannot be opened names the file and what to check", async () => {
  const directory = joinPath(dir, "a-directory.db");
  mkdirSync(directory);
  for (const path of [directory, joinPath(dir, "missing", "store.db")]) {
    await assert.rejects(SqliteStore.open({ path }), (err: unknown) => {
      assert.ok(err instanceof StoreOpenError);
      assert.match(err.message, /^cannot open the SQLite store /);
      assert.ok(err.message.includes(path));
      return true;
    });
  }
});

test("sqlite: a schema from a newer kube-join is refused and left as it was", async () => {
  const path = freshPath();
  const store = await SqliteStore.open({ path });
  await store.close();
  const driver = await loadSqliteDriver();
  const db = driver.open(path);
  db.prepare("INSERT INTO schema_version (version, applied_at_ms) VALUES (?, ?)").run(
    SCHEMA_VERSION + 1,
    0,
  );
  db.close();
  await assert.rejects(SqliteStore.open({ path }), (err: unknown) => {
    assert.ok(err instanceof StoreOpenError);
    assert.match(
      err.message,
      new RegExp(
        `schema version ${SCHEMA_VERSION + 1}, newer than this kube-join's \\(${SCHEMA_VERSION}\\)`,
      ),
    );
    return true;
  });
  const check = driver.open(path);
  assert.equal(
    check.prepare("SELECT max(version) AS v FROM schema_version").get()?.["v"],
    SCHEMA_VERSION + 1,
  );
  check.close();
});
