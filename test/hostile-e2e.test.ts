/**
 * Faults and hostile clients against the real `kube-join serve` process (issue 16): an audit
 * trail on a disk that fills up, a path that cannot be opened at start, refused uploads, slow
 * clients, the connection cap, signals during the drain, and a first start killed mid-way.
 */
import { strict as assert } from "node:assert";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { Agent, request as httpRequest } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { DEMO_KEY_FILE, signDemoToken } from "../src/commands/demo-token.ts";
import {
  CLI,
  DEFAULT_CONFIG_YAML,
  DEMO_CLUSTER,
  ensureBuilt,
  runCli,
  startService,
} from "./support/service.ts";
import { joinRequestBody, newBotPublicKeys, type BotPublicKeys } from "./support/join-request.ts";
import {
  generateClusterKey,
  jwksOf,
  mintServiceAccountToken,
  serviceAccountClaims,
} from "./support/jwt.ts";

const demoKey = JSON.parse(readFileSync(DEMO_KEY_FILE, "utf8")) as Record<string, unknown>;

function demoJwt(pod = "tbot-hostile"): string {
  return signDemoToken(demoKey, {
    namespace: "default",
    serviceAccount: "tbot",
    ttlSeconds: 600,
    audience: DEMO_CLUSTER,
    podName: pod,
    nowMs: Date.now(),
  });
}

let keys: BotPublicKeys;
before(async () => {
  await ensureBuilt();
  keys = await newBotPublicKeys("bot");
});

const mounts: string[] = [];
after(() => {
  for (const dir of mounts) {
    spawnSync("umount", ["-l", dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A real tmpfs of `size`; undefined without root (the test skips, and fails under CI=true). */
function tmpfs(size: string): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-hostile-mnt-"));
  const result = spawnSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir]);
  if (result.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    if (process.env["CI"] === "true") {
      throw new Error(`mount -t tmpfs failed (CI=true needs root): ${String(result.stderr)}`);
    }
    return undefined;
  }
  mounts.push(dir);
  return dir;
}

async function join_(
  baseUrl: string,
  pod?: string,
): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const response = await fetch(`${baseUrl}/v1/join`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: joinRequestBody({ token: "example-bot", idToken: demoJwt(pod), keys }),
    signal: AbortSignal.timeout(10_000),
  });
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

async function metric(diagUrl: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${diagUrl}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.split(" ")[1]);
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("audit on a full disk: joins get audit_unavailable, /readyz fails, both recover", async (t) => {
  const mnt = tmpfs("64k");
  if (mnt === undefined) {
    t.skip("cannot mount a tmpfs (needs root)");
    return;
  }
  const auditFile = join(mnt, "audit.log");
  const svc = await startService({
    configYaml: `${DEFAULT_CONFIG_YAML}audit: {file: ${JSON.stringify(auditFile)}}\n`,
  });
  try {
    assert.equal((await join_(svc.baseUrl)).status, 200);
    writeFileSync(join(mnt, "filler"), Buffer.alloc(0));
    // Fill every remaining block.
    const remaining = 64 * 1024 - readFileSync(auditFile).length - 4096;
    writeFileSync(join(mnt, "filler"), Buffer.alloc(Math.max(0, remaining)));
    let refused: Awaited<ReturnType<typeof join_>> | undefined;
    for (let i = 0; i < 40 && refused === undefined; i += 1) {
      const r = await join_(svc.baseUrl);
      if (r.status !== 200) refused = r;
    }
    assert.ok(refused !== undefined, "the disk never filled");
    assert.equal(refused.status, 503);
    assert.equal((refused.body["error"] as { code: string }).code, "audit_unavailable");
    assert.equal(refused.headers.get("retry-after"), "5");
    assert.equal(refused.body["tls_cert"], undefined);
    assert.equal((await fetch(`${svc.diagUrl}/readyz`)).status, 503);
    assert.equal(await metric(svc.diagUrl, "kube_join_audit_sink_healthy"), 0);
    assert.ok(((await metric(svc.diagUrl, "kube_join_audit_write_failures_total")) ?? 0) >= 1);
    const accepted = readFileSync(auditFile, "utf8");
    assert.ok(accepted.endsWith("\n"), "no half-written line");

    unlinkSync(join(mnt, "filler"));
    await eventually(
      async () => (await fetch(`${svc.diagUrl}/readyz`)).status === 200,
      "/readyz to recover",
    );
    assert.equal((await join_(svc.baseUrl)).status, 200);
    assert.equal(await metric(svc.diagUrl, "kube_join_audit_sink_healthy"), 1);
    const lines = readFileSync(auditFile, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.some((l) => l["event"] === "audit.gap"));
    const messages = svc.logs().map((l) => l["msg"]);
    assert.equal(messages.filter((m) => String(m).startsWith("audit trail cannot")).length, 1);
    assert.equal(messages.filter((m) => m === "audit trail writable again").length, 1);
  } finally {
    assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  }
});

test("an audit path that cannot be opened stops the start; with continue, not ready", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-hostile-"));
  writeFileSync(join(dir, "config.yaml"), `${DEFAULT_CONFIG_YAML}audit: {file: ./missing/a.log}\n`);
  const refused = await runCli(["serve", "--config", join(dir, "config.yaml")]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /audit\.file: cannot be opened for appending \(ENOENT\)/);
  assert.equal(spawnSync("ls", [join(dir, "data")]).status, 2, "no CA was created");

  const svc = await startService({
    configYaml: `${DEFAULT_CONFIG_YAML}audit: {file: ./missing/a.log, on_failure: continue}\n`,
  });
  try {
    assert.equal((await fetch(`${svc.diagUrl}/readyz`)).status, 503);
    assert.ok(svc.logs().some((l) => String(l["msg"]).startsWith("audit.on_failure is continue")));
    assert.equal((await join_(svc.baseUrl)).status, 200, "continue: the join goes on");
    spawnSync("mkdir", [join(svc.dir, "missing")]);
    await eventually(
      async () => (await fetch(`${svc.diagUrl}/readyz`)).status === 200,
      "/readyz once the directory exists",
    );
  } finally {
    assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  }
});

