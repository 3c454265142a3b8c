/**
 * The join pipeline with bot instances and locks, in process: what is recorded and when, what a
 * lock refuses, and that a store failure issues nothing.
 */
import { strict as assert } from "node:assert";
import { X509Certificate, generateKeyPairSync } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { loadOrCreateAuthority, type CertificateAuthority } from "../src/ca/authority.ts";
import { ed25519AuthorizedKey } from "../src/ca/ssh.ts";
import { JoinError } from "../src/errors.ts";
import type { InstanceJoin } from "../src/join/bot-instance-store.ts";
import type { JoinAttempt } from "../src/join/events.ts";
import { InstanceLedger } from "../src/join/instance-ledger.ts";
import { JoinService, type JoinRequest } from "../src/join/join.ts";
import { LockWatcher } from "../src/join/lock-watcher.ts";
import { exampleResources } from "./support/example-resources.ts";
import type { ResourceSet } from "../src/resources/types.ts";
import { MemoryStore } from "../src/store/memory-store.ts";
import {
  TEST_AUDIENCE,
  TEST_NOW_MS,
  generateClusterKey,
  mintServiceAccountToken,
  serviceAccountClaims,
  type ClusterKey,
} from "./support/jwt.ts";

let key: ClusterKey;
let authority: CertificateAuthority;
let resources: ResourceSet;
const tlsPublicKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
  type: "spki",
  format: "pem",
}) as string;
const sshPublicKey = ed25519AuthorizedKey(generateKeyPairSync("ed25519").publicKey, "bot");
const POD = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";

before(async () => {
  key = generateClusterKey("ES256");
  authority = await loadOrCreateAuthority(
    { clusterName: TEST_AUDIENCE, dataDir: mkdtempSync(join(tmpdir(), "kube-join-ji-")) },
    TEST_NOW_MS,
  );
  resources = exampleResources(key.jwks, { file: "r.yaml" });
});

function setup(store = new MemoryStore()) {
  const watcher = new LockWatcher({ store });
  const ledger = new InstanceLedger({ store, locks: watcher });
  const events: JoinAttempt[] = [];
  const service = new JoinService({
    clusterName: TEST_AUDIENCE,
    certs: { defaultTtlMs: 3_600_000, maxTtlMs: 86_400_000 },
    snapshot: () => ({ resources, authority }),
    now: () => TEST_NOW_MS,
    listeners: [(e) => events.push(e)],
    instances: () => ledger,
  });
  return { store, watcher, service, events };
}

function request(podUid = POD, jti?: string): JoinRequest {
  return {
    tokenName: "example-bot",
    role: "Bot",
    idToken: mintServiceAccountToken(key, {
      ...serviceAccountClaims({ podUid, nodeName: "node-7" }),
      ...(jti === undefined ? {} : { jti }),
    }),
    publicTlsKey: tlsPublicKey,
    publicSshKey: sshPublicKey,
    expiresAtMs: undefined,
    remoteAddr: "10.1.2.3",
  };
}

