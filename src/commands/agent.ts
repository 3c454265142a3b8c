import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { postJoin } from "../agent/client.ts";
import { readAgentConfig } from "../agent/config-file.ts";
import type { AgentFileConfig } from "../agent/config-file.ts";
import { AgentStatus, startAgentDiag } from "../agent/diag.ts";
import type { AgentDiagServer } from "../agent/diag.ts";
import { generateAgentKey } from "../agent/keys.ts";
import {
  AGENT_USAGE,
  AgentUsageError,
  parseAgentFlags,
  resolveAgentOptions,
} from "../agent/options.ts";
import type { AgentOptions } from "../agent/options.ts";
import { runAgent, sleepUnlessAborted } from "../agent/run.ts";
import type { AgentLogRecord } from "../agent/run.ts";
import { ConfigError } from "../errors.ts";

const REQUEST_TIMEOUT_MS = 30_000;

/**
 * `kube-join agent`: wiring only. Parses flags and the config file (`-c`), loads the CA file
 * once, serves `diag_addr`, logs JSON lines on stderr, and stops cleanly on SIGTERM/SIGINT
 * (exit 0). Exit 2 for every usage error (flags, config file, a destination it cannot honour).
 */
export async function run(args: string[]): Promise<number> {
  let options: AgentOptions;
  try {
    const flags = parseAgentFlags(args);
    if (flags === "help") {
      console.log(AGENT_USAGE);
      return 0;
    }
    let file: AgentFileConfig | undefined;
    if (flags.config !== undefined) {
      let text: string;
      try {
        text = readFileSync(flags.config, "utf8");
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? "error";
        throw new AgentUsageError(`--config: cannot read ${flags.config}: ${code}`);
      }
      file = readAgentConfig(flags.config, text, (path) => readFileSync(path, "utf8"), {
        server: flags.server !== undefined,
        token: flags.token !== undefined,
        caFile: flags.caFile !== undefined,
      });
    }
    options = resolveAgentOptions(flags, file, process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`kube-join agent: the config file has errors:\n  ${err.problems.join("\n  ")}`);
      return 2;
    }
    if (!(err instanceof AgentUsageError)) throw err;
    console.error(`kube-join agent: ${err.message}\n\n${AGENT_USAGE}`);
    return 2;
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

  const status = new AgentStatus();
  let diag: AgentDiagServer | undefined;
  if (options.diagAddr !== undefined) {
    try {
      diag = await startAgentDiag(options.diagAddr, status);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      const { host, port } = options.diagAddr;
      console.error(`kube-join agent: diag_addr: cannot listen on ${host}:${port}: ${code}`);
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
          postJoin(
            {
              server: options.server,
              ca,
              caPins: options.caPins,
              timeoutMs: REQUEST_TIMEOUT_MS,
              signal,
            },
            body,
          ),
        env: process.env,
        observe: (event) => status.observe(event),
      },
      stop.signal,
    );
    if (code !== 0 && lastFailure !== undefined) {
      console.error(
        `kube-join agent: join failed: ${String(lastFailure["code"])}: ${String(lastFailure["message"])}`,
      );
    }
    return code;
  } catch (err) {
    // A destination that cannot be honoured (e.g. kubernetes_secret without a namespace).
    if (!(err instanceof ConfigError)) throw err;
    console.error(`kube-join agent: ${err.problems.join("\n  ")}`);
    return 2;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    await diag?.close();
  }
}
