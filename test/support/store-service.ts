/**
 * `kube-join serve` processes with a store, for the store's end-to-end tests: a cluster key made
 * here, one bot (`example`) and one token (`example-bot`) trusting it, and joins as any pod.
 */
import { randomUUID } from "node:crypto";
import { main } from "../../src/cli.ts";
import {
  generateClusterKey,
  mintServiceAccountToken,
  serviceAccountClaims,
  type ClusterKey,
} from "./jwt.ts";
import {
  joinRequestBody,
  newBotPublicKeys,
  postJoin,
  type JoinHttpResult,
} from "./join-request.ts";
import { startService, type ServiceProcess } from "./service.ts";

export const CLUSTER = "store.example.com";

export function resourcesYaml(key: ClusterKey): string {
  return [
    "kind: bot",
    "version: v1",
    "metadata: {name: example}",
    "spec:",
    "  roles: [access]",
    "  traits: [{name: logins, values: [root]}]",
    "---",
    "kind: token",
    "version: v2",
    "metadata: {name: example-bot}",
    "spec:",
    "  roles: [Bot]",
    "  bot_name: example",
    "  join_method: kubernetes",
    "  kubernetes:",
    "    type: static_jwks",
    `    static_jwks: {jwks: '${key.jwks}'}`,
    '    allow: [{service_account: "default:tbot"}]',
    "",
  ].join("\n");
}

/** A config with the given `store:` lines; ephemeral ports, audit on stdout. */
export function configYaml(storeLines: readonly string[], extra: readonly string[] = []): string {
  return [
    `cluster_name: ${CLUSTER}`,
    "listen_addr: 127.0.0.1:0",
    "diag_addr: 127.0.0.1:0",
    "resources: [./resources.yaml]",
    "data_dir: ./data",
    "shutdown_timeout: 5s",
    "rate_limit: {average: 100000, period: 1s, burst: 100000}",
    ...storeLines,
    ...extra,
    "",
  ].join("\n");
}

export async function startStoreService(
  key: ClusterKey,
  storeLines: readonly string[],
  options: {
    readonly dir?: string;
    readonly extraFiles?: Record<string, string>;
    readonly env?: Record<string, string>;
  } = {},
): Promise<ServiceProcess> {
  return startService({
    configYaml: configYaml(storeLines),
    extraFiles: { "resources.yaml": resourcesYaml(key), ...options.extraFiles },
    ...(options.dir === undefined ? {} : { dir: options.dir }),
    ...(options.env === undefined ? {} : { env: options.env }),
  });
}

export function newClusterKey(): ClusterKey {
  return generateClusterKey("ES256");
}

/** A join as pod `podUid` (default: a new pod), with fresh bot keys. */
export async function joinAsPod(
  baseUrl: string,
  key: ClusterKey,
  pod: { readonly uid?: string; readonly name?: string; readonly namespace?: string } = {},
): Promise<JoinHttpResult & { readonly podUid: string }> {
  const podUid = pod.uid ?? randomUUID();
  const jwt = mintServiceAccountToken(
    key,
    serviceAccountClaims({
      audience: CLUSTER,
      issuedAtMs: Date.now(),
      podUid,
      podName: pod.name ?? "tbot-7f9c8d6b5-abcde",
      ...(pod.namespace === undefined ? {} : { namespace: pod.namespace }),
    }),
  );
  const keys = await newBotPublicKeys("bot");
  const result = await postJoin(
    baseUrl,
    joinRequestBody({ token: "example-bot", idToken: jwt, keys }),
  );
  return { ...result, podUid };
}

/** Runs `kube-join ARGS...` in-process, capturing what it prints. */
export async function kubeJoin(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...parts: unknown[]) => void out.push(parts.join(" "));
  console.error = (...parts: unknown[]) => void err.push(parts.join(" "));
  try {
    const code = await main(args);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** Polls `check` every 100 ms until it returns true; rejects after `timeoutMs`. */
export async function eventually(
  check: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
