// The one admin-YAML reader (src/yaml/field-reader.ts): the dialect the config, the resources and
// the agent's config share. Each reader: the value it returns, and the exact problem it records.
import { strict as assert } from "node:assert";
import { test } from "node:test";
import {
  Diagnostics,
  FieldReader,
  didYouMean,
  inFileOrder,
  orDefault,
} from "../src/yaml/field-reader.ts";
import { parseYamlDocument } from "../src/yaml/yaml-source.ts";

/** Reads field `v` of the one-line document `v: <yaml>` with `read`; returns value and problems. */
function readV<T>(
  yaml: string,
  read: (r: FieldReader, value: unknown) => T,
): { value: T; problems: readonly string[] } {
  const source = parseYamlDocument("f.yaml", `v: ${yaml}\n`);
  const diagnostics = new Diagnostics();
  const r = new FieldReader(source, diagnostics);
  const value = read(r, (source.value as Record<string, unknown>)["v"]);
  assert.equal(r.problemCount, diagnostics.problems.length);
  return { value, problems: diagnostics.problems };
}

const LEVELS = ["debug", "info", "warn"] as const;

test("field reader: each reader's value and its one wording", () => {
  const cases: ReadonlyArray<{
    name: string;
    yaml: string;
    read: (r: FieldReader, value: unknown) => unknown;
    value: unknown;
    problems?: readonly string[];
  }> = [
    {
      name: "enum: a known value",
      yaml: "info",
      read: (r, v) => r.optionalEnum(["v"], v, LEVELS),
      value: "info",
    },
    {
      name: "enum: absent, null and empty are unset",
      yaml: '""',
      read: (r, v) => r.optionalEnum(["v"], v, LEVELS),
      value: undefined,
    },
    {
      name: "enum: a near miss gets a hint",
      yaml: "inof",
      read: (r, v) => r.optionalEnum(["v"], v, LEVELS),
      value: undefined,
      problems: [
        'f.yaml:1:1: v: must be one of: debug, info, warn, got "inof" (did you mean "info"?)',
      ],
    },
    {
      name: "enum: far off, no hint",
      yaml: "verbose",
      read: (r, v) => r.optionalEnum(["v"], v, LEVELS),
      value: undefined,
      problems: ['f.yaml:1:1: v: must be one of: debug, info, warn, got "verbose"'],
    },
    {
      name: "enum: wrong type names the type, not the value",
      yaml: "[info]",
      read: (r, v) => r.optionalEnum(["v"], v, LEVELS),
      value: undefined,
      problems: ["f.yaml:1:1: v: must be one of: debug, info, warn, got a list"],
    },
    {
      name: "duration",
      yaml: "1h30m",
      read: (r, v) => r.optionalDuration(["v"], v),
      value: 5_400_000,
    },
    {
      name: "duration: a number",
      yaml: "90",
      read: (r, v) => r.optionalDuration(["v"], v),
      value: undefined,
      problems: ['f.yaml:1:1: v: must be a duration such as "1h" or "90s", got a number'],
    },
    {
      name: "duration: days are not a unit",
      yaml: "1d",
      read: (r, v) => r.optionalDuration(["v"], v),
      value: undefined,
      problems: [
        'f.yaml:1:1: v: invalid duration "1d": use a number with a unit, e.g. "12h", "30m", "1h30m", "90s" or "500ms"',
      ],
    },
    {
      name: "positive int",
      yaml: "5000",
      read: (r, v) => r.optionalPositiveInt(["v"], v),
      value: 5000,
    },
    {
      name: "positive int: zero",
      yaml: "0",
      read: (r, v) => r.optionalPositiveInt(["v"], v),
      value: undefined,
      problems: ["f.yaml:1:1: v: must be a whole number of at least 1, got 0"],
    },
    {
      name: "positive int: a string",
      yaml: "many",
      read: (r, v) => r.optionalPositiveInt(["v"], v),
      value: undefined,
      problems: ["f.yaml:1:1: v: must be a whole number of at least 1, got a string"],
    },
    {
      name: "path: relative resolves against the base directory",
      yaml: "ca/tls.key",
      read: (r, v) => r.optionalPath(["v"], v, "/etc/kube-join"),
      value: "/etc/kube-join/ca/tls.key",
    },
    {
      name: "path: absolute stays",
      yaml: "/secrets/tls.key",
      read: (r, v) => r.optionalPath(["v"], v, "/etc/kube-join"),
      value: "/secrets/tls.key",
    },
    {
      name: "required path: empty is missing",
      yaml: '""',
      read: (r, v) => r.requiredPath(["v"], v, "/etc"),
      value: undefined,
      problems: ["f.yaml:1:1: v: must be set"],
    },
    {
      name: "path list: each item resolved, bad items named by index",
      yaml: "[a, /b, 5]",
      read: (r, v) => r.pathList(["v"], v, "/etc"),
      value: ["/etc/a", "/b"],
      problems: ["f.yaml:1:12: v[2]: must be a string, got a number"],
    },
    {
      name: "path list: not a list",
      yaml: "a",
      read: (r, v) => r.pathList(["v"], v, "/etc"),
      value: undefined,
      problems: ["f.yaml:1:1: v: must be a list, got a string"],
    },
    {
      name: "optional mapping: null is unset",
      yaml: "null",
      read: (r, v) => r.optionalMapping(["v"], v, ["a"]),
      value: undefined,
    },
    {
      name: "optional mapping: an unknown field gets a hint and the known fields",
      yaml: "{max_entrie: 1}",
      read: (r, v) => r.optionalMapping(["v"], v, ["max_entries"]),
      value: { max_entrie: 1 },
      problems: [
        'f.yaml:1:5: v.max_entrie: unknown field (did you mean "max_entries"?); known fields here: max_entries',
      ],
    },
    {
      name: "optional mapping: a list",
      yaml: "[1]",
      read: (r, v) => r.optionalMapping(["v"], v, ["a"]),
      value: undefined,
      problems: ["f.yaml:1:1: v: must be a mapping, got a list"],
    },
  ];
  for (const c of cases) {
    const { value, problems } = readV(c.yaml, c.read);
    assert.deepEqual(value, c.value, c.name);
    assert.deepEqual(problems, c.problems ?? [], c.name);
  }
});

test("field reader: orDefault applies the default to absent, null and empty only", () => {
  assert.equal(orDefault(undefined, "1h"), "1h");
  assert.equal(orDefault(null, "1h"), "1h");
  assert.equal(orDefault("", "1h"), "1h");
  assert.equal(orDefault("30m", "1h"), "30m");
  assert.equal(orDefault(0, 120), 0, "0 is a value (and gets its own problem), not unset");
  assert.equal(orDefault(false, true), false);
});

test("field reader: did you mean", () => {
  assert.equal(didYouMean("alow", ["allow", "type"]), ' (did you mean "allow"?)');
  assert.equal(didYouMean("lisen_addr", ["listen_addr"]), ' (did you mean "listen_addr"?)');
  assert.equal(didYouMean("verbose", ["debug", "info"]), "");
  assert.equal(didYouMean("a", ["abcd"]), "", "length differs by more than two");
});

test("field reader: problems in file order, then line and column, stable", () => {
  assert.deepEqual(
    inFileOrder(
      ["b.yaml:1:1: b", "a.yaml:3:1: late", "a.yaml:1:5: x", "a.yaml:1:5: y", "other: z"],
      ["a.yaml", "b.yaml"],
    ),
    ["a.yaml:1:5: x", "a.yaml:1:5: y", "a.yaml:3:1: late", "b.yaml:1:1: b", "other: z"],
  );
});
