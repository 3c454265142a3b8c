import { spawnSync } from "node:child_process";
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { strict as assert } from "node:assert";
import { after, test } from "node:test";
import {
  REDACTED_TOKEN_NAME,
  nodeAuditFileSystem,
  openAuditTrail,
  toAuditEvent,
  type AuditFileSystem,
  type AuditLogger,
  type AuditTrailOptions,
} from "../src/audit/audit.ts";
import { ConfigError, JoinError } from "../src/errors.ts";
import type { JoinAttempt } from "../src/join/events.ts";
import { renderKubernetesAttributes } from "../src/methods/kubernetes/join-attributes.ts";

const NOW = new Date("2026-01-02T03:04:05.678Z");
const EXPIRES = new Date("2026-01-02T04:04:05.000Z");

const tmp = mkdtempSync(join(tmpdir(), "kube-join-audit-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const SUCCESS: JoinAttempt = {
  time: NOW,
  remoteAddr: "10.0.0.7",
  tokenName: "example-bot",
  botName: "example",
  joinMethod: "kubernetes",
  attrs: renderKubernetesAttributes({
    namespace: "default",
    serviceAccount: "tbot",
    pod: "tbot-5d9c7-abcde",
  }),
  cache: "miss",
  durationSeconds: 0.003,
  outcome: { ok: true, tlsSerial: "5f3c9a", sshSerial: "1234567890", expires: EXPIRES },
};

const FAILURE: JoinAttempt = {
  ...SUCCESS,
  botName: undefined,
  attrs: undefined,
  cache: undefined,
  outcome: {
    ok: false,
    code: "jwt_audience_mismatch",
    message: 'expected audience "example.teleport.sh", the token carries ["kubernetes"]',
  },
};

/** A syntactically JWT-shaped string (header `{"alg":"ES256"}`), built here, never a real one. */
const JWT_LIKE = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";

test("audit lines carry exactly the documented fields", async (t) => {
  const cases: { name: string; attempt: JoinAttempt; line: unknown }[] = [
    {
      name: "success: TJ001I with serials and expiry, no error",
      attempt: SUCCESS,
      line: {
        event: "bot.join",
        code: "TJ001I",
        time: "2026-01-02T03:04:05.678Z",
        success: true,
        token: "example-bot",
        bot_name: "example",
        join_method: "kubernetes",
        join_attrs: { namespace: "default", service_account: "tbot", pod: "tbot-5d9c7-abcde" },
        remote_addr: "10.0.0.7",
        tls_serial: "5f3c9a",
        ssh_serial: "1234567890",
        expires: "2026-01-02T04:04:05.000Z",
      },
    },
    {
      name: "failure before verification: TJ001E with the error, null attributes",
      attempt: FAILURE,
      line: {
        event: "bot.join",
        code: "TJ001E",
        time: "2026-01-02T03:04:05.678Z",
        success: false,
        token: "example-bot",
        bot_name: null,
        join_method: "kubernetes",
        join_attrs: null,
        remote_addr: "10.0.0.7",
        error: {
          code: "jwt_audience_mismatch",
          message: 'expected audience "example.teleport.sh", the token carries ["kubernetes"]',
        },
      },
    },
    {
      name: "no token name in the request",
      attempt: { ...FAILURE, tokenName: undefined },
      line: { ...toAuditEvent(FAILURE), token: null },
    },
    {
      name: "a JWT pasted into the token field is redacted",
      attempt: { ...FAILURE, tokenName: JWT_LIKE },
      line: { ...toAuditEvent(FAILURE), token: REDACTED_TOKEN_NAME },
    },
    {
      name: "a huge token name is cut to 256 characters",
      attempt: { ...FAILURE, tokenName: "x".repeat(5000) },
      line: { ...toAuditEvent(FAILURE), token: `${"x".repeat(256)}...` },
    },
    {
      name: "fields outside the allow-list never reach the line",
      attempt: { ...SUCCESS, idToken: JWT_LIKE, publicTlsKey: "-----BEGIN" } as JoinAttempt,
      line: toAuditEvent(SUCCESS),
    },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const stream = new PassThrough();
      const chunks: string[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk.toString("utf8")));
      const audit = await openAuditTrail({ stream });
      await audit.record(c.attempt);
      await audit.close();
      const text = chunks.join("");
      assert.ok(text.endsWith("\n"));
      const lines = text.trimEnd().split("\n");
      assert.equal(lines.length, 1);
      assert.deepEqual(JSON.parse(lines[0] ?? ""), c.line);
      assert.ok(!text.includes(JWT_LIKE), "the JWT reached the audit line");
      assert.ok(!text.includes("BEGIN"), "key material reached the audit line");
    });
  }
});

