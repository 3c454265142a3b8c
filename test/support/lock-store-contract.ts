/**
 * The behaviour every `LockStore` adapter must show; run against memory, SQLite and PostgreSQL.
 */
import { strict as assert } from "node:assert";
import { test } from "node:test";
import { LockExistsError, type LockStore } from "../../src/join/lock-store.ts";
import type { Lock } from "../../src/locks/lock.ts";

export function lock(overrides: Partial<Lock> = {}): Lock {
  return {
    name: "3f0e8a3c-5a0b-4d7e-9a57-8d9e2f1c0b11",
    target: { user: "bot-example" },
    message: "compromised: see incident 42",
    expiresAtMs: 1_800_003_600_000,
    createdAtMs: 1_800_000_000_000,
    origin: "store",
    ...overrides,
  };
}

export function lockStoreContract(name: string, open: () => Promise<LockStore>): void {
  const withStore = (title: string, body: (store: LockStore) => Promise<void>): void => {
    test(`${name}: ${title}`, async () => {
      const store = await open();
      try {
        await body(store);
      } finally {
        await (store as LockStore & { close(): Promise<void> }).close();
      }
    });
  };

  withStore("a created lock lists back as written, by name", async (store) => {
    assert.deepEqual(await store.listLocks(), []);
    await store.createLock(lock({ name: "b" }));
    await store.createLock(
      lock({
        name: "a",
        target: { kubernetes_service_account: "default:tbot", join_token: "example-bot" },
        message: undefined,
        expiresAtMs: undefined,
      }),
    );
    assert.deepEqual(await store.listLocks(), [
      lock({
        name: "a",
        target: { kubernetes_service_account: "default:tbot", join_token: "example-bot" },
        message: undefined,
        expiresAtMs: undefined,
      }),
      lock({ name: "b" }),
    ]);
  });

  withStore("a second lock of one name is refused and changes nothing", async (store) => {
    await store.createLock(lock());
    await assert.rejects(
      store.createLock(lock({ message: "other" })),
      (err) => err instanceof LockExistsError,
    );
    assert.deepEqual(await store.listLocks(), [lock()]);
  });

  withStore("delete removes one lock and says whether it existed", async (store) => {
    await store.createLock(lock({ name: "a" }));
    await store.createLock(lock({ name: "b" }));
    assert.equal(await store.deleteLock("a"), true);
    assert.equal(await store.deleteLock("a"), false);
    assert.deepEqual(
      (await store.listLocks()).map((l) => l.name),
      ["b"],
    );
  });
}
