import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { strict as assert } from "node:assert";
import { main } from "../src/cli.ts";
import { summarize } from "../src/commands/check.ts";
import { parseResources } from "../src/resources/load.ts";

const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;
const GUIDE = join(FIXTURES, "guide");
const BROKEN = join(FIXTURES, "resources", "broken");
const VALID = join(FIXTURES, "resources", "valid");

/** Runs `kube-join ARGS...` in-process, capturing what it prints. */
async function kubeJoin(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...parts: unknown[]) => void out.push(parts.join(" "));
  console.error = (...parts: unknown[]) => void err.push(parts.join(" "));
  try {
    const code = await main(["check", ...args]);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

test("check accepts the guide's files and prints the summary on stdout, exit 0", async () => {
  const { code, stdout, stderr } = await kubeJoin(
    join(GUIDE, "bot.yaml"),
    join(GUIDE, "bot-token.yaml"),
  );
  assert.equal(stderr, "");
  assert.equal(code, 0);
  assert.equal(
    stdout,
    [
      "Bots (1):",
      "  example",
      "    roles: (none)",
      "    logins: (none)",
      "    max_session_ttl: 12h",
      "Tokens (1):",
      "  example-bot",
      "    roles: Bot; bot: example",
      "    expires: never",
      "    join_method: kubernetes, type: static_jwks",
      "    key: BPlcMy7AywKBfLhl67WEfBoRklvuovLWXk-y79NbOxc (RSA, RS256)",
      "    allow: default:tbot",
      "OK: 1 bot(s) and 1 token(s) from 2 files",
    ].join("\n"),
  );
});

test("check summarizes a directory: logins, key ids, oidc issuers, globs, other join methods, warnings", async () => {
  const { code, stdout, stderr } = await kubeJoin(VALID);
  assert.equal(stderr, "");
  assert.equal(code, 0);
  const lines = stdout.split("\n");
  for (const expected of [
    "  deployer",
    "    roles: access, editor",
    "    logins: root, ubuntu",
    "    max_session_ttl: 1h30m",
    "    expires: 2099-12-31T23:59:59.000Z",
    "    key: 06d30cabe6da1effbec89224c2bdf6129357bf7c (RSA, RS256)",
    "    key: fa7a88de560a0c3bc4f643a61698e9645026e1d4 (RSA, RS256)",
    "    allow: deploy:deployer",
    "    join_method: kubernetes, type: oidc",
    "    issuer: https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
    "    allow: namespace ci-*, name runner-? (glob)",
    '    join_method: github (loaded, but only "kubernetes" joins through kube-join)',
    "Warnings (2):",
    `  ${join(VALID, "tokens.yaml")}:157:1: kind: "role" is not a kind kube-join uses: skipped`,
    // The real EKS JWKS of the fixture publishes 13 RSA keys (EKS tokens always name their kid).
    "  token eks-deployer: its static JWKS has 13 keys of one type, more than the 4 a JWT without a kid (kube < 1.16) is tried against (max_keys_without_kid): such a JWT signed by another of them gets jwt_signature_invalid",
    "OK: 2 bot(s) and 3 token(s) from 2 files, 2 warning(s)",
  ]) {
    assert.ok(lines.includes(expected), `missing line ${JSON.stringify(expected)} in\n${stdout}`);
  }
  assert.equal(lines.filter((l) => l.startsWith("    key: ")).length, 13);
});

test("check prints every problem of broken files on stderr with file:line:col, exit 1", async () => {
  const { code, stdout, stderr } = await kubeJoin(BROKEN);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  const bots = join(BROKEN, "bots.yaml");
  const tokens = join(BROKEN, "tokens.yaml");
  assert.deepEqual(stderr.split("\n"), [
    `${bots}:7:3: spec.max_session_ttl: invalid duration "12 hours": use a number with a unit, e.g. "12h", "30m", "1h30m", "90s" or "500ms"`,
    `${tokens}:9:3: spec.kubernetes.allow: at least one rule must be set`,
    `${tokens}:12:7: spec.kubernetes.static_jwks.jwks: not valid JSON (unexpected '#'). A line starting with '#' inside the jwks block is part of the JSON text, not a YAML comment: remove it.`,
    `${tokens}:15:5: spec.kubernetes.alow: unknown field (did you mean "allow"?); known fields here: type, allow, static_jwks, oidc`,
    `${tokens}:24:3: spec.bot_name: names no loaded bot "nobody" (bots loaded: "deployer")`,
    `${tokens}:27:5: spec.kubernetes.type: "in_cluster" is not supported: it verifies tokens through the Kubernetes API server's TokenReview API, and kube-join does not talk to a Kubernetes API server; use one of the supported types "static_jwks" or "oidc"`,
    `${tokens}:29:9: spec.kubernetes.allow[0].service_account: must be "namespace:name" (exactly one ":" with a namespace and a service account name), got "default:"`,
    "",
    "7 problems: nothing would be loaded.",
  ]);
});

test("check rejects the guide's template (# line in the jwks block), exit 1", async () => {
  const { code, stderr } = await kubeJoin(
    join(GUIDE, "bot.yaml"),
    join(GUIDE, "bot-token-template.yaml"),
  );
  assert.equal(code, 1);
  assert.match(
    stderr,
    /bot-token-template\.yaml:16:7: spec\.kubernetes\.static_jwks\.jwks: not valid JSON .* not a YAML comment: remove it\.\n\n1 problem: nothing would be loaded\.$/,
  );
});

test("check usage: no path or an unknown option exits 2; --help exits 0", async () => {
  const none = await kubeJoin();
  assert.equal(none.code, 2);
  assert.match(
    none.stderr,
    /^kube-join check: no PATH given\n\nUsage: kube-join check \[--max-keys-without-kid N\] PATH\.\.\./,
  );
  const option = await kubeJoin("--strict", GUIDE);
  assert.equal(option.code, 2);
  assert.match(option.stderr, /unknown option "--strict"/);
  const help = await kubeJoin("--help");
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: kube-join check \[--max-keys-without-kid N\] PATH\.\.\./);
});

