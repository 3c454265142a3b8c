/**
 * The `kube-join` command line: a table of subcommands, each in `src/commands/`, loaded on demand
 * so `kube-join check` never pulls in the HTTP stack.
 */
interface Command {
  readonly summary: string;
  readonly load: () => Promise<{ run(args: string[]): Promise<number> }>;
}

const COMMANDS: Readonly<Record<string, Command>> = {
  check: {
    summary: "check PATH...               validate bot and token YAML as the service would load it",
    load: () => import("./commands/check.ts"),
  },
  agent: {
    summary: "agent --server URL ...      join, write and keep renewing a bot identity",
    load: () => import("./commands/agent.ts"),
  },
  serve: {
    summary:
      "serve [--config FILE]       run the join service (the demo configuration without --config)",
    load: () => import("./commands/serve.ts"),
  },
  instances: {
    summary:
      "instances list|show ...     bot instances in the store (which pods hold certificates)",
    load: () => import("./commands/instances.ts"),
  },
  lock: {
    summary: "lock create|list|delete ... locks that refuse new certificates, on every serve",
    load: () => import("./commands/lock.ts"),
  },
  "demo-token": {
    summary:
      "demo-token [OPTIONS]        print a service-account JWT signed by the TEST-ONLY demo key",
    load: () => import("./commands/demo-token.ts"),
  },
};

export function usage(): string {
  const lines = Object.values(COMMANDS).map((c) => `  kube-join ${c.summary}`);
  return ["Usage:", ...lines, "", "Run `kube-join COMMAND --help` for a command's options."].join(
    "\n",
  );
}

/** Runs the CLI and returns the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) {
    console.error(`kube-join: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  const mod = await command.load();
  return mod.run(rest);
}
