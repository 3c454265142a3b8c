/**
 * The store end to end with SQLite, the default: real `serve` processes, the real CLI, real
 * openssl and ssh-keygen on the certificates, and the faults the issue names (a write that cannot
 * happen, kill -9 under load, a corrupt file and a newer schema at start).
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { loadSqliteDriver } from "../src/store/sqlite-driver.ts";
import { SqliteStore } from "../src/store/sqlite-store.ts";
import { SCHEMA_VERSION } from "../src/store/schema.ts";
import { ensureBuilt, runCli } from "./support/service.ts";
import {
  configYaml,
  eventually,
  joinAsPod,
  kubeJoin,
  newClusterKey,
  resourcesYaml,
  startStoreService,
} from "./support/store-service.ts";
import { systemTool } from "./support/system-tools.ts";

const openssl = systemTool("openssl", "openssl");
const sshKeygen = systemTool("ssh-keygen", "openssh-client");
const key = newClusterKey();
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

before(() => ensureBuilt());

function auditLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l["event"] === "bot.join");
}

test(
  "a join records its instance; the pod's next join is the next generation, in both certificates, the audit line and the CLI",
  { skip: openssl.skip || sshKeygen.skip },
  async () => {
    const svc = await startStoreService(key, []);
    try {
      const pod = "3b8f0c2e-6a1d-4f57-9c3b-1e2d3f4a5b6c";
      const first = await joinAsPod(svc.baseUrl, key, { uid: pod });
      assert.equal(first.status, 200, JSON.stringify(first.body));
      const id = first.body["bot_instance_id"];
      assert.ok(typeof id === "string" && UUID.test(id), String(id));
      assert.equal(first.body["generation"], 1);
      const second = await joinAsPod(svc.baseUrl, key, { uid: pod });
      assert.equal(second.body["bot_instance_id"], id);
      assert.equal(second.body["generation"], 2);
      const other = await joinAsPod(svc.baseUrl, key);
      assert.notEqual(other.body["bot_instance_id"], id);
      assert.equal(other.body["generation"], 1);

      const dir = mkdtempSync(join(tmpdir(), "kube-join-store-certs-"));
      writeFileSync(join(dir, "tls.crt"), String(second.body["tls_cert"]));
      const text = execFileSync(
        openssl.path,
        ["x509", "-in", join(dir, "tls.crt"), "-noout", "-text"],
        {
          encoding: "utf8",
        },
      );
      assert.match(text, new RegExp(`1\\.3\\.9999\\.2\\.20:\\s*\\n\\s*\\.\\$${id}`));
      assert.match(text, /1\.3\.9999\.1\.14:\s*\n\s*\.\.2/);
      const subject = execFileSync(
        openssl.path,
        [
          "x509",
          "-in",
          join(dir, "tls.crt"),
          "-noout",
          "-subject",
          "-nameopt",
          "oid,sep_multiline",
        ],
        { encoding: "utf8" },
      );
      assert.match(subject, new RegExp(`1\\.3\\.9999\\.2\\.20=${id}`));
      assert.match(subject, /1\.3\.9999\.1\.14=2/);
      writeFileSync(join(dir, "ssh-cert.pub"), String(second.body["ssh_cert"]));
      const ssh = execFileSync(sshKeygen.path, ["-L", "-f", join(dir, "ssh-cert.pub")], {
        encoding: "utf8",
      });
      // ssh-keygen prints values it does not know as the hex of their SSH string.
      const sshString = (text: string) => {
        const length = Buffer.alloc(4);
        length.writeUInt32BE(Buffer.byteLength(text));
        return Buffer.concat([length, Buffer.from(text)]).toString("hex");
      };
      assert.match(
        ssh,
        new RegExp(`bot-instance-id@goteleport.com UNKNOWN OPTION: ${sshString(id)} `),
      );
      assert.match(ssh, new RegExp(`generation UNKNOWN OPTION: ${sshString("2")} `));

      const audit = auditLines(svc.stdout()).filter((l) => l["success"] === true);
      assert.equal(audit.length, 3);
      assert.equal(audit[1]?.["bot_instance_id"], id);
      assert.equal(audit[1]?.["generation"], 2);

      const config = join(svc.dir, "config.yaml");
      const list = await kubeJoin("instances", "list", "--config", config);
      assert.equal(list.code, 0, list.stderr);
      assert.match(
        list.stdout,
        new RegExp(`^example +${id} +tbot-7f9c8d6b5-abcde +default/tbot +node-1 +2 `, "m"),
      );
      const show = await kubeJoin("instances", "show", String(id), "--config", config);
      assert.match(show.stdout, /History \(last 2, newest last\):/);
    } finally {
      await svc.stop();
    }
  },
);

test("a lock made with the CLI refuses the next joins within 5 s on a running serve; deleting it lifts it", async () => {
  const svc = await startStoreService(key, []);
  try {
    const config = join(svc.dir, "config.yaml");
    const pod = "5a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d";
    assert.equal((await joinAsPod(svc.baseUrl, key, { uid: pod })).status, 200);
    const created = await kubeJoin(
      "lock",
      "create",
      "--bot",
      "example",
      "--message",
      "incident 42",
      "--name",
      "e2e-lock",
      "--config",
      config,
    );
    assert.equal(created.code, 0, created.stderr);
    let refused: Awaited<ReturnType<typeof joinAsPod>> | undefined;
    const tookMs = await eventually(
      async () => {
        refused = await joinAsPod(svc.baseUrl, key, { uid: pod });
        return refused.status === 403;
      },
      5_000,
      "the lock refuses a join",
    );
    assert.ok(tookMs <= 5_000);
    const error = refused?.body["error"] as { code: string; message: string };
    assert.equal(error.code, "join_locked");
    assert.match(error.message, /incident 42$/);
    assert.ok(!error.message.includes("bot-example") && !error.message.includes("e2e-lock"));

    const failure = auditLines(svc.stdout()).findLast((l) => l["success"] === false);
    assert.equal(failure?.["code"], "TJ001E");
    assert.equal(failure?.["lock"], "e2e-lock");
    const metrics = await (await fetch(`${svc.diagUrl}/metrics`)).text();
    assert.match(metrics, /^kube_join_locked_joins_total\{target="user"\} [1-9]/m);

    const show = await kubeJoin("instances", "list", "--json", "--config", config);
    const [record] = JSON.parse(show.stdout) as { history: { result: string }[] }[];
    await eventually(
      async () => {
        const again = await kubeJoin("instances", "list", "--json", "--config", config);
        const [r] = JSON.parse(again.stdout) as { history: { result: string }[] }[];
        return r?.history.some((h) => h.result === "join_locked") === true;
      },
      2_000,
      "the refusal in the pod's history",
    );
    assert.ok(record);

    assert.equal((await kubeJoin("lock", "delete", "e2e-lock", "--config", config)).code, 0);
    await eventually(
      async () => (await joinAsPod(svc.baseUrl, key, { uid: pod })).status === 200,
      5_000,
      "joins again after delete",
    );
  } finally {
    await svc.stop();
  }
});

test("kill -9 under load loses no instance whose join was answered 200", async () => {
  const svc = await startStoreService(key, []);
  const answered: string[] = [];
  let stop = false;
  const worker = async (): Promise<void> => {
    while (!stop) {
      try {
        const r = await joinAsPod(svc.baseUrl, key);
        if (r.status === 200) answered.push(String(r.body["bot_instance_id"]));
      } catch {
        return; // the server is gone
      }
    }
  };
  const workers = Array.from({ length: 8 }, () => worker());
  await eventually(() => Promise.resolve(answered.length >= 150), 30_000, "150 joins answered");
  svc.child.kill("SIGKILL");
  await svc.exited();
  stop = true;
  await Promise.all(workers);
  const store = await SqliteStore.open({ path: join(svc.dir, "data", "kube-join.db") });
  try {
    const missing: string[] = [];
    for (const id of answered) if ((await store.get(id)) === undefined) missing.push(id);
    assert.deepEqual(missing, [], `${missing.length} of ${answered.length} answered joins lost`);
  } finally {
    await store.close();
  }
});

test("a write the store cannot take: store_unavailable 503 with Retry-After and no certificate; logged once; recovers by itself", async () => {
  const svc = await startStoreService(key, []);
  try {
    assert.equal((await joinAsPod(svc.baseUrl, key)).status, 200);
    // Another process holds the write lock longer than serve's busy timeout.
    const db = (await loadSqliteDriver()).open(join(svc.dir, "data", "kube-join.db"));
    db.exec("BEGIN EXCLUSIVE");
    try {
      for (let i = 0; i < 2; i++) {
        const r = await joinAsPod(svc.baseUrl, key);
        assert.equal(r.status, 503);
        assert.equal((r.body["error"] as { code: string }).code, "store_unavailable");
        assert.equal(r.body["tls_cert"], undefined);
      }
    } finally {
      db.exec("COMMIT");
      db.close();
    }
    assert.equal((await joinAsPod(svc.baseUrl, key)).status, 200);
    const metrics = await (await fetch(`${svc.diagUrl}/metrics`)).text();
    assert.match(metrics, /^kube_join_store_write_failures_total 2$/m);
    // Each join's wait for its record, by result; a refused one waited out the busy timeout (5 s).
    const wait = (suffix: string, result: string): number =>
      Number(
        new RegExp(
          `^kube_join_store_record_duration_seconds_${suffix}\\{result="${result}"\\} (\\S+)$`,
          "m",
        ).exec(metrics)?.[1],
      );
    assert.equal(wait("count", "success"), 2);
    assert.equal(wait("count", "failure"), 2);
    assert.ok(wait("sum", "failure") > 2 * 4, `failures waited ${wait("sum", "failure")} s in all`);
    const down = svc
      .logs()
      .filter((l) => l["msg"] === "store unavailable: joins are refused until it is back");
    const up = svc.logs().filter((l) => l["msg"] === "store available again");
    assert.equal(down.length, 1);
    assert.equal(up.length, 1);
  } finally {
    await svc.stop();
  }
});

test("the Retry-After of store_unavailable", async () => {
  const svc = await startStoreService(key, []);
  try {
    const db = (await loadSqliteDriver()).open(join(svc.dir, "data", "kube-join.db"));
    db.exec("BEGIN EXCLUSIVE");
    try {
      const { joinRequestBody, newBotPublicKeys } = await import("./support/join-request.ts");
      const { mintServiceAccountToken, serviceAccountClaims } = await import("./support/jwt.ts");
      const jwt = mintServiceAccountToken(
        key,
        serviceAccountClaims({ audience: "store.example.com", issuedAtMs: Date.now() }),
      );
      const response = await fetch(`${svc.baseUrl}/v1/join`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: joinRequestBody({
          token: "example-bot",
          idToken: jwt,
          keys: await newBotPublicKeys(),
        }),
      });
      assert.equal(response.status, 503);
      assert.equal(response.headers.get("retry-after"), "5");
    } finally {
      db.exec("COMMIT");
      db.close();
    }
  } finally {
    await svc.stop();
  }
});

test("a corrupt store file or a newer schema stops serve at start with one clear line, no stack", async () => {
  for (const [name, prepare, message] of [
    [
      "corrupt",
      (path: string) => writeFileSync(path, "not a database\n".repeat(200)),
      /is not a SQLite database or is corrupt/,
    ],
    [
      "newer",
      async (path: string) => {
        await (await SqliteStore.open({ path })).close();
        const db = (await loadSqliteDriver()).open(path);
        db.prepare("INSERT INTO schema_version (version, applied_at_ms) VALUES (?, 0)").run(
          SCHEMA_VERSION + 1,
        );
        db.close();
      },
      /schema version \d+, newer than this kube-join's/,
    ],
  ] as const) {
    const dir = mkdtempSync(join(tmpdir(), `kube-join-store-${name}-`));
    mkdirSync(join(dir, "data"), { mode: 0o700 });
    writeFileSync(join(dir, "resources.yaml"), resourcesYaml(key));
    writeFileSync(join(dir, "config.yaml"), configYaml([]));
    await prepare(join(dir, "data", "kube-join.db"));
    const result = await runCli(["serve", "--config", join(dir, "config.yaml")]);
    assert.equal(result.code, 1, name);
    assert.match(result.stderr, message);
    assert.doesNotMatch(result.stderr, /\n\s+at /, "no stack trace");
  }
});
