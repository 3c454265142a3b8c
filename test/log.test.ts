import { strict as assert } from "node:assert";
import { mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createLogger } from "../src/log.ts";

function logTo(level = "info"): {
  log: ReturnType<typeof createLogger>;
  lines: () => Array<Record<string, unknown>>;
} {
  const file = join(mkdtempSync(join(tmpdir(), "kube-join-log-")), "log.jsonl");
  const fd = openSync(file, "a");
  const log = createLogger({ level, fd });
  return {
    log,
    lines: () => {
      log.flush();
      return readFileSync(file, "utf8")
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    },
  };
}

test("log lines are JSON with a level name, an ISO time and the message", () => {
  const { log, lines } = logTo();
  log.info({ join_url: "http://127.0.0.1:3025" }, "kube-join ready");
  log.debug("below the level");
  const [line, ...rest] = lines();
  assert.equal(rest.length, 0);
  assert.equal(line?.["level"], "info");
  assert.equal(line?.["msg"], "kube-join ready");
  assert.equal(line?.["service"], "kube-join");
  assert.equal(line?.["join_url"], "http://127.0.0.1:3025");
  assert.match(String(line?.["time"]), /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
});

test("fields named like secrets are censored wherever they sit (up to two levels down)", () => {
  const { log, lines } = logTo("trace");
  const secret = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
  log.warn(
    {
      id_token: secret,
      body: { id_token: secret, token: "example-bot" },
      req: { headers: { authorization: `Bearer ${secret}` } },
      key: { private_key: secret },
    },
    "a careless log call",
  );
  const [line] = lines();
  assert.equal(JSON.stringify(line).includes(secret), false);
  assert.equal(line?.["id_token"], "[redacted]");
  assert.deepEqual(line?.["body"], { id_token: "[redacted]", token: "example-bot" });
  assert.deepEqual(line?.["req"], { headers: { authorization: "[redacted]" } });
});
