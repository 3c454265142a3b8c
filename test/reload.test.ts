import { strict as assert } from "node:assert";
import { mkdirSync, mkdtempSync, renameSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ConfigError } from "../src/errors.ts";
import type { ResourceSet } from "../src/resources/types.ts";
import { ResourceReloader, type ReloadOutcome } from "../src/service/reloader.ts";
import { ServiceState } from "../src/service/state.ts";

function emptySet(files: readonly string[] = []): ResourceSet {
  return { bots: new Map(), tokens: new Map(), locks: new Map(), warnings: [], files };
}

/** Collects outcomes; `count(n)` resolves once n have been reported (fails after 10 s). */
function outcomes(): {
  onReload: (o: ReloadOutcome) => void;
  next: () => Promise<ReloadOutcome>;
  count: (n: number) => Promise<void>;
  all: ReloadOutcome[];
} {
  const all: ReloadOutcome[] = [];
  const waiters: Array<() => void> = [];
  const count = (n: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reload ${n} within 10 s`)), 10_000);
      const check = (): void => {
        if (all.length < n) return;
        clearTimeout(timer);
        waiters.splice(waiters.indexOf(check), 1);
        resolve();
      };
      waiters.push(check);
      check();
    });
  return {
    all,
    onReload: (o) => {
      all.push(o);
      for (const w of [...waiters]) w();
    },
    count,
    next: () => {
      const n = all.length + 1;
      return count(n).then(() => all[n - 1] as ReloadOutcome);
    },
  };
}

test("reloads are serialised: requests during a reload run once more, afterwards", async () => {
  let calls = 0;
  let release: () => void = () => undefined;
  const seen = outcomes();
  const reloader = new ResourceReloader({
    paths: [],
    load: async () => {
      calls++;
      if (calls === 1) await new Promise<void>((resolve) => (release = resolve));
      return emptySet();
    },
    onReload: seen.onReload,
  });
  const first = reloader.reload("one");
  const second = reloader.reload("two");
  const third = reloader.reload("three");
  release();
  await first;
  // A caller who asked during the first reload is answered only once the queued one is done.
  await third;
  assert.equal(seen.all.length, 2, "the queued reload had finished when its caller resumed");
  await second;
  assert.equal(calls, 2, "the queued requests collapse into one more reload");
  assert.deepEqual(
    seen.all.map((o) => o.reason),
    ["one", "three"],
  );
  reloader.close();
});

test("a failed load is reported with its error and nothing else happens", async () => {
  const seen = outcomes();
  const reloader = new ResourceReloader({
    paths: [],
    load: async () => {
      throw new ConfigError(["r.yaml:3:1: spec: broken"]);
    },
    onReload: seen.onReload,
  });
  await reloader.reload("SIGHUP");
  const [outcome] = seen.all;
  assert.ok(outcome !== undefined && !outcome.ok);
  assert.deepEqual((outcome.error as ConfigError).problems, ["r.yaml:3:1: spec: broken"]);
  reloader.close();
});

test("file changes trigger a reload: edit in place, replace by rename, new file in a directory, ConfigMap swap", async () => {
  const root = mkdtempSync(join(tmpdir(), "kube-join-reload-"));
  const file = join(root, "bots.yaml");
  const dir = join(root, "resources");
  mkdirSync(dir);
  writeFileSync(file, "a");
  // A ConfigMap mount: name -> ..data/name, ..data -> ..2026_01_01 (swapped atomically).
  const cm = join(root, "configmap");
  mkdirSync(join(cm, "..v1"), { recursive: true });
  writeFileSync(join(cm, "..v1", "tokens.yaml"), "v1");
  symlinkSync("..v1", join(cm, "..data"));
  symlinkSync("..data/tokens.yaml", join(cm, "tokens.yaml"));

  const seen = outcomes();
  const reloader = new ResourceReloader({
    paths: [file, dir, join(cm, "tokens.yaml")],
    load: async () => emptySet([file, join(cm, "tokens.yaml")]),
    onReload: seen.onReload,
    debounceMs: 20,
  });
  await reloader.watch([file]);
  // Waits for a reload, after this point, whose reason matches: robust to an editor's (or the
  // kernel's) extra events landing in a later step.
  const reloadAfter = async (action: () => void, reason: RegExp): Promise<void> => {
    const from = seen.all.length;
    action();
    for (let n = from + 1; ; n++) {
      await seen.count(n);
      if (seen.all.slice(from).some((o) => o.ok && reason.test(o.reason))) return;
    }
  };
  try {
    await reloadAfter(() => writeFileSync(file, "b"), /bots\.yaml/);
    await reloadAfter(() => {
      writeFileSync(join(root, "bots.yaml.tmp"), "c");
      renameSync(join(root, "bots.yaml.tmp"), file);
    }, /bots\.yaml/);
    await reloadAfter(() => writeFileSync(join(dir, "new.yaml"), "d"), /new\.yaml/);
    await reloadAfter(() => {
      mkdirSync(join(cm, "..v2"));
      writeFileSync(join(cm, "..v2", "tokens.yaml"), "v2");
      symlinkSync("..v2", join(cm, "..data_tmp"));
      renameSync(join(cm, "..data_tmp"), join(cm, "..data"));
    }, /\.\.data/);
  } finally {
    reloader.close();
  }
});

test("the service state publishes one snapshot only once both halves are loaded", () => {
  const state = new ServiceState();
  assert.equal(state.ready, false);
  const first = emptySet(["a.yaml"]);
  state.setResources(first);
  assert.equal(state.ready, false, "no snapshot without the CA");
  const authority = {
    clusterName: "c",
    trusted: () => ({ tlsCaCerts: [], sshCaKeys: [] }),
    issueBotCertificates: () => {
      throw new Error("not used");
    },
  };
  state.setAuthority(authority);
  const taken = state.snapshot;
  assert.ok(taken !== undefined);
  assert.equal(taken.resources, first);
  const second = emptySet(["b.yaml"]);
  state.setResources(second);
  assert.equal(taken.resources, first, "a snapshot already taken never changes");
  assert.equal(state.snapshot?.resources, second);
  assert.equal(state.ready, true);
});
