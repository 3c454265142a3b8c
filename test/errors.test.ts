import { readFileSync } from "node:fs";
import { test } from "node:test";
import { strict as assert } from "node:assert";
import { ERROR_REGISTRY, JoinError, isErrorCode, statusOf } from "../src/errors.ts";

const DOC = readFileSync(new URL("../docs/errors.md", import.meta.url), "utf8");

function documentedCodes(): Map<string, number> {
  const rows = new Map<string, number>();
  for (const match of DOC.matchAll(/^\| `([a-z_]+)` +\| (\d{3}) +\|/gm)) {
    rows.set(match[1]!, Number(match[2]));
  }
  return rows;
}

test("every registered code is documented in docs/errors.md with its status", () => {
  const documented = documentedCodes();
  for (const [code, [status]] of Object.entries(ERROR_REGISTRY)) {
    assert.equal(documented.get(code), status, `docs/errors.md row for ${code}`);
  }
});

test("docs/errors.md documents no code the registry lacks", () => {
  const stale = [...documentedCodes().keys()].filter((code) => !isErrorCode(code));
  assert.deepEqual(stale, []);
});

test("JoinError carries its code and the registry maps it to a status", () => {
  const err = new JoinError("jwt_expired", "expired");
  assert.equal(err.code, "jwt_expired");
  assert.equal(statusOf(err.code), 401);
  assert.equal(statusOf("rate_limited"), 429);
  assert.equal(isErrorCode("__proto__"), false);
});
