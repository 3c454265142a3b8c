import { test } from "node:test";
import { strict as assert } from "node:assert";
import { formatDuration, parseDuration } from "../src/lib/duration.ts";

const H = 3_600_000;
const M = 60_000;

test("parseDuration reads Go durations as Teleport writes them", () => {
  const cases: [string, number][] = [
    ["12h", 12 * H],
    ["30m", 30 * M],
    ["1h30m", H + 30 * M],
    ["90s", 90_000],
    ["500ms", 500],
    ["1.5h", 1.5 * H],
    ["2h45m30s", 2 * H + 45 * M + 30_000],
    ["43200s", 12 * H],
    ["0", 0],
    ["0s", 0],
    ["+5m", 5 * M],
    ["1500us", 1.5],
    ["1500µs", 1.5],
    ["2000000ns", 2],
    [".5s", 500],
  ];
  for (const [text, ms] of cases) assert.equal(parseDuration(text), ms, text);
});

test("parseDuration throws TypeError naming the bad input", () => {
  const bad = [
    "",
    "12",
    "h",
    "12 hours",
    "12H",
    "1d",
    "-5m",
    "1h 30m",
    " 1h",
    "1.h.m",
    ".",
    "+",
    "5mm",
  ];
  for (const text of bad) {
    assert.throws(() => parseDuration(text), TypeError, JSON.stringify(text));
  }
  assert.throws(() => parseDuration("12 hours"), /invalid duration "12 hours": use a number/);
  assert.throws(() => parseDuration("-5m"), /must not be negative/);
  assert.throws(() => parseDuration(12 as unknown as string), /must be a string/);
});

test("formatDuration writes the shortest form that parses back", () => {
  const cases: [number, string][] = [
    [12 * H, "12h"],
    [H + 30 * M, "1h30m"],
    [90_000, "1m30s"],
    [500, "500ms"],
    [0, "0s"],
    [7 * 24 * H, "168h"],
    [H + 1, "1h1ms"],
  ];
  for (const [ms, text] of cases) {
    assert.equal(formatDuration(ms), text, String(ms));
    assert.equal(parseDuration(text), ms, text);
  }
  assert.throws(() => formatDuration(-1), TypeError);
  assert.throws(() => formatDuration(Number.NaN), TypeError);
});
