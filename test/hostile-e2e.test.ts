/**
 * Faults and hostile clients against the real `kube-join serve` process (issue 16): an audit
 * trail on a disk that fills up, a path that cannot be opened at start, refused uploads, slow
 * clients, the connection cap, signals during the drain, and a first start killed mid-way.
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { DEMO_KEY_FILE, signDemoToken } from "../src/commands/demo-token.ts";
import {
  DEFAULT_CONFIG_YAML,
  DEMO_CLUSTER,
  ensureBuilt,
  runCli,
  startService,
} from "./support/service.ts";
import { joinRequestBody, newBotPublicKeys, type BotPublicKeys } from "./support/join-request.ts";

const demoKey = JSON.parse(readFileSync(DEMO_KEY_FILE, "utf8")) as Record<string, unknown>;

function demoJwt(pod = "tbot-hostile"): string {
  return signDemoToken(demoKey, {
    namespace: "default",
    serviceAccount: "tbot",
    ttlSeconds: 600,
    audience: DEMO_CLUSTER,
    podName: pod,
    nowMs: Date.now(),
  });
}

let keys: BotPublicKeys;
before(async () => {
  await ensureBuilt();
  keys = await newBotPublicKeys("bot");
});

const mounts: string[] = [];
after(() => {
  for (const dir of mounts) {
    spawnSync("umount", ["-l", dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A real tmpfs of `size`; undefined without root (the test skips, and fails under CI=true). */
function tmpfs(size: string): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-hostile-mnt-"));
  const result = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  if (result.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    if (process.env["CI"] === "true") {
      throw new Error(`mount -t tmpfs failed (CI=true needs root): ${String(result.stderr)}`);
    }
    return undefined;
  }
  mounts.push(dir);
  return dir;
}

async function join_(
  baseUrl: string,
  pod?: string,
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const response = await fetch(`${baseUrl}/v1/join`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: joinRequestBody({ token: "example-bot", idToken: demoJwt(pod), keys }),
    signal: AbortSignal.timeout(10_000),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

async function metric(diagUrl: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${diagUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("audit on a full disk: joins get audit_unavailable, /readyz fails, both recover", async (t) => {
  const mnt = tmpfs("64k");
  if (mnt === undefined) {
    t.skip("cannot mount a tmpfs (needs root)");
    return;
  }
  const auditFile = join(mnt, "audit.log");
  const svc = await startService({
    configYaml: `${DEFAULT_CONFIG_YAML}audit: {file: ${JSON.stringify(auditFile)}}\n`,
  });
  try {
    assert.equal((await join_(svc.baseUrl)).status, 200);
    writeFileSync(join(mnt, "filler"), Buffer.alloc(0));
    // Fill every remaining block.
    const remaining = 64 * 1024 - readFileSync(auditFile).length - 4096;
    writeFileSync(join(mnt, "filler"), Buffer.alloc(Math.max(0, remaining)));
    let refused: Awaited<ReturnType<typeof join_>> | undefined;
    for (let i = 0; i < 40 && refused === undefined; i += 1) {
      const r = await join_(svc.baseUrl);
      if (r.status !== 200) refused = r;
    }
    assert.ok(refused !== undefined, "the disk never filled");
    assert.equal(refused.status, 503);
    assert.equal((refused.body["error"] as { code: string }).code, "audit_unavailable");
    assert.equal(refused.headers.get("retry-after"), "5");
    assert.equal(refused.body["tls_cert"], undefined);
    assert.equal((await fetch(`${svc.diagUrl}/readyz`)).status, 503);
    assert.equal(await metric(svc.diagUrl, "kube_join_audit_sink_healthy"), 0);
    assert.ok(((await metric(svc.diagUrl, "kube_join_audit_write_failures_total")) ?? 0) >= 1);
    const accepted = readFileSync(auditFile, "utf8");
    assert.ok(accepted.endsWith("\n"), "no half-written line");

    unlinkSync(join(mnt, "filler"));
    await eventually(
      async () => (await fetch(`${svc.diagUrl}/readyz`)).status === 200,
      "/readyz to recover",
    );
    assert.equal((await join_(svc.baseUrl)).status, 200);
    assert.equal(await metric(svc.diagUrl, "kube_join_audit_sink_healthy"), 1);
    const lines = readFileSync(auditFile, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l["event"] === "audit.gap"));
    const messages = svc.logs().map((l) => l["msg"]);
    assert.equal(messages.filter((m) => String(m).startsWith("audit trail cannot")).length, 1);
    assert.equal(messages.filter((m) => m === "audit trail writable again").length, 1);
  } finally {
    assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  }
});

test("an audit path that cannot be opened stops the start; with continue, not ready", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-hostile-"));
  writeFileSync(join(dir, "config.yaml"), `${DEFAULT_CONFIG_YAML}audit: {file: ./missing/a.log}\n`);
  const refused = await runCli(["serve", "--config", join(dir, "config.yaml")]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /audit\.file: cannot be opened for appending \(ENOENT\)/);
  assert.equal(spawnSync("ls", [join(dir, "data")]).status, 2, "no CA was created");

  const svc = await startService({
    configYaml: `${DEFAULT_CONFIG_YAML}audit: {file: ./missing/a.log, on_failure: continue}\n`,
  });
  try {
    assert.equal((await fetch(`${svc.diagUrl}/readyz`)).status, 503);
    assert.ok(svc.logs().some((l) => String(l["msg"]).startsWith("audit.on_failure is continue")));
    assert.equal((await join_(svc.baseUrl)).status, 200, "continue: the join goes on");
    spawnSync("mkdir", [join(svc.dir, "missing")]);
    await eventually(
      async () => (await fetch(`${svc.diagUrl}/readyz`)).status === 200,
      "/readyz once the directory exists",
    );
  } finally {
    assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  }
});
