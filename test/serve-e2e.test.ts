/**
 * `kube-join serve` as a real process (the built CLI, see test/support/service.ts): joins whose
 * certificates real OpenSSL and ssh-keygen accept, hot reload, graceful shutdown, restart keeping
 * the CA, TLS, start-up failures, and no JWT in any log or audit line.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { DEMO_KEY_FILE, signDemoToken } from "../src/commands/demo-token.ts";
import {
  DEMO_CLUSTER,
  DEMO_RESOURCES,
  ensureBuilt,
  runCli,
  startService,
  type ServiceProcess,
} from "./support/service.ts";
import { systemTool } from "./support/system-tools.ts";
import { writeLoopbackServerCertificate } from "./support/tls.ts";
import {
  joinRequestBody,
  newBotPublicKeys,
  postJoin,
  type BotPublicKeys,
  type JoinHttpResult,
} from "./support/join-request.ts";

const openssl = systemTool("openssl", "openssl");
const sshKeygen = systemTool("ssh-keygen", "openssh-client");

const demoKey = JSON.parse(readFileSync(DEMO_KEY_FILE, "utf8")) as Record<string, unknown>;
const BOT_YAML = readFileSync(join(DEMO_RESOURCES, "bot.yaml"), "utf8");
const TOKEN_YAML = readFileSync(join(DEMO_RESOURCES, "bot-token.yaml"), "utf8");

function demoJwt(serviceAccount = "tbot", namespace = "default"): string {
  return signDemoToken(demoKey, {
    namespace,
    serviceAccount,
    ttlSeconds: 600,
    audience: DEMO_CLUSTER,
    podName: "tbot-e2e",
    nowMs: Date.now(),
  });
}

interface BotKeys extends BotPublicKeys {
  /** Where the test writes what it checks with openssl and ssh-keygen. */
  readonly dir: string;
}

async function botKeys(): Promise<BotKeys> {
  return { dir: mkdtempSync(join(tmpdir(), "kube-join-bot-")), ...(await newBotPublicKeys("bot")) };
}

function joinBody(keys: BotKeys, jwt: string, token = "example-bot"): string {
  return joinRequestBody({ token, idToken: jwt, keys });
}

async function get(url: string): Promise<JoinHttpResult> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function errorCode(result: JoinHttpResult): unknown {
  return (result.body["error"] as { code?: unknown } | undefined)?.code;
}

before(() => ensureBuilt());