test("check reports a missing path as a problem, exit 1", async () => {
  const { code, stderr } = await kubeJoin("--", join(FIXTURES, "no-such-dir"));
  assert.equal(code, 1);
  assert.equal(
    stderr,
    `${join(FIXTURES, "no-such-dir")}: cannot read: no such file or directory\n\n1 problem: nothing would be loaded.`,
  );
});

test("the summary marks tokens already expired at the given time", () => {
  const set = parseResources([
    {
      file: "t.yaml",
      text: [
        "kind: token",
        "version: v2",
        "metadata: {name: old, expires: '2020-01-01T00:00:00Z'}",
        "spec: {roles: [Bot], bot_name: b, join_method: github}",
        "---",
        "kind: bot",
        "version: v1",
        "metadata: {name: b}",
        "spec: {roles: []}",
      ].join("\n"),
    },
  ]);
  const summary = summarize(set, Date.UTC(2026, 0, 1));
  assert.ok(
    summary.includes(
      "    expires: 2020-01-01T00:00:00.000Z (EXPIRED: every join gets token_expired)",
    ),
    summary,
  );
});

test("check warns about a static JWKS with more keys than a kid-less JWT is tried against", async () => {
  const keys = Array.from({ length: 5 }, (_, i) => {
    const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    return { ...publicKey.export({ format: "jwk" }), kid: `k${i}`, use: "sig", alg: "ES256" };
  });
  const text = [
    "kind: bot",
    "version: v1",
    "metadata: {name: b}",
    "spec: {roles: []}",
    "---",
    "kind: token",
    "version: v2",
    "metadata: {name: many-keys}",
    "spec:",
    "  roles: [Bot]",
    "  bot_name: b",
    "  join_method: kubernetes",
    "  kubernetes:",
    "    type: static_jwks",
    `    static_jwks: {jwks: '${JSON.stringify({ keys })}'}`,
    '    allow: [{service_account: "default:tbot"}]',
  ].join("\n");
  const set = parseResources([{ file: "t.yaml", text }]);
  const warned = summarize(set, Date.UTC(2026, 0, 1));
  assert.match(
    warned,
    /token many-keys: its static JWKS has 5 keys of one type, more than the 4 a JWT without a kid \(kube < 1\.16\) is tried against \(max_keys_without_kid\)/,
  );
  assert.match(warned, /, 1 warning\(s\)$/);
  const raised = summarize(set, Date.UTC(2026, 0, 1), { maxKeysWithoutKid: 5 });
  assert.doesNotMatch(raised, /Warnings/);

  const dir = mkdtempSync(join(tmpdir(), "kube-join-check-"));
  writeFileSync(join(dir, "t.yaml"), text);
  const cli = await kubeJoin("--max-keys-without-kid", "3", join(dir, "t.yaml"));
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, /more than the 3 a JWT without a kid/);
  assert.equal((await kubeJoin("--max-keys-without-kid", "x", join(dir, "t.yaml"))).code, 2);
});
