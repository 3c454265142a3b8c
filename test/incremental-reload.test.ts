/**
 * The service's incremental resource loader (src/resources/loader.ts): a reload parses only the
 * files whose content changed, reuses what the others parsed to, and still runs every check across
 * files; the result is what `loadResources` gives for the same files. Each scenario runs with the
 * parsing on this thread and in a load worker.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { procStatFields } from "../bench/processes.ts";
import { loadOrCreateAuthority, type CertificateAuthority } from "../src/ca/authority.ts";
import { ed25519AuthorizedKey } from "../src/ca/ssh.ts";
import { ConfigError, JoinError } from "../src/errors.ts";
import type { JoinAttempt } from "../src/join/events.ts";
import { JoinService, type JoinSnapshot } from "../src/join/join.ts";
import { kubernetesSpecOf } from "../src/methods/kubernetes/method.ts";
import { VerifiedTokenCache } from "../src/methods/verified-token-cache.ts";
import { loadResources } from "../src/resources/load.ts";
import { ResourceLoader } from "../src/resources/loader.ts";
import type { ResourceSet } from "../src/resources/types.ts";
import { ServiceState } from "../src/service/state.ts";
import {
  TEST_AUDIENCE,
  TEST_NOW_MS,
  generateClusterKey,
  mintServiceAccountToken,
  serviceAccountClaims,
  type ClusterKey,
} from "./support/jwt.ts";

let keyA: ClusterKey;
let keyB: ClusterKey;
let authority: CertificateAuthority;
let tlsPublicKey: string;
let sshPublicKey: string;
const roots: string[] = [];

before(async () => {
  keyA = generateClusterKey("ES256");
  keyB = generateClusterKey("ES256");
  authority = await loadOrCreateAuthority(
    { clusterName: TEST_AUDIENCE, dataDir: tempDir() },
    TEST_NOW_MS,
  );
  tlsPublicKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({
    type: "spki",
    format: "pem",
  }) as string;
  sshPublicKey = ed25519AuthorizedKey(generateKeyPairSync("ed25519").publicKey, "bot@test");
});

after(() => {
  for (const root of roots) rmSync(root, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-incremental-"));
  roots.push(dir);
  return dir;
}

function bot(name: string): string {
  return `kind: bot
version: v1
metadata:
  name: ${name}
spec:
  roles: [access]
`;
}

function token(name: string, botName: string, key: ClusterKey, extra = ""): string {
  return `kind: token
version: v2
metadata:
  name: ${name}
${extra}spec:
  roles: [Bot]
  bot_name: ${botName}
  join_method: kubernetes
  kubernetes:
    type: static_jwks
    static_jwks:
      jwks: '${key.jwks}'
    allow:
      - service_account: "ns-${name}:tbot"
`;
}

const docs = (...parts: string[]): string => parts.join("---\n");

/** A resources directory of three files: bots, tokens a, tokens b. */
function resourcesDir(): string {
  const dir = tempDir();
  writeFileSync(join(dir, "00-bots.yaml"), docs(bot("alpha"), bot("beta")));
  writeFileSync(
    join(dir, "10-a.yaml"),
    docs(token("a1", "alpha", keyA), token("a2", "alpha", keyA)),
  );
  writeFileSync(join(dir, "20-b.yaml"), docs(token("b1", "beta", keyB)));
  return dir;
}

async function problemsOf(promise: Promise<unknown>): Promise<readonly string[]> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail("expected the load to fail");
}

