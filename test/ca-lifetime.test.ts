import { strict as assert } from "node:assert";
import { test } from "node:test";
import { JoinError } from "../src/errors.ts";
import { resolveCertificateLifetime } from "../src/ca/lifetime.ts";

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const LIMITS = { defaultTtlMs: HOUR, maxTtlMs: 24 * HOUR, botMaxSessionTtlMs: 12 * HOUR };

test("lifetime: accepted requests and the expiry they get", () => {
  const cases = [
    {
      name: "no request: the default hour",
      requested: undefined,
      limits: LIMITS,
      notAfter: NOW + HOUR,
    },
    {
      name: "a request within the caps is honoured",
      requested: NOW + 5 * HOUR,
      limits: LIMITS,
      notAfter: NOW + 5 * HOUR,
    },
    {
      name: "exactly 1 minute away is enough",
      requested: NOW + MINUTE,
      limits: LIMITS,
      notAfter: NOW + MINUTE,
    },
    {
      name: "beyond the bot's max_session_ttl: capped there",
      requested: NOW + 20 * HOUR,
      limits: LIMITS,
      notAfter: NOW + 12 * HOUR,
    },
    {
      name: "beyond 24 h with a longer bot max_session_ttl: capped at 24 h",
      requested: NOW + 48 * HOUR,
      limits: { ...LIMITS, botMaxSessionTtlMs: 72 * HOUR },
      notAfter: NOW + 24 * HOUR,
    },
    {
      name: "no request and a bot max_session_ttl under the default: the cap wins",
      requested: undefined,
      limits: { ...LIMITS, botMaxSessionTtlMs: 30 * MINUTE },
      notAfter: NOW + 30 * MINUTE,
    },
  ];
  for (const { name, requested, limits, notAfter } of cases) {
    assert.deepEqual(
      resolveCertificateLifetime(requested, NOW, limits),
      { notBeforeMs: NOW - MINUTE, notAfterMs: notAfter },
      name,
    );
  }
});

test("lifetime: refused requests are invalid_ttl", () => {
  const cases = [
    { name: "in the past", requested: NOW - 1, message: /in the past/ },
    { name: "now", requested: NOW, message: /in the past/ },
    { name: "59.999 s away", requested: NOW + MINUTE - 1, message: /less than 1 minute/ },
    { name: "not a number", requested: Number.NaN, message: /not a valid time/ },
    { name: "infinite", requested: Number.POSITIVE_INFINITY, message: /not a valid time/ },
  ];
  for (const { name, requested, message } of cases) {
    assert.throws(
      () => resolveCertificateLifetime(requested, NOW, LIMITS),
      (error: unknown) =>
        error instanceof JoinError && error.code === "invalid_ttl" && message.test(error.message),
      name,
    );
  }
});

test("lifetime: limits that make no sense are a programming error", () => {
  assert.throws(
    () => resolveCertificateLifetime(undefined, NOW, { ...LIMITS, maxTtlMs: 0 }),
    TypeError,
  );
  assert.throws(() => resolveCertificateLifetime(undefined, Number.NaN, LIMITS), TypeError);
});