test(
  "a join's certificates verify with openssl and ssh-keygen against GET /v1/ca; restart keeps the CA",
  { skip: openssl.skip || sshKeygen.skip },
  async () => {
    const svc = await startService();
    let restarted: ServiceProcess | undefined;
    try {
      const keys = await botKeys();
      // The JWT from the CLI, as the README does it.
      const demo = await runCli(["demo-token", "--service-account", "default:tbot"]);
      assert.equal(demo.code, 0, demo.stderr);
      const jwt = demo.stdout.trim();
      const joined = await postJoin(svc.baseUrl, joinBody(keys, jwt));
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      assert.equal(joined.body["bot_name"], "example");
      assert.equal(joined.body["user"], "bot-example");

      const ca = await get(`${svc.baseUrl}/v1/ca`);
      assert.equal(ca.status, 200);
      const caPems = ca.body["tls_ca_certs"] as string[];
      const sshCaKeys = ca.body["ssh_ca_keys"] as string[];
      assert.deepEqual(joined.body["tls_ca_certs"], caPems);
      writeFileSync(join(keys.dir, "ca.pem"), caPems.join("\n"));
      writeFileSync(join(keys.dir, "bot.pem"), String(joined.body["tls_cert"]));
      const verified = execFileSync(openssl.path, [
        "verify",
        "-CAfile",
        join(keys.dir, "ca.pem"),
        join(keys.dir, "bot.pem"),
      ]).toString();
      assert.match(verified, /bot\.pem: OK/);

      writeFileSync(join(keys.dir, "id_bot-cert.pub"), `${String(joined.body["ssh_cert"])}\n`);
      const listing = execFileSync(sshKeygen.path, [
        "-L",
        "-f",
        join(keys.dir, "id_bot-cert.pub"),
      ]).toString();
      assert.match(listing, /user certificate/);
      assert.match(listing, /Key ID: "bot-example"/);
      assert.match(listing, /^\s+root$/m);
      writeFileSync(join(keys.dir, "ssh_ca.pub"), `${sshCaKeys[0]}\n`);
      const caFingerprint = execFileSync(sshKeygen.path, ["-l", "-f", join(keys.dir, "ssh_ca.pub")])
        .toString()
        .split(" ")[1];
      assert.ok(
        caFingerprint !== undefined && listing.includes(`Signing CA: ED25519 ${caFingerprint}`),
        listing,
      );

      const stopped = await svc.stop();
      assert.deepEqual(stopped, { code: 0, signal: null });

      // Same data directory: same CA, and the earlier certificate still verifies.
      restarted = await startService({ dir: svc.dir });
      const again = await get(`${restarted.baseUrl}/v1/ca`);
      assert.deepEqual(again.body, ca.body);
      writeFileSync(join(keys.dir, "ca2.pem"), (again.body["tls_ca_certs"] as string[]).join("\n"));
      execFileSync(openssl.path, [
        "verify",
        "-CAfile",
        join(keys.dir, "ca2.pem"),
        join(keys.dir, "bot.pem"),
      ]);
    } finally {
      await svc.stop();
      await restarted?.stop();
    }
  },
);

test("file changes and SIGHUP reload; a broken file keeps the previous set serving", async () => {
  const svc = await startService({
    configYaml: `cluster_name: ${DEMO_CLUSTER}
listen_addr: 127.0.0.1:0
diag_addr: 127.0.0.1:0
resources: [./resources]
data_dir: ./data
`,
    extraFiles: { "resources/bot.yaml": BOT_YAML, "resources/bot-token.yaml": TOKEN_YAML },
  });
  try {
    const keys = await botKeys();
    const second = TOKEN_YAML.replace("name: example-bot", "name: second-bot");
    const reloads = (): number =>
      svc.logs().filter((l) => l["msg"] === "resources reloaded").length;

    // A new file in the directory: picked up without a signal.
    assert.equal(
      errorCode(await postJoin(svc.baseUrl, joinBody(keys, demoJwt(), "second-bot"))),
      "token_not_found",
    );
    writeFileSync(join(svc.dir, "resources/second.yaml"), second);
    await svc.waitForLog((l) => l["msg"] === "resources reloaded");
    const viaSecond = await postJoin(svc.baseUrl, joinBody(keys, demoJwt(), "second-bot"));
    assert.equal(viaSecond.status, 200, JSON.stringify(viaSecond.body));

    // A broken edit: logged with file:line, counted, and the previous set keeps serving.
    writeFileSync(join(svc.dir, "resources/second.yaml"), `${second}\n    alow: []\n  bogus: [\n`);
    const failed = await svc.waitForLog(
      (l) => l["msg"] === "resource reload failed; the previous resources keep serving",
    );
    const problems = failed["problems"] as string[];
    assert.ok(
      problems.some((p) => /second\.yaml:\d+:\d+: /.test(p)),
      JSON.stringify(problems),
    );
    assert.equal(
      (await postJoin(svc.baseUrl, joinBody(keys, demoJwt(), "second-bot"))).status,
      200,
    );
    assert.equal((await get(`${svc.diagUrl}/readyz`)).status, 200);
    const metrics = await (await fetch(`${svc.diagUrl}/metrics`)).text();
    assert.match(metrics, /kube_join_reloads_total\{result="failure"\} 1/);

    // SIGHUP after fixing it by hand (removing the file): a good reload, without the token.
    const before = reloads();
    execFileSync("rm", [join(svc.dir, "resources/second.yaml")]);
    svc.child.kill("SIGHUP");
    await svc.waitForLog((l) => l["msg"] === "resources reloaded" && l["reason"] === "SIGHUP");
    assert.ok(reloads() > before);
    assert.equal(
      errorCode(await postJoin(svc.baseUrl, joinBody(keys, demoJwt(), "second-bot"))),
      "token_not_found",
    );
    assert.equal((await postJoin(svc.baseUrl, joinBody(keys, demoJwt()))).status, 200);
  } finally {
    assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  }
});