interface RawOutcome {
  /** Everything the server sent. */
  readonly received: string;
  /** Bytes of body the client got to send before the server stopped it. */
  readonly sentBytes: number;
  /** Milliseconds from connect until the server closed the connection. */
  readonly closedAfterMs: number;
}

/**
 * A hostile client on a raw socket: sends `head`, then pushes body bytes as fast as the server
 * takes them (`flood`) or one byte every `trickleMs`, until the server closes the connection.
 */
function rawClient(
  baseUrl: string,
  head: string,
  body: { flood: true } | { trickleMs: number; bytes?: Buffer },
): Promise<RawOutcome> {
  const url = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const started = Date.now();
    let received = "";
    let sentBytes = 0;
    let timer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for 40 s; got ${received}`));
    }, 40_000);
    socket.on("connect", () => {
      socket.write(head);
      if ("flood" in body) {
        const chunk = Buffer.alloc(1 << 20, 0x61);
        const pump = (): void => {
          while (!socket.destroyed && sentBytes < 8e9) {
            sentBytes += chunk.length;
            if (!socket.write(chunk)) return;
          }
        };
        socket.on("drain", pump);
        pump();
      } else {
        const bytes = body.bytes ?? Buffer.from("a");
        let i = 0;
        timer = setInterval(() => {
          if (socket.destroyed) return;
          socket.write(bytes.subarray(i % bytes.length, (i % bytes.length) + 1));
          sentBytes += 1;
          i += 1;
        }, body.trickleMs);
      }
    });
    socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
    socket.on("error", () => {}); // EPIPE/ECONNRESET once the server closed: expected
    socket.on("close", () => {
      clearTimeout(guard);
      clearInterval(timer);
      resolve({ received, sentBytes, closedAfterMs: Date.now() - started });
    });
  });
}

function responses(received: string): string[] {
  return received.match(/HTTP\/1\.1 \d{3}/g) ?? [];
}

test("a request refused before its body is read closes the connection: the upload is not read on", async () => {
  const svc = await startService({
    configYaml: `${DEFAULT_CONFIG_YAML}rate_limit: {average: 5, burst: 5, period: 1h}\n`,
  });
  try {
    const huge = "Content-Length: 100000000000\r\n";
    const cases: Array<{ name: string; head: string; status: string }> = [
      {
        name: "415 wrong media type",
        head: `POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n${huge}\r\n`,
        status: "HTTP/1.1 415",
      },
      {
        name: "413 declared too large",
        head: `POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${huge}\r\n`,
        status: "HTTP/1.1 413",
      },
      {
        name: "413 streamed past the limit",
        head: `POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n40000000\r\n`,
        status: "HTTP/1.1 413",
      },
      {
        name: "404 unknown path",
        head: `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${huge}\r\n`,
        status: "HTTP/1.1 404",
      },
      {
        name: "405 wrong method",
        head: `PUT /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${huge}\r\n`,
        status: "HTTP/1.1 405",
      },
      {
        name: "429 rate limited (the bucket of five is spent by the cases above)",
        head: `POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${huge}\r\n`,
        status: "HTTP/1.1 429",
      },
    ];
    for (const c of cases) {
      const outcome = await rawClient(svc.baseUrl, c.head, { flood: true });
      const answers = responses(outcome.received);
      assert.equal(answers.length, 1, `${c.name}: exactly one response, got ${answers.join(", ")}`);
      assert.ok(outcome.received.startsWith(c.status), `${c.name}: ${outcome.received}`);
      assert.match(outcome.received, /\r\nConnection: close\r\n/i, c.name);
      // Socket buffers on loopback hold a few MiB; before the fix a client pushed GBs.
      assert.ok(
        outcome.closedAfterMs < 10_000,
        `${c.name}: closed after ${outcome.closedAfterMs} ms`,
      );
      assert.ok(
        outcome.sentBytes < 256 * 1024 * 1024,
        `${c.name}: the server read ${outcome.sentBytes} bytes after refusing`,
      );
    }
  } finally {
    assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  }
});

test("slow headers and slow bodies are cut at the configured deadlines, within about a second", async () => {
  const svc = await startService({
    configYaml: `${DEFAULT_CONFIG_YAML}headers_timeout: 2s\nrequest_timeout: 4s\n`,
  });
  try {
    const [slowHeaders, slowBody] = await Promise.all([
      rawClient(svc.baseUrl, "POST /v1/join HTTP/1.1\r\nHost: x\r\nX-Slow: ", { trickleMs: 200 }),
      rawClient(
        svc.baseUrl,
        "POST /v1/join HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n",
        { trickleMs: 200, bytes: Buffer.from('{"token":"') },
      ),
    ]);
    // Node checks the deadlines every connectionsCheckingInterval (1 s here, 30 s by default).
    assert.ok(
      slowHeaders.closedAfterMs >= 1900 && slowHeaders.closedAfterMs < 3500,
      `slow headers cut after ${slowHeaders.closedAfterMs} ms (deadline 2 s)`,
    );
    assert.ok(
      slowBody.closedAfterMs >= 3900 && slowBody.closedAfterMs < 5500,
      `slow body cut after ${slowBody.closedAfterMs} ms (deadline 4 s)`,
    );
    for (const outcome of [slowHeaders, slowBody]) {
      assert.ok(responses(outcome.received).length <= 1, outcome.received);
    }
  } finally {
    assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  }
});

test("the connection cap refuses new connections cheaply; an open keep-alive client goes on", async () => {
  const svc = await startService({ configYaml: `${DEFAULT_CONFIG_YAML}max_connections: 8\n` });
  const url = new URL(svc.baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const keepAliveJoin = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const body = joinRequestBody({ token: "example-bot", idToken: demoJwt(), keys });
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: "/v1/join",
          method: "POST",
          agent,
          headers: {
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  const idle: Socket[] = [];
  try {
    assert.equal(await keepAliveJoin(), 200);
    // Seven more connections that send nothing fill the cap of eight.
    for (let i = 0; i < 7; i += 1) {
      const socket = connect(Number(url.port), url.hostname);
      socket.on("error", () => {});
      await new Promise((resolve) => socket.once("connect", resolve));
      idle.push(socket);
    }
    // Let the server accept them all before the ninth arrives.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const ninth = await rawClient(svc.baseUrl, "GET /v1/ca HTTP/1.1\r\nHost: x\r\n\r\n", {
      trickleMs: 1000,
    });
    assert.equal(ninth.received, "", "a connection over the cap gets no answer");
    assert.ok(ninth.closedAfterMs < 1000, `closed after ${ninth.closedAfterMs} ms`);
    assert.equal(await keepAliveJoin(), 200, "the established keep-alive client still joins");
    for (const socket of idle) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal((await join_(svc.baseUrl)).status, 200, "below the cap again");
  } finally {
    for (const socket of idle) socket.destroy();
    agent.destroy();
    assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  }
});

test("signals during the drain are ignored: every request in flight is answered with Connection: close, exit 0", async () => {
  const svc = await startService();
  const url = new URL(svc.baseUrl);
  const body = Buffer.from(joinRequestBody({ token: "example-bot", idToken: demoJwt(), keys }));
  const agent = new Agent({ keepAlive: true });
  // Five joins whose bodies are half sent when the signals arrive: in flight for certain.
  const inFlight = Array.from({ length: 5 }, () => {
    let finish: () => void = () => undefined;
    let sent: () => void = () => undefined;
    const onWire = new Promise<void>((resolve) => (sent = resolve));
    const done = new Promise<{ status: number; connection: string | undefined }>(
      (resolve, reject) => {
        const req = httpRequest(
          {
            host: url.hostname,
            port: url.port,
            path: "/v1/join",
            method: "POST",
            agent,
            headers: { "content-type": "application/json", "content-length": body.length },
          },
          (res) => {
            res.resume();
            res.on("end", () =>
              resolve({ status: res.statusCode ?? 0, connection: res.headers.connection }),
            );
          },
        );
        req.on("error", reject);
        req.write(body.subarray(0, 100), () => sent());
        finish = () => req.end(body.subarray(100));
      },
    );
    return { done, onWire, finish: () => finish() };
  });
  await Promise.all(inFlight.map((r) => r.onWire));
  // A round trip on another connection: the server has accepted the five by now.
  assert.equal((await fetch(`${svc.baseUrl}/v1/ca`)).status, 200);
  svc.child.kill("SIGTERM");
  await svc.waitForLog((l) => l["msg"] === "shutting down: finishing requests in flight");
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    svc.child.kill(signal);
    await svc.waitForLog(
      (l) =>
        l["msg"] === "signal during shutdown: ignored, the drain goes on" && l["signal"] === signal,
    );
  }
  for (const r of inFlight) r.finish();
  const results = await Promise.all(inFlight.map((r) => r.done));
  agent.destroy();
  for (const r of results) {
    assert.equal(r.status, 200);
    assert.equal(r.connection, "close");
  }
  assert.deepEqual(await svc.exited(), { code: 0, signal: null });
});

test("SIGTERM while the first start writes the CA: it stops cleanly, exit 0, the next start is ready", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-hostile-"));
  writeFileSync(join(dir, "config.yaml"), DEFAULT_CONFIG_YAML);
  const child = spawn(process.execPath, [CLI, "serve", "--config", join(dir, "config.yaml")], {
    cwd: dir,
    // Each step of writing the CA files sleeps 300 ms: a wide window for the signal.
    env: { ...process.env, KUBE_JOIN_TEST_WRITE_STEP_DELAY_MS: "300" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  // The staging directory appears once the CA is being written.
  await eventually(
    async () =>
      (spawnSync("ls", ["-a", join(dir, "data")]).stdout?.toString() ?? "").includes(
        ".kube-join-new.",
      ),
    "the CA files to be staged",
  );
  child.kill("SIGTERM");
  assert.deepEqual(await exited, { code: 0, signal: null }, stderr);
  assert.match(stderr, /stop requested during start-up/);
  const svc = await startService({ dir, configYaml: DEFAULT_CONFIG_YAML });
  try {
    assert.equal((await join_(svc.baseUrl)).status, 200);
  } finally {
    assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  }
});

test("audit on stdout and stdout closed (EPIPE): joins get audit_unavailable, /readyz fails", async () => {
  const svc = await startService();
  try {
    assert.equal((await join_(svc.baseUrl)).status, 200);
    // The reader of the service's stdout goes away: its next audit write fails with EPIPE.
    svc.child.stdout?.destroy();
    let refused: Awaited<ReturnType<typeof join_>> | undefined;
    for (let i = 0; i < 5 && refused === undefined; i += 1) {
      const r = await join_(svc.baseUrl);
      if (r.status !== 200) refused = r;
    }
    assert.ok(refused !== undefined, "joins went on with stdout closed");
    assert.equal((refused.body["error"] as { code: string }).code, "audit_unavailable");
    assert.equal((await fetch(`${svc.diagUrl}/readyz`)).status, 503);
    await svc.waitForLog((l) => String(l["msg"]).startsWith("audit trail cannot be written"));
  } finally {
    assert.deepEqual(await svc.stop(), { code: 0, signal: null });
  }
});

test("max_keys_without_kid reaches the verifier: a kid-less JWT past the bound is refused, within it joins", async () => {
  const clusterKeys = Array.from({ length: 5 }, () => generateClusterKey("ES256"));
  const resources = `kind: bot
version: v1
metadata: {name: many}
spec: {roles: [access]}
---
kind: token
version: v2
metadata: {name: many-keys}
spec:
  roles: [Bot]
  bot_name: many
  join_method: kubernetes
  kubernetes:
    type: static_jwks
    static_jwks: {jwks: '${jwksOf(...clusterKeys)}'}
    allow: [{service_account: "default:tbot"}]
`;
  const config = (extra: string) =>
    `cluster_name: ${DEMO_CLUSTER}\nlisten_addr: 127.0.0.1:0\ndiag_addr: 127.0.0.1:0\nresources: [./r.yaml]\ndata_dir: ./data\n${extra}`;
  const jwt = mintServiceAccountToken(
    clusterKeys[4]!,
    serviceAccountClaims({ audience: DEMO_CLUSTER, issuedAtMs: Date.now() }),
    { kid: undefined },
  );
  const post = async (baseUrl: string) => {
    const r = await fetch(`${baseUrl}/v1/join`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: joinRequestBody({ token: "many-keys", idToken: jwt, keys }),
    });
    return { status: r.status, body: (await r.json()) as { error?: { message: string } } };
  };
  const bounded = await startService({
    configYaml: config(""),
    extraFiles: { "r.yaml": resources },
  });
  try {
    const refused = await post(bounded.baseUrl);
    assert.equal(refused.status, 401);
    assert.match(
      refused.body.error?.message ?? "",
      /more than the 4 tried for a token without one/,
    );
  } finally {
    assert.deepEqual(await bounded.stop(), { code: 0, signal: null });
  }
  const raised = await startService({
    configYaml: config("max_keys_without_kid: 5\n"),
    extraFiles: { "r.yaml": resources },
  });
  try {
    assert.equal((await post(raised.baseUrl)).status, 200);
  } finally {
    assert.deepEqual(await raised.stop(), { code: 0, signal: null });
  }
});
