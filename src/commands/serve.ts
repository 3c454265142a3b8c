/**
 * `kube-join serve [--config FILE]`: runs the join service until SIGTERM or SIGINT. Without
 * `--config` it serves the demo configuration in `fixtures/demo/` (what `npm start` runs).
 * SIGHUP reloads the resource files (and the TLS certificate).
 */
import { fileURLToPath } from "node:url";
import { loadConfig } from "../config/config.ts";
import { createLogger } from "../log.ts";
import { problemsOf, startJoinService, type RunningService } from "../service/server.ts";

/** The demo configuration, relative to the package root (this file is in src/ or dist/commands). */
export const DEMO_CONFIG = fileURLToPath(
  new URL("../../fixtures/demo/config.yaml", import.meta.url),
);

const HELP = `Usage: kube-join serve [--config FILE]

Runs the join service. Without --config, serves the demo configuration
(${DEMO_CONFIG}).
Signals: SIGHUP reloads the resource files; SIGTERM or SIGINT drain and exit 0.
See docs/service.md for the configuration reference.`;

export async function run(args: string[]): Promise<number> {
  let configFile = DEMO_CONFIG;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      console.log(HELP);
      return 0;
    }
    if (arg === "--config" || arg === "-c") {
      const value = args[++i];
      if (value === undefined) {
        console.error("kube-join serve: --config needs a file\n\n" + HELP);
        return 2;
      }
      configFile = value;
    } else if (arg?.startsWith("--config=") === true) {
      configFile = arg.slice("--config=".length);
    } else {
      console.error(`kube-join serve: unknown argument ${JSON.stringify(arg)}\n\n${HELP}`);
      return 2;
    }
  }

  const bootLog = createLogger();
  let config;
  try {
    config = await loadConfig(configFile);
  } catch (err) {
    bootLog.fatal(
      { config: configFile, problems: problemsOf(err) },
      "invalid configuration; not starting",
    );
    return 1;
  }
  const log = createLogger({ level: config.logLevel });

  // Every signal handler is installed before start-up: an early SIGHUP (an eager
  // config-management tool) must not kill the process, SIGHUP's default action, and a SIGTERM
  // while the CA is generated must stop the service cleanly, not halfway through its files.
  let service: RunningService | undefined;
  let stopping: NodeJS.Signals | undefined;
  let requestStop: (signal: NodeJS.Signals) => void = () => {};
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => (requestStop = resolve));
  const onHup = (): void => {
    if (stopping !== undefined) {
      log.info({ signal: "SIGHUP" }, "signal during shutdown: ignored, the drain goes on");
      return;
    }
    if (service === undefined) {
      log.info("SIGHUP during start-up: ignored, the resources are being loaded anyway");
      return;
    }
    log.info("SIGHUP: reloading resources");
    void service.reload("SIGHUP");
  };
  // The first SIGTERM or SIGINT starts the drain; later ones are logged and ignored, so a
  // supervisor that repeats its signal does not cut requests in flight short. The drain is
  // bounded by shutdown_timeout anyway; SIGKILL is the way to force.
  const onStop = (signal: NodeJS.Signals): void => {
    if (stopping !== undefined) {
      log.info({ signal }, "signal during shutdown: ignored, the drain goes on");
      return;
    }
    stopping = signal;
    if (service === undefined) {
      log.info({ signal }, "stop requested during start-up: stopping once start-up is done");
    } else {
      log.info({ signal }, "shutting down: finishing requests in flight");
    }
    requestStop(signal);
  };
  process.on("SIGHUP", onHup);
  process.on("SIGTERM", onStop);
  process.on("SIGINT", onStop);
  const removeHandlers = (): void => {
    process.off("SIGHUP", onHup);
    process.off("SIGTERM", onStop);
    process.off("SIGINT", onStop);
  };
  try {
    service = await startJoinService(config, { log });
  } catch (err) {
    removeHandlers();
    log.fatal({ problems: problemsOf(err) }, "start-up failed");
    return 1;
  }
  const running = service;
  if (stopping !== undefined) {
    log.info({ signal: stopping }, "shutting down: finishing requests in flight");
  }

  await stopRequested;
  let code = 0;
  try {
    await running.shutdown();
    log.info("stopped");
  } catch (err) {
    log.error({ err }, "shutdown failed");
    code = 1;
  }
  removeHandlers();
  // Anything still holding the event loop (a stray socket) must not keep a stopped service alive.
  setTimeout(() => process.exit(code), 1000).unref();
  return code;
}
