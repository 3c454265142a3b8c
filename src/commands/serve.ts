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

  // Installed before start-up so an early SIGHUP (an eager config-management tool) does not kill
  // the process, SIGHUP's default action: start-up reads the files anyway.
  let service: RunningService | undefined;
  const onHup = (): void => {
    if (service === undefined) {
      log.info("SIGHUP during start-up: ignored, the resources are being loaded anyway");
      return;
    }
    log.info("SIGHUP: reloading resources");
    void service.reload("SIGHUP");
  };
  process.on("SIGHUP", onHup);
  try {
    service = await startJoinService(config, { log });
  } catch (err) {
    process.off("SIGHUP", onHup);
    log.fatal({ problems: problemsOf(err) }, "start-up failed");
    return 1;
  }
  const running = service;

  return new Promise<number>((resolve) => {
    const onStop = (signal: NodeJS.Signals): void => {
      log.info({ signal }, "shutting down: finishing requests in flight");
      process.off("SIGHUP", onHup);
      running.shutdown().then(
        () => {
          log.info("stopped");
          resolve(0);
        },
        (err: unknown) => {
          log.error({ err }, "shutdown failed");
          resolve(1);
        },
      );
    };
    process.once("SIGTERM", onStop);
    process.once("SIGINT", onStop);
  }).then((code) => {
    // Anything still holding the event loop (a stray socket) must not keep a stopped service alive.
    setTimeout(() => process.exit(code), 1000).unref();
    return code;
  });
}