/** Records the sink's log lines, health changes and failure counts. */
function observer(): {
  logger: AuditLogger;
  logs: string[];
  health: boolean[];
  failures: number[];
  options: Pick<AuditTrailOptions, "logger" | "onHealthChange" | "onWriteFailures">;
} {
  const logs: string[] = [];
  const health: boolean[] = [];
  const failures: number[] = [];
  const logger: AuditLogger = {
    error: (d, m) => logs.push(`error: ${m}: ${(d.err as NodeJS.ErrnoException).code ?? ""}`),
    warn: (_d, m) => logs.push(`warn: ${m}`),
    info: (_d, m) => logs.push(`info: ${m}`),
  };
  return {
    logger,
    logs,
    health,
    failures,
    options: {
      logger,
      onHealthChange: (h) => health.push(h),
      onWriteFailures: (n) => failures.push(n),
    },
  };
}

/** Every line of the file parses as JSON: no half-written line is left. */
function wholeLines(file: string): Array<Record<string, unknown>> {
  const text = readFileSync(file, "utf8");
  assert.ok(text === "" || text.endsWith("\n"), `the file ends mid-line: ${text.slice(-80)}`);
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function refusal(promise: Promise<unknown>): Promise<JoinError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof JoinError, `expected a JoinError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected the record to be refused");
}

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("an audit file is appended to, one line per attempt, and created with mode 0600", async () => {
  const file = join(tmp, "audit-new.log");
  const first = await openAuditTrail({ file });
  await first.record(SUCCESS);
  await first.record(FAILURE);
  await first.close();
  assert.equal(statSync(file).mode & 0o777, 0o600);

  const second = await openAuditTrail({ file });
  await second.record(SUCCESS);
  await second.close();
  await second.record(FAILURE); // after close: dropped, no throw

  assert.deepEqual(
    wholeLines(file).map((l) => l["code"]),
    ["TJ001I", "TJ001E", "TJ001I"],
  );
});

test("an existing audit file keeps its content", async () => {
  const file = join(tmp, "audit-existing.log");
  writeFileSync(file, '{"earlier":"line"}\n', { mode: 0o600 });
  const audit = await openAuditTrail({ file });
  await audit.record(FAILURE);
  await audit.close();
  const lines = readFileSync(file, "utf8").trimEnd().split("\n");
  assert.equal(lines.length, 2);
  assert.equal(lines[0], '{"earlier":"line"}');
});

test("group commit: lines of concurrent joins go out in one write, each promise after it", async () => {
  const file = join(tmp, "audit-batch.log");
  const writes: number[] = [];
  const counting: AuditFileSystem = {
    ...nodeAuditFileSystem,
    write: async (fd, buffer, offset, length) => {
      writes.push(buffer.toString("utf8", offset, offset + length).split("\n").length - 1);
      return nodeAuditFileSystem.write(fd, buffer, offset, length);
    },
  };
  const audit = await openAuditTrail({ file, fileSystem: counting });
  const settledAt: number[] = [];
  const records = Array.from({ length: 50 }, () =>
    audit.record(SUCCESS).then(() => settledAt.push(wholeLines(file).length)),
  );
  await Promise.all(records);
  await audit.close();
  assert.equal(wholeLines(file).length, 50);
  assert.equal(
    writes.reduce((a, b) => a + b, 0),
    50,
  );
  assert.ok(writes.length <= 2, `50 concurrent lines took ${writes.length} writes`);
  // Each promise resolved only once its own line was in the file.
  settledAt.forEach((linesInFile, i) => assert.ok(linesInFile >= i + 1));
});

/** An injected file system whose writes fail with `code` once `failing` is set. */
function faultyFs(code: string, shortWriteFirst: boolean): AuditFileSystem & { failing: boolean } {
  const fsys = {
    failing: false,
    ...nodeAuditFileSystem,
    write: async (fd: number, buffer: Buffer, offset: number, length: number) => {
      if (!fsys.failing) return nodeAuditFileSystem.write(fd, buffer, offset, length);
      if (shortWriteFirst && length > 10) {
        // What a nearly full disk does: part of the buffer, then an error on the rest.
        shortWriteFirst = false;
        return nodeAuditFileSystem.write(fd, buffer, offset, Math.floor(length / 2));
      }
      throw Object.assign(new Error(`${code}: injected`), { code });
    },
  };
  return fsys;
}

test("EIO with a short write first: refused, the half line truncated away, recovered with a gap line", async () => {
  const file = join(tmp, "audit-eio.log");
  const fsys = faultyFs("EIO", true);
  const o = observer();
  const audit = await openAuditTrail({ file, fileSystem: fsys, retryIntervalMs: 20, ...o.options });
  await audit.record(SUCCESS);
  fsys.failing = true;
  const err = await refusal(audit.record(SUCCESS));
  assert.equal(err.code, "audit_unavailable");
  await refusal(audit.record(FAILURE));
  assert.equal(audit.healthy, false);
  assert.deepEqual(wholeLines(file).length, 1, "the half-written line was cut");
  fsys.failing = false;
  await until(() => audit.healthy, "recovery");
  await audit.record(SUCCESS);
  await audit.close();
  const lines = wholeLines(file);
  assert.deepEqual(
    lines.map((l) => l["event"]),
    ["bot.join", "audit.gap", "bot.join"],
  );
  assert.equal(lines[1]?.["lost_lines"], 2);
  assert.deepEqual(o.health, [false, true]);
  assert.deepEqual(o.failures, [1, 1]);
  assert.equal(o.logs.filter((l) => l.startsWith("error:")).length, 1, o.logs.join("\n"));
  assert.equal(o.logs.filter((l) => l.startsWith("info:")).length, 1, o.logs.join("\n"));
});

test("on_failure continue: the line is lost, the join is not refused, the sink is unhealthy", async () => {
  const file = join(tmp, "audit-continue.log");
  const fsys = faultyFs("ENOSPC", false);
  const o = observer();
  const audit = await openAuditTrail({
    file,
    fileSystem: fsys,
    onFailure: "continue",
    retryIntervalMs: 20,
    ...o.options,
  });
  fsys.failing = true;
  await audit.record(SUCCESS); // resolves
  assert.equal(audit.healthy, false);
  assert.match(o.logs[0] ?? "", /lines are lost \(on_failure: continue\): ENOSPC/);
  fsys.failing = false;
  await until(() => audit.healthy, "recovery");
  await audit.close();
  assert.deepEqual(
    wholeLines(file).map((l) => [l["event"], l["on_failure"]]),
    [["audit.gap", "continue"]],
  );
});

test("stdout closed (a stream that fails): joins are refused, logged once", async () => {
  const o = observer();
  // /dev/full answers every write with ENOSPC: a real stream that cannot take a line.
  const stream = createWriteStream("/dev/full");
  const audit = await openAuditTrail({ stream, retryIntervalMs: 20, ...o.options });
  assert.equal((await refusal(audit.record(SUCCESS))).code, "audit_unavailable");
  assert.equal((await refusal(audit.record(SUCCESS))).code, "audit_unavailable");
  assert.equal(audit.healthy, false);
  await audit.close();
  stream.destroy();
  assert.equal(o.logs.length, 1, o.logs.join("\n"));
  assert.match(o.logs[0] ?? "", /joins are refused \(audit_unavailable\)/);
});

test("a removed audit file is noticed and reopened; a removed directory fails until restored", async () => {
  const dir = join(tmp, "rotate");
  mkdirSync(dir);
  const file = join(dir, "audit.log");
  const o = observer();
  const audit = await openAuditTrail({
    file,
    retryIntervalMs: 20,
    fileCheckIntervalMs: 60_000,
    ...o.options,
  });
  await audit.record(SUCCESS);

  // logrotate without copytruncate: rename, then the service must write to a new file.
  renameSync(file, `${file}.1`);
  await audit.checkFile();
  await audit.record(FAILURE);
  assert.deepEqual(
    wholeLines(`${file}.1`).map((l) => l["code"]),
    ["TJ001I"],
  );
  assert.deepEqual(
    wholeLines(file).map((l) => l["code"]),
    ["TJ001E"],
  );

  // An operator's rm.
  unlinkSync(file);
  await audit.checkFile();
  await audit.record(SUCCESS);
  assert.deepEqual(
    wholeLines(file).map((l) => l["code"]),
    ["TJ001I"],
  );
  assert.equal(audit.healthy, true);

  // The whole directory goes: nothing can be opened, so joins are refused.
  rmSync(dir, { recursive: true });
  await audit.checkFile();
  assert.equal(audit.healthy, false);
  assert.equal((await refusal(audit.record(SUCCESS))).code, "audit_unavailable");

  mkdirSync(dir);
  await until(() => audit.healthy, "the directory to come back");
  await audit.record(SUCCESS);
  await audit.close();
  assert.deepEqual(
    wholeLines(file).map((l) => l["event"]),
    ["audit.gap", "bot.join"],
  );
  assert.deepEqual(o.health, [false, true]);
});

test("the file is checked against its path every few seconds without a SIGHUP", async () => {
  const file = join(tmp, "audit-timer.log");
  const audit = await openAuditTrail({ file, fileCheckIntervalMs: 30 });
  await audit.record(SUCCESS);
  unlinkSync(file);
  await until(() => {
    try {
      statSync(file);
      return true;
    } catch {
      return false;
    }
  }, "the file to be recreated");
  await audit.record(FAILURE);
  await audit.close();
  assert.deepEqual(
    wholeLines(file).map((l) => l["code"]),
    ["TJ001E"],
  );
});

test("an audit path that cannot be opened stops the start, or with continue starts unhealthy", async () => {
  const missingDir = join(tmp, "later");
  const file = join(missingDir, "audit.log");
  await assert.rejects(openAuditTrail({ file }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(
      err.message,
      /audit\.file: cannot be opened for appending \(ENOENT\).*audit\.on_failure: continue/,
    );
    return true;
  });
  const notADir = join(tmp, "plain-file");
  writeFileSync(notADir, "");
  await assert.rejects(openAuditTrail({ file: join(notADir, "audit.log") }), /ENOTDIR/);

  const o = observer();
  const audit = await openAuditTrail({
    file,
    onFailure: "continue",
    retryIntervalMs: 20,
    ...o.options,
  });
  assert.equal(audit.healthy, false);
  await audit.record(SUCCESS); // lost, not refused
  mkdirSync(missingDir);
  await until(() => audit.healthy, "the directory to appear");
  await audit.close();
  assert.deepEqual(
    wholeLines(file).map((l) => [l["event"], l["lost_lines"]]),
    [["audit.gap", 1]],
  );
});

/**
 * A real tmpfs, as a full or read-only disk. Mounting needs root (CAP_SYS_ADMIN); without it the
 * test skips (the injected EIO/ENOSPC tests above cover the logic) and fails under CI=true.
 */
function mountTmpfs(options: string): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-audit-mnt-"));
  const result = spawnSync("mount", ["-t", "tmpfs", "-o", options, "tmpfs", dir]);
  if (result.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    if (process.env["CI"] === "true") {
      throw new Error(`mount -t tmpfs failed (CI=true needs root): ${String(result.stderr)}`);
    }
    return undefined;
  }
  return dir;
}

function unmount(dir: string): void {
  spawnSync("umount", ["-l", dir]);
  rmSync(dir, { recursive: true, force: true });
}

test("a real full disk (64 KiB tmpfs): refused, whole lines only, recovers once space is freed", async (t) => {
  const mnt = mountTmpfs("size=64k");
  if (mnt === undefined) {
    t.skip("cannot mount a tmpfs (needs root); the injected-fault tests cover the logic");
    return;
  }
  try {
    const file = join(mnt, "audit.log");
    const filler = join(mnt, "filler");
    const o = observer();
    const audit = await openAuditTrail({ file, retryIntervalMs: 20, ...o.options });
    // Leave less room than a few lines, so one write ends short and the next fails.
    writeFileSync(filler, Buffer.alloc(64 * 1024 - 4096 - 300));
    let accepted = 0;
    let refused = 0;
    for (let i = 0; i < 60; i += 1) {
      const results = await Promise.allSettled([audit.record(SUCCESS), audit.record(FAILURE)]);
      for (const r of results) {
        if (r.status === "fulfilled") accepted += 1;
        else {
          assert.equal((r.reason as JoinError).code, "audit_unavailable");
          refused += 1;
        }
      }
    }
    assert.ok(refused > 0, "the disk never filled up");
    assert.equal(audit.healthy, false);
    // The file is read only once the sink is closed: while the disk is full, the sink's own retry
    // (every 20 ms here) may be between a short write and the truncation that takes it back, and
    // a read at that moment saw the half line (about one run in fifteen).

    unlinkSync(filler);
    await until(() => audit.healthy, "recovery after space was freed");
    await audit.record(SUCCESS);
    await audit.close();
    const lines = wholeLines(file);
    // Every accepted line and only those, then the gap and the line after recovery.
    assert.equal(lines.length, accepted + 2);
    assert.equal(lines.at(-2)?.["event"], "audit.gap");
    assert.equal(lines.at(-2)?.["lost_lines"], refused);
    assert.deepEqual(o.health, [false, true]);
    assert.equal(o.logs.length, 2, o.logs.join("\n"));
  } finally {
    unmount(mnt);
  }
});

test("a read-only file system at start stops the start with the error named", async (t) => {
  const mnt = mountTmpfs("size=64k,ro");
  if (mnt === undefined) {
    t.skip("cannot mount a tmpfs (needs root)");
    return;
  }
  try {
    await assert.rejects(openAuditTrail({ file: join(mnt, "audit.log") }), /\(EROFS\)/);
  } finally {
    unmount(mnt);
  }
});
