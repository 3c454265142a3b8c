import { readFile } from "node:fs/promises";
import { postJoin } from "../agent/client.ts";
import { generateAgentKey } from "../agent/keys.ts";
import { AGENT_USAGE, AgentUsageError, parseAgentArgs } from "../agent/options.ts";
import { runAgent, sleepUnlessAborted } from "../agent/run.ts";
import type { AgentLogRecord } from "../agent/run.ts";

const REQUEST_TIMEOUT_MS = 30_000;

/**
 * `kube-join agent`: wiring only. Parses flags, loads the CA file once, logs JSON lines on
 * stderr, and stops cleanly on SIGTERM/SIGINT (exit 0).
 */
export async function run(args: string[]): Promise<number> {
  let options;
  try {
    options = parseAgentArgs(args, process.env);
  } catch (err) {
    if (!(err instanceof AgentUsageError)) throw err;
    console.error(`kube-join agent: ${err.message}\n\n${AGENT_USAGE}`);
    return 2;
  }
  if (options === "help") {
    console.log(AGENT_USAGE);
    return 0;
  }

  let ca: string | undefined;
  if (options.caFile !== undefined) {
    try {
      ca = await readFile(options.caFile, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "error";
      console.error(`kube-join agent: --ca-file: cannot read ${options.caFile}: ${code}`);
      return 2;
    }
  }

  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once("SIGTERM", onSignal);
  process.once("SIGINT", onSignal);
  let lastFailure: AgentLogRecord | undefined;
  try {
    const code = await runAgent(
      options,
      {
        now: () => new Date(),
        sleep: sleepUnlessAborted,
        random: Math.random,
        log: (record) => {
          if (record["outcome"] === "failure") lastFailure = record;
          process.stderr.write(`${JSON.stringify(record)}\n`);
        },
        generateKey: generateAgentKey,
        join: (body, signal) =>
          postJoin({ server: options.server, ca, timeoutMs: REQUEST_TIMEOUT_MS, signal }, body),
      },
      stop.signal,
    );
    if (code !== 0 && lastFailure !== undefined) {
      console.error(
        `kube-join agent: join failed: ${String(lastFailure["code"])}: ${String(lastFailure["message"])}`,
      );
    }
    return code;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}
