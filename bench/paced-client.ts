/**
 * Load at an even pace, for latency "at half of the maximum throughput". autocannon's
 * `connectionRate` is a per-second quota: each connection sends its share of a second back to
 * back, then waits for the next second, so the server runs flat out for part of every second and
 * the p99 it reports is a full-load p99 (measured here: 9-13 ms against the same server where even
 * spacing gave 4.7-6.7 ms). This client gives each keep-alive connection a fixed schedule and
 * measures every latency from the request's scheduled start, not from when it was written, so a
 * stall (a GC pause, a busy core) also counts against the requests that queued behind it (the
 * coordinated-omission correction of wrk2).
 *
 * Plain HTTP/1.1 on 127.0.0.1 only; responses must carry Content-Length (kube-join's and both
 * echo servers' do).
 *
 * The bench runs each round in a process of its own (`node --import tsx bench/paced-client.ts
 * OPTIONS.json` prints the result as JSON): in the bench's own process, which holds tens of
 * thousands of bodies, mark-compacts of 6-32 ms delayed the client's sends and were charged to
 * whichever server the round was measuring.
 *
 * A new client process is slow for its first few hundred milliseconds (its own code not yet
 * compiled): at 1,500/s its first 0.3 s of requests were written up to 36 ms late, and counted from
 * their scheduled start, that start-up alone set the round's p99 (2026-12-02). Requests are
 * therefore encoded before the schedule starts, and a warm-up (`warmupSeconds`) runs the same
 * schedule first without counting it.
 */
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";

export interface PacedOptions {
  readonly port: number;
  readonly path: string;
  /** Requests per second over all connections. */
  readonly rate: number;
  readonly seconds: number;
  readonly connections: number;
  /**
   * Sent in order, one per request (the warm-up's first), wrapping if there are fewer bodies than
   * requests.
   */
  readonly bodies: readonly string[];
  /** Seconds of the same paced load before `seconds`, whose answers are not counted; default 0. */
  readonly warmupSeconds?: number;
  /** Called when the first counted request falls due (the client process prints `counting`). */
  readonly onCounting?: () => void;
}

export interface PacedResult {
  /**
   * Milliseconds from each counted request's scheduled start to its full response, in send order
   * (the warm-up's are left out).
   */
  readonly latenciesMs: Float64Array;
  /**
   * Milliseconds from writing each request to its full response: what the server and loopback
   * took, without the wait of a request that fell due while its connection was still busy.
   */
  readonly fromWriteMs: Float64Array;
  /** Counted responses that were 2xx. */
  readonly ok: number;
  /** Responses other than 2xx, the warm-up's included. */
  readonly failed: number;
  /**
   * Counted requests written after their scheduled time because the previous one was still in
   * flight.
   */
  readonly late: number;
}

/** Runs the paced load; rejects on a connection error or a response it cannot read. */
export async function pacedLoad(options: PacedOptions): Promise<PacedResult> {
  const { connections, rate, seconds } = options;
  const warmupSeconds = options.warmupSeconds ?? 0;
  if (!(rate > 0) || !(seconds > 0) || !Number.isInteger(connections) || connections < 1) {
    throw new RangeError("rate and seconds must be positive, connections a whole number >= 1");
  }
  if (!(warmupSeconds >= 0)) throw new RangeError("warmupSeconds must be >= 0");
  const warmup = Math.round(rate * warmupSeconds);
  const counted = Math.max(connections, Math.round(rate * seconds));
  const total = warmup + counted;
  const latencies = new Float64Array(counted);
  const fromWrite = new Float64Array(counted);
  const intervalMs = (1000 * connections) / rate;
  // With no bodies given, every request is sent with an empty one.
  const encoded = (options.bodies.length > 0 ? options.bodies : [""]).map((body) =>
    Buffer.from(
      `POST ${options.path} HTTP/1.1\r\nHost: 127.0.0.1:${options.port}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n` +
        body,
    ),
  );
  const start = performance.now() + 20;
  if (options.onCounting !== undefined) {
    setTimeout(options.onCounting, start + (warmup * intervalMs) / connections - performance.now());
  }
  let ok = 0;
  let failed = 0;
  let late = 0;

  const runConnection = (index: number): Promise<void> =>
    new Promise((resolve, reject) => {
      // Request k of this connection is number index + k * connections overall, scheduled at
      // start + (index + k * connections) / rate.
      let k = 0;
      const socket: Socket = connect(options.port, "127.0.0.1");
      socket.setNoDelay(true);
      let pending: Buffer = Buffer.alloc(0);
      let scheduled = 0;
      let from = 0;
      let written = 0;
      let timer: NodeJS.Timeout | undefined;
      const fail = (err: Error) => {
        if (timer !== undefined) clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const next = () => {
        const n = index + k * connections;
        if (n >= total) {
          socket.end();
          resolve();
          return;
        }
        scheduled = start + (n * intervalMs) / connections;
        const wait = scheduled - performance.now();
        if (wait > 0) {
          timer = setTimeout(send, wait);
        } else {
          if (n >= warmup) late++;
          send();
        }
      };
      const send = () => {
        timer = undefined;
        // From the scheduled start when written late (the stall counts); from the write itself
        // when a timer fired a little early (timers have whole-millisecond resolution).
        written = performance.now();
        from = Math.min(scheduled, written);
        socket.write(encoded[(index + k * connections) % encoded.length]!);
      };
      socket.on("data", (chunk: Buffer) => {
        pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
        const end = pending.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = pending.subarray(0, end).toString("latin1");
        const length = /\r\ncontent-length: *(\d+)/i.exec(head)?.[1];
        const status = /^HTTP\/1\.1 (\d{3}) /.exec(head)?.[1];
        if (length === undefined || status === undefined) {
          fail(new Error(`unreadable response: ${JSON.stringify(head.slice(0, 200))}`));
          return;
        }
        const size = end + 4 + Number(length);
        if (pending.length < size) return;
        if (pending.length > size) {
          fail(new Error("response bytes beyond the one request in flight"));
          return;
        }
        pending = Buffer.alloc(0);
        const now = performance.now();
        const n = index + k * connections;
        if (n >= warmup) {
          latencies[n - warmup] = now - from;
          fromWrite[n - warmup] = now - written;
          if (status.startsWith("2")) ok++;
        }
        // A failure is one whether or not its latency is counted.
        if (!status.startsWith("2")) failed++;
        k++;
        next();
      });
      socket.once("error", fail);
      socket.once("close", () => {
        if (index + k * connections < total) fail(new Error("connection closed early"));
      });
      socket.once("connect", next);
    });

  await Promise.all(Array.from({ length: connections }, (_, i) => runConnection(i)));
  return { latenciesMs: latencies, fromWriteMs: fromWrite, ok, failed, late };
}

/** The q-quantile (0..1) of some latencies, by the nearest-rank method. */
export function quantile(values: Float64Array, q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

/** The result as the child process prints it (typed arrays become plain arrays in JSON). */
export interface PacedResultJson {
  readonly latenciesMs: number[];
  readonly fromWriteMs: number[];
  readonly ok: number;
  readonly failed: number;
  readonly late: number;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const options = JSON.parse(readFileSync(process.argv[2] ?? "", "utf8")) as PacedOptions;
  const result = await pacedLoad({
    ...options,
    onCounting: () => process.stderr.write("counting\n"),
  });
  const json: PacedResultJson = {
    ...result,
    latenciesMs: [...result.latenciesMs],
    fromWriteMs: [...result.fromWriteMs],
  };
  process.stdout.write(JSON.stringify(json));
}