test("the instance is recorded with the certificates' serials and expiry, before they are returned", async () => {
  const { store, service, events } = setup();
  const result = await service.join(request(POD, "jti-a"));
  assert.ok(result.botInstance);
  assert.equal(result.botInstance.generation, 1);
  const record = await store.get(result.botInstance.id);
  assert.ok(record);
  assert.equal(record.tlsSerial, result.tlsSerial);
  assert.equal(record.sshSerial, result.sshSerial);
  assert.equal(record.expiresAtMs, result.expires.getTime());
  assert.deepEqual(
    {
      bot: record.botName,
      token: record.tokenName,
      method: record.joinMethod,
      type: record.joinType,
      ns: record.namespace,
      sa: record.serviceAccount,
      pod: record.podUid,
      node: record.nodeName,
      history: record.history,
    },
    {
      bot: "example",
      token: "example-bot",
      method: "kubernetes",
      type: "static_jwks",
      ns: "default",
      sa: "tbot",
      pod: POD,
      node: "node-7",
      history: [{ atMs: TEST_NOW_MS, remoteAddress: "10.1.2.3", jti: "jti-a", result: "ok" }],
    },
  );
  const cert = new X509Certificate(result.tlsCert);
  assert.equal(cert.serialNumber.toLowerCase(), result.tlsSerial);
  assert.match(cert.subject, new RegExp(`1\\.3\\.9999\\.2\\.20=${result.botInstance.id}`));
  assert.match(cert.subject, /1\.3\.9999\.1\.14=1/);
  const again = await service.join(request());
  assert.deepEqual(again.botInstance, { id: result.botInstance.id, generation: 2 });
  const ok = events.filter((e) => e.outcome.ok);
  assert.deepEqual(
    ok.map((e) => (e.outcome.ok ? [e.outcome.botInstanceId, e.outcome.generation] : [])),
    [
      [result.botInstance.id, 1],
      [result.botInstance.id, 2],
    ],
  );
});

test("a lock refuses with join_locked before anything is recorded, and the refusal joins the history", async () => {
  const { store, watcher, service, events } = setup();
  const first = await service.join(request());
  await store.createLock({
    name: "sa-lock",
    target: { kubernetes_service_account: "default:tbot" },
    message: "rotate your keys",
    expiresAtMs: undefined,
    createdAtMs: 1,
    origin: "store",
  });
  await watcher.poll();
  await assert.rejects(
    service.join(request()),
    (err: unknown) =>
      err instanceof JoinError &&
      err.code === "join_locked" &&
      err.message.endsWith(": rotate your keys") &&
      !err.message.includes("default:tbot"),
  );
  const failure = events.at(-1)?.outcome;
  assert.ok(failure !== undefined && !failure.ok);
  assert.deepEqual(failure.lock, { name: "sa-lock", targetField: "kubernetes_service_account" });
  await new Promise((r) => setImmediate(r));
  const record = await store.get(first.botInstance?.id ?? "");
  assert.equal(record?.generation, 1, "no new generation for a refused join");
  assert.equal(record?.history.at(-1)?.result, "join_locked");
  // A pod never seen is refused too, and leaves no instance behind.
  await assert.rejects(service.join(request("new-pod")), /a lock in force/);
  assert.equal((await store.list()).length, 1);
});

test("YAML locks from the resources apply like stored ones, and an expired lock does not", async () => {
  const { watcher, service } = setup();
  watcher.setResourceLocks([
    {
      name: "old",
      target: { user: "bot-example" },
      message: undefined,
      expiresAtMs: TEST_NOW_MS,
      createdAtMs: undefined,
      origin: "r.yaml:1",
    },
  ]);
  await service.join(request());
  watcher.setResourceLocks([
    {
      name: "yaml",
      target: { join_token: "example-bot" },
      message: undefined,
      expiresAtMs: undefined,
      createdAtMs: undefined,
      origin: "r.yaml:1",
    },
  ]);
  await assert.rejects(
    service.join(request()),
    (err: unknown) => err instanceof JoinError && err.code === "join_locked",
  );
});

test("a record that cannot be written: store_unavailable, no certificate, and the next join works", async () => {
  const store = new MemoryStore();
  let down = true;
  const flaky = Object.assign(Object.create(store) as MemoryStore, {
    recordJoin: (j: InstanceJoin) =>
      down ? Promise.reject(new Error("SQLITE_IOERR")) : store.recordJoin(j),
  });
  const { service, events } = setup(flaky);
  await assert.rejects(
    service.join(request()),
    (err: unknown) =>
      err instanceof JoinError &&
      err.code === "store_unavailable" &&
      !err.message.includes("SQLITE"),
  );
  const outcome = events.at(-1)?.outcome;
  assert.ok(outcome !== undefined && !outcome.ok && outcome.code === "store_unavailable");
  down = false;
  assert.equal((await service.join(request())).botInstance?.generation, 1);
});
