// The bench's paced load generator: that it sends what it says, in order, and that its latencies
// count from each request's scheduled start (lower bounds only: no speed is asserted).
import { strict as assert } from "node:assert";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, describe, test } from "node:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pacedLoad, quantile, type PacedResultJson } from "../bench/paced-client.ts";
import { run } from "../bench/processes.ts";

type Handler = (req: IncomingMessage, body: string, res: ServerResponse) => void;

async function listen(handler: Handler): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => handler(req, Buffer.concat(chunks).toString("utf8"), res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

function reply(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, {
    "Content-Type": "text/plain",
    "Content-Length": Buffer.byteLength(text),
  });
  res.end(text);
}

const servers: Server[] = [];
after(() => {
  for (const server of servers) server.close();
});

async function server(handler: Handler): Promise<number> {
  const { server, port } = await listen(handler);
  servers.push(server);
  return port;
}

/** A paced load on `/v1/join` of a test server. */
function load(
  port: number,
  pace: { rate: number; seconds: number; connections: number; bodies: string[] },
) {
  return pacedLoad({ port, path: "/v1/join", ...pace });
}

describe("pacedLoad", () => {
  test("sends rate x seconds requests, each body once, and counts 2xx", async () => {
    const seen: string[] = [];
    const port = await server((req, body, res) => {
      assert.equal(req.method, "POST");
      assert.equal(req.url, "/v1/join");
      assert.equal(req.headers["content-type"], "application/json");
      seen.push(body);
      reply(res, 200, `{"echo":${body}}`);
    });
    const bodies = Array.from({ length: 40 }, (_, i) => JSON.stringify({ n: i, text: "é" }));
    const result = await load(port, { rate: 100, seconds: 0.4, connections: 2, bodies });
    assert.equal(result.ok, 40);
    assert.equal(result.failed, 0);
    assert.equal(result.latenciesMs.length, 40);
    assert.ok(result.latenciesMs.every((ms) => ms > 0));
    // Two connections interleave, so arrival order may swap neighbours; every body came once.
    assert.deepEqual([...seen].sort(), [...bodies].sort());
  });

  test("wraps around the bodies when there are fewer than requests", async () => {
    const seen: string[] = [];
    const port = await server((_req, body, res) => {
      seen.push(body);
      reply(res, 200, "ok");
    });
    const result = await load(port, {
      rate: 100,
      seconds: 0.1,
      connections: 1,
      bodies: ["a", "b", "c"],
    });
    assert.equal(result.ok, 10);
    assert.deepEqual(seen, ["a", "b", "c", "a", "b", "c", "a", "b", "c", "a"]);
  });

  test("a warm-up runs the same schedule first and is not counted, but its failures are", async () => {
    const seen: string[] = [];
    const port = await server((_req, body, res) => {
      seen.push(body);
      // The warm-up's first answer is a refusal; the counted ones all succeed.
      reply(res, seen.length === 1 ? 401 : 200, "ok");
    });
    const bodies = Array.from({ length: 20 }, (_, i) => `b${i}`);
    let countingAt = -1;
    const result = await pacedLoad({
      port,
      path: "/v1/join",
      rate: 100,
      seconds: 0.1,
      warmupSeconds: 0.1,
      connections: 1,
      bodies,
      onCounting: () => (countingAt = seen.length),
    });
    assert.deepEqual(seen, bodies);
    assert.equal(result.latenciesMs.length, 10);
    assert.equal(result.fromWriteMs.length, 10);
    assert.equal(result.ok, 10);
    assert.equal(result.failed, 1);
    // Told when the first counted request fell due, 0.1 s in: the warm-up's ten due by then (a
    // stalled answer may hold back the last few of them), and no counted one but the first.
    assert.ok(countingAt >= 5 && countingAt <= 11, `counting at request ${countingAt}`);
  });

  test("counts answers other than 2xx as failed, not ok", async () => {
    let n = 0;
    const port = await server((_req, _body, res) => {
      n++;
      reply(res, n % 2 === 0 ? 401 : 200, '{"error":"x"}');
    });
    const result = await load(port, { rate: 100, seconds: 0.1, connections: 1, bodies: ["{}"] });
    assert.deepEqual([result.ok, result.failed], [5, 5]);
  });

  test("latency includes the server's time: a 30 ms answer is never measured below 30 ms", async () => {
    const port = await server((_req, _body, res) => {
      setTimeout(() => reply(res, 200, "ok"), 30);
    });
    const result = await load(port, { rate: 40, seconds: 0.25, connections: 2, bodies: ["{}"] });
    assert.equal(result.ok, 10);
    assert.ok(Math.min(...result.latenciesMs) >= 29, `min ${Math.min(...result.latenciesMs)}`);
  });

  test("a stall counts against the requests queued behind it (from their scheduled start)", async () => {
    let n = 0;
    const port = await server((_req, _body, res) => {
      n++;
      // The first answer takes 300 ms; at 50/s on one connection the next four fall due meanwhile.
      setTimeout(() => reply(res, 200, "ok"), n === 1 ? 300 : 0);
    });
    const result = await load(port, { rate: 50, seconds: 0.2, connections: 1, bodies: ["{}"] });
    const [first, second] = result.latenciesMs;
    assert.ok(first! >= 299, `first ${first}`);
    // Scheduled 20 ms after the first, written only after the first answer at about 300 ms.
    assert.ok(second! >= 279, `second ${second}`);
    assert.ok(result.late >= 4, `late ${result.late}`);
    // Counted from its write instead, the second request did not wait for the first.
    assert.ok(result.fromWriteMs[1]! < second!, `from write ${result.fromWriteMs[1]}`);
    for (let i = 0; i < result.latenciesMs.length; i++) {
      assert.ok(result.fromWriteMs[i]! <= result.latenciesMs[i]!, `request ${i}`);
    }
  });

  test("refuses a response it cannot frame (no Content-Length)", async () => {
    const port = await server((_req, _body, res) => {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("chunked, no length");
    });
    await assert.rejects(
      load(port, { rate: 10, seconds: 0.1, connections: 1, bodies: ["{}"] }),
      /unreadable response/,
    );
  });

  test("refuses a connection the server closes before the run ends", async () => {
    const port = await server((req) => {
      req.socket.destroy();
    });
    await assert.rejects(
      load(port, { rate: 10, seconds: 0.3, connections: 1, bodies: ["{}"] }),
      /closed early|ECONNRESET|EPIPE/,
    );
  });

  test("rejects a rate, duration or connection count that cannot pace anything", async () => {
    for (const bad of [
      { rate: 0, seconds: 1, connections: 1 },
      { rate: 10, seconds: 0, connections: 1 },
      { rate: 10, seconds: 1, connections: 0 },
      { rate: 10, seconds: 1, connections: 1.5 },
    ]) {
      await assert.rejects(
        pacedLoad({ port: 1, path: "/", bodies: ["{}"], ...bad }),
        RangeError,
        JSON.stringify(bad),
      );
    }
  });
});