/** The same set as `loadResources` reads: names, tokens' fields, keys by revision. */
function assertSameAsFullLoad(actual: ResourceSet, expected: ResourceSet): void {
  assert.deepEqual([...actual.bots.keys()], [...expected.bots.keys()]);
  assert.deepEqual([...actual.tokens.keys()], [...expected.tokens.keys()]);
  assert.deepEqual(actual.files, expected.files);
  assert.deepEqual(actual.warnings, expected.warnings);
  for (const [name, t] of expected.tokens) {
    const got = actual.tokens.get(name)!;
    assert.deepEqual({ ...got, join: undefined }, { ...t, join: undefined }, `token ${name}`);
    const gotSpec = kubernetesSpecOf(got.join);
    const wantSpec = kubernetesSpecOf(t.join);
    assert.equal(gotSpec?.type, wantSpec?.type);
    assert.deepEqual(gotSpec?.allow, wantSpec?.allow);
    if (gotSpec?.type === "static_jwks" && wantSpec?.type === "static_jwks") {
      assert.equal(gotSpec.keySet.revision, wantSpec.keySet.revision);
    }
  }
  for (const [name, b] of expected.bots) assert.deepEqual(actual.bots.get(name), b, `bot ${name}`);
}

for (const workers of [0, 1]) {
  describe(workers === 0 ? "parsing on this thread" : "parsing in a load worker", () => {
    const load = (loader: ResourceLoader, dir: string): Promise<ResourceSet> =>
      loader.load([dir], { workers });
    // With a worker, every parse goes to it (by default a change this small is parsed here).
    const newLoader = (): ResourceLoader =>
      new ResourceLoader(workers === 0 ? {} : { parseHereMaxBytes: 0 });

    test("the first load parses every file and equals a full load", async () => {
      const dir = resourcesDir();
      const loader = newLoader();
      try {
        const set = await load(loader, dir);
        assert.deepEqual(loader.lastLoad && { ...loader.lastLoad, ms: 0 }, {
          files: 3,
          parsed: 3,
          reused: 0,
          read: 3,
          parsedIn: workers === 0 ? "this thread" : "workers",
          ms: 0,
        });
        assertSameAsFullLoad(set, await loadResources([dir]));
      } finally {
        loader.close();
      }
    });

    test("one file changed: only it is parsed; the others' tokens and keys are the same objects", async () => {
      const dir = resourcesDir();
      const loader = newLoader();
      try {
        const first = await load(loader, dir);
        writeFileSync(join(dir, "20-b.yaml"), docs(token("b1", "beta", keyA)));
        const second = await load(loader, dir);
        assert.equal(loader.lastLoad?.parsed, 1);
        assert.equal(loader.lastLoad?.reused, 2);
        assert.equal(second.tokens.get("a1"), first.tokens.get("a1"), "unchanged file: reused");
        assert.equal(second.bots.get("alpha"), first.bots.get("alpha"));
        assert.notEqual(second.tokens.get("b1"), first.tokens.get("b1"));
        // b1 now carries keyA's JWKS: it shares a1's imported key set.
        const keysOf = (set: ResourceSet, name: string) => {
          const spec = kubernetesSpecOf(set.tokens.get(name)?.join);
          assert.equal(spec?.type, "static_jwks");
          return spec.keySet;
        };
        assert.equal(keysOf(second, "b1"), keysOf(second, "a1"));
        assertSameAsFullLoad(second, await loadResources([dir]));
      } finally {
        loader.close();
      }
    });

    test("a file changed around tokens that did not: they stay the same objects, the changed one is new", async () => {
      const dir = resourcesDir();
      const loader = newLoader();
      try {
        const first = await load(loader, dir);
        const file = join(dir, "10-a.yaml");
        // A comment at the end, and a2's allow rule changed: a1 parses to what it did before.
        writeFileSync(
          file,
          docs(
            token("a1", "alpha", keyA),
            token("a2", "alpha", keyA).replace('"ns-a2:tbot"', '"ns-a2:other"'),
          ) + "# edited\n",
        );
        const second = await load(loader, dir);
        assert.equal(loader.lastLoad?.parsed, 1);
        assert.equal(second.tokens.get("a1"), first.tokens.get("a1"), "a1 did not change");
        assert.notEqual(second.tokens.get("a2"), first.tokens.get("a2"), "a2 did");
        assertSameAsFullLoad(second, await loadResources([dir]));
        // The same bytes as at first again: a2 is a new object once more, equal to the first.
        writeFileSync(file, docs(token("a1", "alpha", keyA), token("a2", "alpha", keyA)));
        const third = await load(loader, dir);
        assert.equal(third.tokens.get("a1"), first.tokens.get("a1"));
        assert.notEqual(third.tokens.get("a2"), second.tokens.get("a2"));
        assertSameAsFullLoad(third, await loadResources([dir]));
        // A token that moved down a line is not the same: its position is part of it.
        writeFileSync(file, "\n" + docs(token("a1", "alpha", keyA), token("a2", "alpha", keyA)));
        const fourth = await load(loader, dir);
        assert.notEqual(fourth.tokens.get("a1"), first.tokens.get("a1"));
        assert.equal(fourth.tokens.get("a1")?.source.line, first.tokens.get("a1")!.source.line + 1);
        assertSameAsFullLoad(fourth, await loadResources([dir]));
      } finally {
        loader.close();
      }
    });

    test("a reload with nothing changed parses nothing and serves the same objects", async () => {
      const dir = resourcesDir();
      const loader = newLoader();
      try {
        const first = await load(loader, dir);
        const second = await load(loader, dir);
        assert.equal(loader.lastLoad?.parsed, 0);
        for (const [name, t] of first.tokens) assert.equal(second.tokens.get(name), t);
      } finally {
        loader.close();
      }
    });

    test("one file added and one removed", async () => {
      const dir = resourcesDir();
      const loader = newLoader();
      try {
        await load(loader, dir);
        writeFileSync(join(dir, "30-c.yaml"), docs(token("c1", "beta", keyB)));
        const added = await load(loader, dir);
        assert.equal(loader.lastLoad?.parsed, 1);
        assert.ok(added.tokens.has("c1"));
        assert.deepEqual(added.files, [
          join(dir, "00-bots.yaml"),
          join(dir, "10-a.yaml"),
          join(dir, "20-b.yaml"),
          join(dir, "30-c.yaml"),
        ]);
        rmSync(join(dir, "10-a.yaml"));
        const removed = await load(loader, dir);
        assert.equal(loader.lastLoad?.parsed, 0);
        assert.deepEqual([...removed.tokens.keys()], ["b1", "c1"]);
        assertSameAsFullLoad(removed, await loadResources([dir]));
      } finally {
        loader.close();
      }
    });

    test("one file broken: the load fails with file:line, the previous set keeps serving, the fix parses one file", async () => {
      const dir = resourcesDir();
      const loader = newLoader();
      const state = new ServiceState();
      state.setAuthority(authority);
      try {
        const good = await load(loader, dir);
        state.setResources(good);
        const broken = join(dir, "10-a.yaml");
        writeFileSync(
          broken,
          docs(
            token("a1", "alpha", keyA),
            token("a2", "alpha", keyA).replace("roles: [Bot]", "roles: []"),
          ),
        );
        const problems = await problemsOf(load(loader, dir));
        assert.deepEqual(problems, await problemsOf(loadResources([dir])), "as a full load says");
        assert.equal(problems.length, 1);
        assert.match(problems[0]!, new RegExp(`^${escape(broken)}:\\d+:\\d+: spec\\.roles: `));
        // The caller swaps only a good set in: the previous one still serves a1 and a2.
        assert.equal(state.resources, good);
        assert.ok(state.snapshot?.resources.tokens.has("a2"));

        writeFileSync(broken, docs(token("a1", "alpha", keyA)));
        const fixed = await load(loader, dir);
        assert.equal(loader.lastLoad?.parsed, 1, "only the fixed file is parsed again");
        assert.deepEqual([...fixed.tokens.keys()], ["a1", "b1"]);
      } finally {
        loader.close();
      }
    });

    test("a YAML syntax error in one file is reported with file:line:col and nothing is served from it", async () => {
      const dir = resourcesDir();
      const loader = newLoader();
      try {
        await load(loader, dir);
        writeFileSync(join(dir, "20-b.yaml"), "kind: token\nmetadata: {name: [b1\n");
        const problems = await problemsOf(load(loader, dir));
        assert.deepEqual(problems, await problemsOf(loadResources([dir])));
        assert.ok(problems.every((p) => p.startsWith(`${join(dir, "20-b.yaml")}:`)));
        assert.match(problems[0]!, /:\d+:\d+: YAML syntax: /);
      } finally {
        loader.close();
      }
    });

    test("a token renamed across files: moved whole, or caught as a duplicate half-way", async () => {
      const dir = resourcesDir();
      const loader = newLoader();
      try {
        await load(loader, dir);
        // Half-way: a2 is in both files (the editor saved the new one first).
        writeFileSync(
          join(dir, "20-b.yaml"),
          docs(token("b1", "beta", keyB), token("a2", "alpha", keyA)),
        );
        const problems = await problemsOf(load(loader, dir));
        assert.deepEqual(problems, await problemsOf(loadResources([dir])));
        assert.equal(problems.length, 1);
        assert.match(
          problems[0]!,
          new RegExp(
            `^${escape(join(dir, "20-b.yaml"))}:\\d+:\\d+: metadata\\.name: duplicate token name "a2": already defined at ${escape(join(dir, "10-a.yaml"))}:\\d+:\\d+$`,
          ),
        );
        // Done: gone from the first file. The token is served from its new file.
        writeFileSync(join(dir, "10-a.yaml"), docs(token("a1", "alpha", keyA)));
        const moved = await load(loader, dir);
        assert.equal(moved.tokens.get("a2")?.source.file, join(dir, "20-b.yaml"));
        assert.equal(loader.lastLoad?.parsed, 1, "20-b.yaml was parsed by the failed load");
        assertSameAsFullLoad(moved, await loadResources([dir]));
        // Renaming the file itself (same content, new name): parsed under its new name.
        renameSync(join(dir, "20-b.yaml"), join(dir, "25-b.yaml"));
        const renamed = await load(loader, dir);
        assert.equal(renamed.tokens.get("b1")?.source.file, join(dir, "25-b.yaml"));
      } finally {
        loader.close();
      }
    });

    test("a file with locks is parsed again on every load: a lock's expiry is read against the load's time", async () => {
      const dir = resourcesDir();
      const lockFile = join(dir, "30-locks.yaml");
      writeFileSync(
        lockFile,
        `kind: lock
version: v2
metadata:
  name: stop-a1
spec:
  target:
    join_token: a1
  expires: "2026-01-15T12:00:30Z"
`,
      );
      const loader = newLoader();
      try {
        const before = await loader.load([dir], { workers, nowMs: TEST_NOW_MS });
        assert.ok(before.locks.has("stop-a1"));
        assert.deepEqual(before.warnings, []);
        const after = await loader.load([dir], { workers, nowMs: TEST_NOW_MS + 60_000 });
        assert.equal(loader.lastLoad?.parsed, 1, "the lock file, though its bytes did not change");
        assert.equal(after.tokens.get("a1"), before.tokens.get("a1"), "the other files are reused");
        assert.equal(after.warnings.length, 1);
        assert.match(after.warnings[0]!, /30-locks\.yaml:\d+:\d+: spec\.expires: has passed/);
        const full = await loadResources([dir]);
        assert.deepEqual([...after.locks.keys()], [...full.locks.keys()]);
      } finally {
        loader.close();
      }
    });

    test("checks across files hold when the file that breaks them did not change", async () => {
      const dir = resourcesDir();
      const loader = newLoader();
      try {
        await load(loader, dir);
        // Only the bots file changes; the tokens of 20-b.yaml (not parsed again) lose their bot.
        writeFileSync(join(dir, "00-bots.yaml"), docs(bot("alpha")));
        const problems = await problemsOf(load(loader, dir));
        assert.equal(loader.lastLoad?.parsed, 1);
        assert.deepEqual(problems, await problemsOf(loadResources([dir])));
        assert.match(
          problems[0]!,
          /20-b\.yaml:\d+:\d+: spec\.bot_name: names no loaded bot "beta" \(bots loaded: "alpha"\)$/,
        );
      } finally {
        loader.close();
      }
    });

    test("verified-token cache, token expiry and allow rules across an incremental reload", async () => {
      const dir = resourcesDir();
      const loader = newLoader();
      let snapshot: JoinSnapshot | undefined;
      let now = TEST_NOW_MS;
      const events: JoinAttempt[] = [];
      const joins = new JoinService({
        clusterName: TEST_AUDIENCE,
        certs: { defaultTtlMs: 3_600_000, maxTtlMs: 86_400_000 },
        snapshot: () => snapshot,
        now: () => now,
        cache: new VerifiedTokenCache({ maxEntries: 100, now: () => now }),
        listeners: [(e) => events.push(e)],
        onInternalError: (err) => assert.fail(String(err)),
      });
      const joinAs = (tokenName: string, jwt: string) =>
        joins.join({
          tokenName,
          role: "Bot",
          idToken: jwt,
          publicTlsKey: tlsPublicKey,
          publicSshKey: sshPublicKey,
          expiresAtMs: undefined,
          remoteAddr: "10.1.2.3",
        });
      const jwtFor = (name: string, key: ClusterKey) =>
        mintServiceAccountToken(
          key,
          serviceAccountClaims({ namespace: `ns-${name}`, serviceAccount: "tbot" }),
        );
      const refused = async (promise: Promise<unknown>): Promise<string> => {
        const err = await promise.then(
          () => assert.fail("expected the join to be refused"),
          (e: unknown) => e,
        );
        assert.ok(err instanceof JoinError, String(err));
        return err.code;
      };
      try {
        snapshot = { resources: await load(loader, dir), authority };
        const a1 = jwtFor("a1", keyA);
        const b1 = jwtFor("b1", keyB);
        await joinAs("a1", a1);
        await joinAs("b1", b1);
        // 20-b.yaml changes b1's keys (keyB -> keyA); 10-a.yaml does not change.
        writeFileSync(join(dir, "20-b.yaml"), docs(token("b1", "beta", keyA)));
        snapshot = { resources: await load(loader, dir), authority };
        assert.equal(loader.lastLoad?.parsed, 1);
        events.length = 0;
        await joinAs("a1", a1);
        assert.equal(
          events[0]?.cache,
          "hit",
          "a token whose file did not change keeps its entries",
        );
        assert.equal(await refused(joinAs("b1", b1)), "jwt_signature_invalid");
        assert.equal(events[1]?.cache, "miss", "a token whose keys changed loses its entries");
        const b1New = jwtFor("b1", keyA);
        await joinAs("b1", b1New);
        await joinAs("b1", b1New);
        assert.deepEqual(
          events.slice(2).map((e) => e.cache),
          ["miss", "hit"],
        );

        // Token expiry and allow rules come from the new set on every join, cached or not.
        writeFileSync(
          join(dir, "10-a.yaml"),
          docs(
            token("a1", "alpha", keyA, "  expires: 2026-01-15T12:00:30Z\n"),
            token("a2", "alpha", keyA).replace('"ns-a2:tbot"', '"ns-a1:tbot"'),
          ),
        );
        snapshot = { resources: await load(loader, dir), authority };
        events.length = 0;
        await joinAs("a1", a1);
        assert.equal(events[0]?.cache, "hit");
        now = TEST_NOW_MS + 31_000;
        assert.equal(await refused(joinAs("a1", a1)), "token_expired");
        await joinAs("a2", a1); // a2 now allows ns-a1:tbot, and a1's JWT verified under keyA
        writeFileSync(
          join(dir, "10-a.yaml"),
          docs(token("a1", "alpha", keyA), token("a2", "alpha", keyA)),
        );
        snapshot = { resources: await load(loader, dir), authority };
        assert.equal(await refused(joinAs("a2", a1)), "no_matching_allow_rule");
        assert.equal(events.at(-1)?.cache, "hit", "rules are checked even on a cache hit");
      } finally {
        loader.close();
      }
    });
  });
}