test("SIGTERM: requests in flight complete, new connections are refused, exit code 0", async () => {
  const svc = await startService();
  const keys = await botKeys();
  const url = new URL(`${svc.baseUrl}/v1/join`);
  const body = Buffer.from(joinBody(keys, demoJwt()));
  // Three requests whose bodies are half sent when the signal arrives: in flight for certain.
  const inFlight = [0, 1, 2].map(() => {
    let finish: () => void = () => undefined;
    let connected: () => void = () => undefined;
    const sent = new Promise<void>((resolve) => (connected = resolve));
    const done = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: "POST",
          headers: { "Content-Type": "application/json", "Content-Length": body.length },
        },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => (text += c.toString()));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      req.write(body.subarray(0, 100), () => connected());
      finish = () => req.end(body.subarray(100));
    });
    return { done, sent, finish: () => finish() };
  });
  // Once the three half-bodies are on the wire, a full round trip on a fourth connection means
  // the server has accepted the earlier ones (its accept queue is first in, first out).
  await Promise.all(inFlight.map((r) => r.sent));
  assert.equal((await get(`${svc.baseUrl}/v1/ca`)).status, 200);
  svc.child.kill("SIGTERM");
  await svc.waitForLog((l) => l["msg"] === "shutting down: finishing requests in flight");
  await assert.rejects(fetch(`${svc.baseUrl}/v1/ca`), "the listener no longer accepts");
  for (const r of inFlight) r.finish();
  const results = await Promise.all(inFlight.map((r) => r.done));
  for (const r of results) assert.equal(r.status, 200, r.text);
  assert.deepEqual(await svc.exited(), { code: 0, signal: null });
  assert.equal(
    svc
      .stdout()
      .split("\n")
      .filter((l) => l.includes('"TJ001I"')).length,
    3,
  );
});

test("the JWT appears in no log or audit line, whatever the outcome", async () => {
  const svc = await startService({
    configYaml: `cluster_name: ${DEMO_CLUSTER}
listen_addr: 127.0.0.1:0
diag_addr: 127.0.0.1:0
resources: [${JSON.stringify(DEMO_RESOURCES)}]
data_dir: ./data
audit: {file: ./audit.log}
log_level: trace
`,
  });
  const keys = await botKeys();
  const good = demoJwt();
  const otherSa = demoJwt("intruder");
  const jwts = [good, otherSa, `${good}x`, good.split(".").slice(0, 2).join(".")];
  const attempts = [
    joinBody(keys, good),
    joinBody(keys, otherSa),
    joinBody(keys, `${good}x`),
    joinBody(keys, good.split(".").slice(0, 2).join(".")),
    joinBody(keys, good, "no-such-token"),
    // A caller who pastes the JWT into the token field.
    joinBody(keys, good, good),
    JSON.stringify({ token: "example-bot", id_token: good }),
    `{"token": "example-bot", "id_token": "${good}"`,
  ];
  for (const body of attempts) await postJoin(svc.baseUrl, body).catch(() => undefined);
  assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  const audit = readFileSync(join(svc.dir, "audit.log"), "utf8");
  assert.ok(audit.split("\n").filter(Boolean).length >= 6, audit);
  for (const [name, text] of [
    ["stdout", svc.stdout()],
    ["stderr", svc.stderr()],
    ["audit", audit],
  ] as const) {
    for (const jwt of jwts) {
      const [header, payload, signature] = jwt.split(".");
      for (const part of [jwt, payload, signature]) {
        if (part === undefined || part.length < 20) continue;
        assert.equal(text.includes(part), false, `${name} holds part of a JWT`);
      }
      assert.ok(header !== undefined);
    }
  }
});

