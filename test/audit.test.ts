import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { strict as assert } from "node:assert";
import { after, test } from "node:test";
import { REDACTED_TOKEN_NAME, createAuditLog, toAuditEvent } from "../src/audit/audit.ts";
import type { AuditErrorLogger } from "../src/audit/audit.ts";
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
      const audit = createAuditLog({ stream });
      audit.onJoin(c.attempt);
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

function capturingLogger(): AuditErrorLogger & { messages: string[] } {
  const messages: string[] = [];
  return {
    messages,
    error(details, message) {
      messages.push(`${message}: ${details.err.message}`);
    },
  };
}

test("an audit file is appended to, one line per attempt, and created with mode 0600", async () => {
  const file = join(tmp, "audit-new.log");
  const first = createAuditLog({ file });
  first.onJoin(SUCCESS);
  first.onJoin(FAILURE);
  await first.close();
  assert.equal(statSync(file).mode & 0o777, 0o600);

  const second = createAuditLog({ file });
  second.onJoin(SUCCESS);
  await second.close();
  second.onJoin(FAILURE); // after close: dropped, no throw

  const lines = readFileSync(file, "utf8").trimEnd().split("\n");
  assert.deepEqual(
    lines.map((l) => (JSON.parse(l) as { code: string }).code),
    ["TJ001I", "TJ001E", "TJ001I"],
  );
});

test("an existing audit file keeps its content", async () => {
  const file = join(tmp, "audit-existing.log");
  writeFileSync(file, '{"earlier":"line"}\n', { mode: 0o600 });
  const audit = createAuditLog({ file });
  audit.onJoin(FAILURE);
  await audit.close();
  const lines = readFileSync(file, "utf8").trimEnd().split("\n");
  assert.equal(lines.length, 2);
  assert.equal(lines[0], '{"earlier":"line"}');
});

test("a failing audit file is logged once and never throws into the join", async () => {
  const logger = capturingLogger();
  const audit = createAuditLog({ file: join(tmp, "no-such-dir", "audit.log"), logger });
  for (let i = 0; i < 5; i += 1) audit.onJoin(SUCCESS);
  await audit.close(); // resolves once the failed stream has closed
  assert.equal(logger.messages.length, 1);
  assert.match(logger.messages[0] ?? "", /^audit file write failed; audit lines are lost: ENOENT/);
});

test("a failing audit stream is logged once and never throws into the join", async () => {
  const logger = capturingLogger();
  const stream = new PassThrough();
  const audit = createAuditLog({ stream, logger });
  stream.destroy(new Error("EPIPE: reader went away"));
  await new Promise((resolve) => setImmediate(resolve));
  audit.onJoin(SUCCESS);
  audit.onJoin(FAILURE);
  await new Promise((resolve) => setImmediate(resolve));
  await audit.close();
  assert.deepEqual(logger.messages, [
    "audit stream failed; audit lines are being lost: EPIPE: reader went away",
  ]);
});
