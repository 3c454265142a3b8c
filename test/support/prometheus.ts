/**
 * Starts a real Prometheus server (Debian's `prometheus` package) for an integration test:
 * temporary config and storage, its API on 127.0.0.1, scraping the given targets every second.
 *
 * Usage:
 *   const prometheus = await startPrometheus(tool.path, { targets: ["127.0.0.1:3000"] });
 *   after(() => prometheus.stop());
 *   await prometheus.waitFor('up{job="kube-join"} == 1', (v) => v === 1);
 */
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface PrometheusServer {
  /** Base URL of its HTTP API, e.g. `http://127.0.0.1:40123`. */
  readonly url: string;
  /** Runs an instant query; returns the value of each series of the vector result. */
  query(expr: string): Promise<number[]>;
  /**
   * Polls `expr` until some series satisfies `accept` (every 250 ms, up to `timeoutMs`); returns
   * that value or throws with the last result and Prometheus' log.
   */
  waitFor(expr: string, accept: (value: number) => boolean, timeoutMs?: number): Promise<number>;
  /** Kills the server and removes its config and storage. Safe to call twice. */
  stop(): Promise<void>;
}

export interface PrometheusOptions {
  /** `host:port` of each /metrics endpoint to scrape, as job `kube-join`. */
  readonly targets: readonly string[];
  /** Rule files to load (`rule_files:`), evaluated every second. */
  readonly ruleFiles?: readonly string[];
  /** How long to wait for the server to become ready. Default 20 s. */
  readonly startTimeoutMs?: number;
}

interface QueryResponse {
  status: string;
  error?: string;
  data?: {
    resultType: string;
    result: { metric: Record<string, string>; value: [number, string] }[];
  };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no TCP address");
  return address.port;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startPrometheus(
  binary: string,
  options: PrometheusOptions,
): Promise<PrometheusServer> {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-prometheus-"));
  const config = join(dir, "prometheus.yml");
  // JSON is YAML: no YAML writer needed.
  writeFileSync(
    config,
    JSON.stringify({
      global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
      scrape_configs: [{ job_name: "kube-join", static_configs: [{ targets: options.targets }] }],
      ...(options.ruleFiles === undefined ? {} : { rule_files: options.ruleFiles }),
    }),
  );
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${config}`,
      `--storage.tsdb.path=${join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      `--web.console.templates=${dir}`,
      `--web.console.libraries=${dir}`,
      "--log.level=warn",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString("utf8")).slice(-4000);
  });
  let exited = false;
  const exit = new Promise<void>((resolve) =>
    child.once("exit", () => {
      exited = true;
      resolve();
    }),
  );

  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill("SIGKILL");
      await exit;
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const query = async (expr: string): Promise<number[]> => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`, {
      signal: AbortSignal.timeout(2000),
    });
    const body = (await res.json()) as QueryResponse;
    if (body.status !== "success" || body.data?.resultType !== "vector") {
      throw new Error(`query ${expr} failed: ${body.error ?? res.status}`);
    }
    return body.data.result.map((series) => Number(series.value[1]));
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 20_000);
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`prometheus exited during start-up:\n${log}`);
    }
    try {
      const res = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready within the start timeout:\n${log}`);
    }
    await sleep(200);
  }

  return {
    url,
    query,
    async waitFor(expr, accept, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      let last: unknown;
      for (;;) {
        try {
          const values = await query(expr);
          last = values;
          const hit = values.find(accept);
          if (hit !== undefined) return hit;
        } catch (err) {
          last = err instanceof Error ? err.message : err;
        }
        if (Date.now() > until || exited) {
          throw new Error(`${expr}: no accepted value (last: ${JSON.stringify(last)})\n${log}`);
        }
        await sleep(250);
      }
    },
    stop,
  };
}