describe("paced-client.ts as a process (how the bench runs each round)", () => {
  test("reads its options from a JSON file and prints the result as JSON", async () => {
    const port = await server((_req, body, res) => reply(res, body === "{}" ? 200 : 400, "ok"));
    const dir = mkdtempSync(join(tmpdir(), "kube-join-paced-"));
    try {
      const file = join(dir, "options.json");
      writeFileSync(
        file,
        JSON.stringify({
          port,
          path: "/v1/join",
          rate: 50,
          seconds: 0.2,
          connections: 2,
          bodies: ["{}", "x"],
        }),
      );
      const { stdout } = await run(
        process.execPath,
        [
          "--import",
          "tsx",
          fileURLToPath(new URL("../bench/paced-client.ts", import.meta.url)),
          file,
        ],
        30_000,
      );
      const result = JSON.parse(stdout) as PacedResultJson;
      assert.deepEqual([result.ok, result.failed], [5, 5]);
      assert.equal(result.latenciesMs.length, 10);
      assert.equal(result.fromWriteMs.length, 10);
      assert.ok(result.latenciesMs.every((ms) => typeof ms === "number" && ms > 0));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("quantile", () => {
  test("nearest rank, whatever the input order", () => {
    const values = Float64Array.from([5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
    assert.equal(quantile(values, 0.5), 5);
    assert.equal(quantile(values, 0.99), 10);
    assert.equal(quantile(values, 0.9), 9);
    assert.equal(quantile(values, 0), 1);
    assert.deepEqual([...values], [5, 1, 4, 2, 3, 10, 9, 8, 7, 6], "input left as it was");
    assert.ok(Number.isNaN(quantile(new Float64Array(0), 0.5)));
  });
});
