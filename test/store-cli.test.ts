import { strict as assert } from "node:assert";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { main } from "../src/cli.ts";
import { SqliteStore } from "../src/store/sqlite-store.ts";
import { join as instanceJoin } from "./support/bot-instance-store-contract.ts";

const RESOURCES = new URL("../fixtures/demo/resources", import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), "kube-join-store-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));

function config(name: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `cluster_name: example.teleport.sh\nresources:\n  - ${RESOURCES}\ndata_dir: ./${name}-data\n`,
  );
  return file;
}

/** Runs `kube-join ARGS...` in-process, capturing what it prints. */
async function kubeJoin(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...parts: unknown[]) => void out.push(parts.join(" "));
  console.error = (...parts: unknown[]) => void err.push(parts.join(" "));
  try {
    const code = await main(args);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

test("instances list before serve ever ran says there is no store yet, exit 1", async () => {
  const file = config("empty");
  const result = await kubeJoin("instances", "list", "--config", file);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^kube-join instances list: no SQLite store at .*kube-join\.db yet/);
});

test("instances list and show read what serve recorded", async () => {
  const file = config("joined");
  const { mkdirSync } = await import("node:fs");
  mkdirSync(join(dir, "joined-data"));
  const store = await SqliteStore.open({ path: join(dir, "joined-data", "kube-join.db") });
  await store.recordJoin(instanceJoin());
  const record = await store.recordJoin(
    instanceJoin({ atMs: 1_800_000_060_000, jti: "jti-2", remoteAddress: "10.1.2.3" }),
  );
  await store.recordJoin(
    instanceJoin({ botName: "other", podUid: "u2", nodeName: undefined, atMs: 1_800_000_120_000 }),
  );
  await store.close();

  const list = await kubeJoin("instances", "list", "--config", file, "--bot", "example");
  assert.equal(list.code, 0, list.stderr);
  const lines = list.stdout.split("\n");
  assert.match(
    lines[0] ?? "",
    /^BOT +INSTANCE ID +POD +NAMESPACE\/SERVICE ACCOUNT +NODE +GEN +LAST JOIN +EXPIRES$/,
  );
  assert.equal(lines.length, 2);
  assert.match(
    lines[1] ?? "",
    new RegExp(
      `^example +${record.botInstanceId} +tbot-5d8f7c9b6-x2x7q +default/tbot +node-1 +2 +2027-01-15T08:01:00Z +2027-01-15T09:00:00Z$`,
    ),
  );

  const json = await kubeJoin("instances", "list", "--json", "--config", file);
  const parsed = JSON.parse(json.stdout) as { bot_name: string; node_name: string | null }[];
  assert.deepEqual(
    parsed.map((r) => [r.bot_name, r.node_name]),
    [
      ["example", "node-1"],
      ["other", null],
    ],
  );
  assert.ok(!json.stdout.includes("eyJ"), "no JWT in the output");

  const show = await kubeJoin("instances", "show", record.botInstanceId, "--config", file);
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /^Generation: +2$/m);
  assert.match(show.stdout, /History \(last 2, newest last\):/);
  assert.match(show.stdout, /2027-01-15T08:01:00Z +10\.1\.2\.3 +jti-2 +ok/);

  const missing = await kubeJoin("instances", "show", "nope", "--config", file);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no instance "nope" in the store/);
});

test("lock create, list and delete write the store; bad targets are usage errors", async () => {
  const file = config("locks");
  const { mkdirSync } = await import("node:fs");
  mkdirSync(join(dir, "locks-data"));
  await (await SqliteStore.open({ path: join(dir, "locks-data", "kube-join.db") })).close();

  const created = await kubeJoin(
    "lock",
    "create",
    "--bot",
    "example",
    "--message",
    "incident 42",
    "--ttl",
    "1h",
    "--name",
    "stop-example",
    "--config",
    file,
  );
  assert.equal(created.code, 0, created.stderr);
  assert.match(
    created.stdout,
    /^Created lock stop-example on user=bot-example, until \S+Z \(1h\)\./,
  );
  assert.match(created.stdout, /certificates already issued stay valid until they expire/);

  const again = await kubeJoin(
    "lock",
    "create",
    "--token",
    "t",
    "--name",
    "stop-example",
    "--config",
    file,
  );
  assert.equal(again.code, 1);
  assert.match(again.stderr, /a lock named "stop-example" already exists/);

  const sa = await kubeJoin(
    "lock",
    "create",
    "--service-account",
    "default:tbot",
    "--namespace",
    "default",
    "--config",
    file,
  );
  assert.equal(sa.code, 0, sa.stderr);

  const list = await kubeJoin("lock", "list", "--config", file);
  assert.match(list.stdout, /^stop-example +user=bot-example +in force +\S+Z +incident 42$/m);
  assert.match(
    list.stdout,
    /kubernetes_service_account=default:tbot,kubernetes_namespace=default +in force +never/,
  );
  const json = JSON.parse((await kubeJoin("lock", "list", "--json", "--config", file)).stdout) as {
    kind: string;
    metadata: { name: string };
    spec: { target: Record<string, string>; message?: string };
  }[];
  const stop = json.find((l) => l.metadata.name === "stop-example");
  assert.deepEqual(stop?.spec.target, { user: "bot-example" });
  assert.equal(stop?.kind, "lock");

  for (const [args, message] of [
    [[], /a lock needs a target/],
    [["--service-account", "tbot"], /is not NAMESPACE:NAME/],
    [["--namespace", "Not_A_Namespace"], /is not a namespace name/],
    [["--bot", "example", "--ttl", "forever"], /--ttl: /],
    [["--bot"], /--bot needs a value/],
    [["--pod", "x"], /unknown option "--pod"/],
  ] as const) {
    const bad = await kubeJoin("lock", "create", ...args, "--config", file);
    assert.equal(bad.code, 2, args.join(" "));
    assert.match(bad.stderr, message);
  }

  assert.equal((await kubeJoin("lock", "delete", "stop-example", "--config", file)).code, 0);
  const gone = await kubeJoin("lock", "delete", "stop-example", "--config", file);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /no lock "stop-example"/);
});