describe("what a reload reads", () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  test("a file whose stat did not move since a settled read is not read again", async () => {
    const dir = resourcesDir();
    await sleep(120); // the files' last change is now older than the margin
    const loader = new ResourceLoader({ racyMarginMs: 50 });
    try {
      const first = await loader.load([dir], { workers: 1 });
      const second = await loader.load([dir], { workers: 1 });
      assert.deepEqual(
        { read: loader.lastLoad?.read, parsed: loader.lastLoad?.parsed },
        { read: 0, parsed: 0 },
      );
      assert.equal(second.tokens.get("a1"), first.tokens.get("a1"));
      writeFileSync(join(dir, "20-b.yaml"), docs(token("b1", "beta", keyA)));
      const third = await loader.load([dir], { workers: 1 });
      assert.deepEqual(
        { read: loader.lastLoad?.read, parsed: loader.lastLoad?.parsed },
        { read: 1, parsed: 1 },
      );
      assertSameAsFullLoad(third, await loadResources([dir]));
    } finally {
      loader.close();
    }
  });

  test("a file read right after its change is read again, and settles in the background", async () => {
    const dir = resourcesDir();
    const loader = new ResourceLoader({ racyMarginMs: 300 });
    try {
      await loader.load([dir], { workers: 0 });
      // Read within the margin of their change: a second write in the same clock tick could
      // have left the same stat, so their stat is not trusted yet.
      await loader.load([dir], { workers: 0 });
      assert.deepEqual(
        { read: loader.lastLoad?.read, parsed: loader.lastLoad?.parsed },
        { read: 3, parsed: 0 },
      );
      // The background pass reads them once the margin has passed (300 + 100 ms after the load).
      await sleep(700);
      await loader.load([dir], { workers: 0 });
      assert.deepEqual(
        { read: loader.lastLoad?.read, parsed: loader.lastLoad?.parsed },
        { read: 0, parsed: 0 },
      );
    } finally {
      loader.close();
    }
  });

  test("same size, and the mtime put back (cp -p, touch -d): the ctime still tells", async () => {
    const dir = resourcesDir();
    const file = join(dir, "20-b.yaml");
    const past = new Date("2026-01-01T00:00:00Z");
    utimesSync(file, past, past);
    await sleep(120);
    const loader = new ResourceLoader({ racyMarginMs: 50 });
    try {
      await loader.load([dir], { workers: 0 });
      const text = readFileSync(file, "utf8");
      const changed = text.replace('"ns-b1:tbot"', '"ns-b9:tbot"');
      assert.equal(changed.length, text.length);
      writeFileSync(file, changed);
      utimesSync(file, past, past);
      const set = await loader.load([dir], { workers: 0 });
      assert.equal(loader.lastLoad?.parsed, 1);
      assert.deepEqual(
        kubernetesSpecOf(set.tokens.get("b1")?.join)?.allow.map((r) =>
          r.kind === "exact" ? `${r.namespace}:${r.name}` : r,
        ),
        ["ns-b9:tbot"],
      );
    } finally {
      loader.close();
    }
  });

  test("every file rewritten to parse the same (a ConfigMap rewritten unchanged): the same set", async () => {
    const dir = resourcesDir();
    const loader = new ResourceLoader();
    try {
      const first = await loader.load([dir], { workers: 0 });
      for (const name of ["00-bots.yaml", "10-a.yaml", "20-b.yaml"]) {
        writeFileSync(join(dir, name), readFileSync(join(dir, name), "utf8") + "# rewritten\n");
      }
      const second = await loader.load([dir], { workers: 0 });
      assert.equal(loader.lastLoad?.parsed, 3);
      assert.equal(second, first, "nothing parsed differently: the set assembled last time");
      writeFileSync(join(dir, "20-b.yaml"), docs(token("b1", "beta", keyA)));
      const third = await loader.load([dir], { workers: 0 });
      assert.notEqual(third, first);
      assertSameAsFullLoad(third, await loadResources([dir]));
    } finally {
      loader.close();
    }
  });

  test("a FIFO named as a resource file is a problem, not a hang", async () => {
    const dir = resourcesDir();
    const fifo = join(dir, "pipe.yaml");
    execFileSync("mkfifo", [fifo]);
    for (const workers of [0, 1]) {
      const loader = new ResourceLoader();
      try {
        const problems = await problemsOf(loader.load([dir, fifo], { workers }));
        assert.deepEqual(problems, [`${fifo}: not a regular file`]);
      } finally {
        loader.close();
      }
    }
  });

  test("a reload's worker runs at nice 19 and gives what a full load gives", async () => {
    const dir = resourcesDir();
    const loader = new ResourceLoader({ parseHereMaxBytes: 0 });
    try {
      const set = await loader.load([dir], { workers: 1, background: true });
      assert.equal(loader.lastLoad?.parsedIn, "workers");
      assertSameAsFullLoad(set, await loadResources([dir]));
      if (process.platform !== "linux") return;
      // The worker is kept a while after its load: one of this process's threads is at nice 19
      // (field 19 of /proc/self/task/TID/stat), and the event loop's thread is above it.
      const niceOf = (tid: string): number =>
        Number(procStatFields(`/proc/self/task/${tid}/stat`)[16]);
      const nices = readdirSync("/proc/self/task").map(niceOf);
      assert.ok(nices.includes(19), `no thread at nice 19: ${nices.join(", ")}`);
      assert.ok(niceOf(String(process.pid)) < 19, "the event loop's thread was lowered too");
    } finally {
      loader.close();
    }
  });

  test("a small change is parsed on this thread, a large one in a worker", async () => {
    const dir = resourcesDir();
    const small = new ResourceLoader();
    const large = new ResourceLoader({ parseHereMaxBytes: 10 });
    try {
      // The first load too: three small files parse here faster than a worker starts.
      await small.load([dir], { workers: 1 });
      assert.equal(small.lastLoad?.parsedIn, "this thread");
      await large.load([dir], { workers: 1 });
      assert.equal(large.lastLoad?.parsedIn, "workers");
      writeFileSync(join(dir, "20-b.yaml"), docs(token("b1", "beta", keyA)));
      const here = await small.load([dir], { workers: 1 });
      assert.deepEqual(
        { parsed: small.lastLoad?.parsed, parsedIn: small.lastLoad?.parsedIn },
        { parsed: 1, parsedIn: "this thread" },
      );
      const there = await large.load([dir], { workers: 1 });
      assert.deepEqual(
        { parsed: large.lastLoad?.parsed, parsedIn: large.lastLoad?.parsedIn },
        { parsed: 1, parsedIn: "workers" },
      );
      const full = await loadResources([dir]);
      assertSameAsFullLoad(here, full);
      assertSameAsFullLoad(there, full);
      // Either way, the changed token's key set is the pool's: one object for keyA's JWKS.
      const keySetOf = (set: ResourceSet, name: string) => {
        const spec = kubernetesSpecOf(set.tokens.get(name)?.join);
        return spec?.type === "static_jwks" ? spec.keySet : undefined;
      };
      assert.equal(keySetOf(here, "b1"), keySetOf(here, "a1"));
      assert.equal(keySetOf(there, "b1"), keySetOf(there, "a1"));
    } finally {
      small.close();
      large.close();
    }
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
