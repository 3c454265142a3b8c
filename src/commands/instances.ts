/**
 * `kube-join instances list|show`: which pods hold certificates for which bot, since when, from
 * which node (Teleport: `tctl bots instances ls`), read from the store the config names.
 */
import type { BotInstanceRecord } from "../join/bot-instance-store.ts";
import { isoSeconds, table, takeConfigOption, withConfiguredStore } from "./store-command.ts";

const USAGE = `Usage:
  kube-join instances list [--config FILE] [--bot NAME] [--json]
  kube-join instances show ID [--config FILE] [--json]

Reads bot instances (one pod of one bot joining with one token) from the store named in the
service config (default: the demo config). Works while serve runs.
  list   a table: bot, instance id, pod, namespace/service account, node, generation, last join,
         expiry of the latest certificates; --bot keeps one bot's; --json prints the records
  show   one instance with its history (the last joins and refused attempts)`;

export async function run(args: string[]): Promise<number> {
  const { configFile, rest, error } = takeConfigOption(args);
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  if (error !== undefined) return usageError(error);
  const [sub, ...options] = rest;
  const json = options.includes("--json");
  const others = options.filter((o) => o !== "--json");
  if (sub === "list") {
    let bot: string | undefined;
    for (let i = 0; i < others.length; i++) {
      const option = others[i];
      if (option === "--bot" && others[i + 1] !== undefined) bot = others[++i];
      else if (option?.startsWith("--bot=") === true) bot = option.slice("--bot=".length);
      else return usageError(`unexpected argument ${JSON.stringify(option)}`);
    }
    return withConfiguredStore("instances list", configFile, async (store) => {
      const records = await store.list(bot === undefined ? {} : { botName: bot });
      console.log(json ? JSON.stringify(records.map(toJson), null, 2) : listTable(records));
      return 0;
    });
  }
  if (sub === "show") {
    const [id, ...extra] = others;
    if (id === undefined || id.startsWith("-") || extra.length > 0) {
      return usageError("show needs one instance ID");
    }
    return withConfiguredStore("instances show", configFile, async (store) => {
      const record = await store.get(id);
      if (record === undefined) {
        console.error(`kube-join instances show: no instance ${JSON.stringify(id)} in the store`);
        return 1;
      }
      console.log(json ? JSON.stringify(toJson(record), null, 2) : describe(record));
      return 0;
    });
  }
  return usageError(
    sub === undefined ? "no subcommand" : `unknown subcommand ${JSON.stringify(sub)}`,
  );
}

function usageError(message: string): number {
  console.error(`kube-join instances: ${message}\n\n${USAGE}`);
  return 2;
}

/** The record for `--json`: times as RFC 3339, and the same fields as the table and `show`. */
function toJson(r: BotInstanceRecord): Record<string, unknown> {
  return {
    bot_instance_id: r.botInstanceId,
    generation: r.generation,
    bot_name: r.botName,
    token_name: r.tokenName,
    join_method: r.joinMethod,
    join_type: r.joinType,
    namespace: r.namespace,
    service_account: r.serviceAccount,
    pod_name: r.podName,
    pod_uid: r.podUid,
    node_name: r.nodeName ?? null,
    first_join: new Date(r.firstJoinMs).toISOString(),
    last_join: new Date(r.lastJoinMs).toISOString(),
    tls_serial: r.tlsSerial,
    ssh_serial: r.sshSerial,
    expires: new Date(r.expiresAtMs).toISOString(),
    history: r.history.map((h) => ({
      time: new Date(h.atMs).toISOString(),
      remote_addr: h.remoteAddress,
      jti: h.jti ?? null,
      result: h.result,
    })),
  };
}

export function listTable(records: readonly BotInstanceRecord[]): string {
  if (records.length === 0) return "No bot instances.";
  return table(
    [
      "BOT",
      "INSTANCE ID",
      "POD",
      "NAMESPACE/SERVICE ACCOUNT",
      "NODE",
      "GEN",
      "LAST JOIN",
      "EXPIRES",
    ],
    records.map((r) => [
      r.botName,
      r.botInstanceId,
      r.podName,
      `${r.namespace}/${r.serviceAccount}`,
      r.nodeName ?? "-",
      String(r.generation),
      isoSeconds(r.lastJoinMs),
      isoSeconds(r.expiresAtMs),
    ]),
  );
}

function describe(r: BotInstanceRecord): string {
  const lines = [
    `Instance:        ${r.botInstanceId}`,
    `Bot:             ${r.botName}`,
    `Token:           ${r.tokenName} (${r.joinMethod}, ${r.joinType})`,
    `Service account: ${r.namespace}:${r.serviceAccount}`,
    `Pod:             ${r.podName} (uid ${r.podUid})`,
    `Node:            ${r.nodeName ?? "-"}`,
    `Generation:      ${r.generation}`,
    `First join:      ${isoSeconds(r.firstJoinMs)}`,
    `Last join:       ${isoSeconds(r.lastJoinMs)}`,
    `Certificates:    TLS serial ${r.tlsSerial}, SSH serial ${r.sshSerial}, expire ${isoSeconds(r.expiresAtMs)}`,
    "",
    `History (last ${r.history.length}, newest last):`,
    table(
      ["  TIME", "REMOTE ADDR", "JTI", "RESULT"],
      r.history.map((h) => [`  ${isoSeconds(h.atMs)}`, h.remoteAddress, h.jti ?? "-", h.result]),
    ),
  ];
  return lines.join("\n");
}