test("HTTPS when tls is configured; TLS errors stop start-up", { skip: openssl.skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-tls-"));
  const serverCa = writeLoopbackServerCertificate(openssl.path, dir);
  const svc = await startService({
    dir,
    configYaml: `cluster_name: ${DEMO_CLUSTER}
listen_addr: 127.0.0.1:0
diag_addr: 127.0.0.1:0
tls: {cert_file: server.crt, key_file: server.key}
resources: [${JSON.stringify(DEMO_RESOURCES)}]
data_dir: ./data
`,
  });
  try {
    assert.match(svc.baseUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
    const url = new URL(`${svc.baseUrl}/v1/ca`);
    const status = await new Promise<number>((resolve, reject) => {
      httpsRequest(
        { host: url.hostname, port: url.port, path: url.pathname, ca: serverCa },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      )
        .on("error", reject)
        .end();
    });
    assert.equal(status, 200);
    assert.equal(svc.stderr().includes("PLAIN HTTP"), false);
  } finally {
    assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  }

  writeFileSync(
    join(dir, "bad.key"),
    "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
  );
  writeFileSync(
    join(dir, "config.yaml"),
    `cluster_name: ${DEMO_CLUSTER}\nlisten_addr: 127.0.0.1:0\ndiag_addr: 127.0.0.1:0\ntls: {cert_file: server.crt, key_file: bad.key}\nresources: [${JSON.stringify(DEMO_RESOURCES)}]\n`,
  );
  const bad = await runCli(["serve", "--config", join(dir, "config.yaml")]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /bad\.key: tls: not a usable certificate and key pair/);
});

test("plain HTTP on a non-loopback address starts with a loud warning", async () => {
  const svc = await startService({
    configYaml: `cluster_name: ${DEMO_CLUSTER}
listen_addr: 0.0.0.0:0
diag_addr: 127.0.0.1:0
resources: [${JSON.stringify(DEMO_RESOURCES)}]
data_dir: ./data
`,
  });
  try {
    const warning = svc
      .logs()
      .find((l) => String(l["msg"]).includes("PLAIN HTTP ON A NON-LOOPBACK ADDRESS"));
    assert.equal(warning?.["level"], "warn");
  } finally {
    await svc.stop();
  }
});

test("bad config and bad resources stop start-up with exit 1 and file:line:col", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-bad-"));
  writeFileSync(
    join(dir, "config.yaml"),
    `cluster_name: ${DEMO_CLUSTER}\nresources: [r.yaml]\nlisen_addr: 0.0.0.0:1\n`,
  );
  const badConfig = await runCli(["serve", "--config", join(dir, "config.yaml")]);
  assert.equal(badConfig.code, 1);
  assert.match(
    badConfig.stderr,
    // stderr is a JSON log line, so the hint's quotes come escaped.
    /config\.yaml:3:1: lisen_addr: unknown field \(did you mean \\"listen_addr\\"\?\)/,
  );

  writeFileSync(
    join(dir, "config.yaml"),
    `cluster_name: ${DEMO_CLUSTER}\nlisten_addr: 127.0.0.1:0\ndiag_addr: 127.0.0.1:0\nresources: [r.yaml]\ndata_dir: ./data\n`,
  );
  writeFileSync(join(dir, "r.yaml"), `${BOT_YAML}---\n${TOKEN_YAML.replace("allow:", "alow:")}`);
  const badResources = await runCli(["serve", "--config", join(dir, "config.yaml")]);
  assert.equal(badResources.code, 1);
  assert.match(badResources.stderr, /r\.yaml:\d+:\d+: spec\.kubernetes\.alow/);

  const usage = await runCli(["serve", "--bogus"]);
  assert.equal(usage.code, 2);
});
