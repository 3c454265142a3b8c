/**
 * The agent's `diag_addr` (tbot's): `/livez`, `/readyz` and `/metrics` on node:http. The agent
 * must not load express or prom-client (it shares only leaves with the server), and three fixed
 * answers do not need either: the exposition text below is checked by `promtool` in the tests.
 */
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { AgentObservation } from "./run.ts";

/** What the agent has done so far, fed by `runAgent`'s `observe`. */
export class AgentStatus {
  #success = 0;
  #failure = 0;
  #expiresMs: number | undefined;

  observe(event: AgentObservation): void {
    if (event.outcome === "success") this.#success++;
    if (event.outcome === "failure") this.#failure++;
    const expires = event.identityExpires === undefined ? NaN : Date.parse(event.identityExpires);
    this.#expiresMs = Number.isNaN(expires) ? undefined : expires;
  }

  /** Ready while an identity exists that has not expired. */
  isReady(nowMs: number): boolean {
    return this.#expiresMs !== undefined && this.#expiresMs > nowMs;
  }

  /** The Prometheus text exposition (format 0.0.4). */
  metrics(nowMs: number): string {
    const lines = [
      "# HELP kube_join_agent_joins_total Join attempts of this agent, by result.",
      "# TYPE kube_join_agent_joins_total counter",
      `kube_join_agent_joins_total{result="success"} ${this.#success}`,
      `kube_join_agent_joins_total{result="failure"} ${this.#failure}`,
      "# HELP kube_join_agent_identity_expiry_seconds Seconds until the identity in use expires; negative once it has; absent before the first identity.",
      "# TYPE kube_join_agent_identity_expiry_seconds gauge",
    ];
    if (this.#expiresMs !== undefined) {
      lines.push(`kube_join_agent_identity_expiry_seconds ${(this.#expiresMs - nowMs) / 1000}`);
    }
    return `${lines.join("\n")}\n`;
  }
}

/** A listening diag server; `close()` stops it. */
export interface AgentDiagServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts the diag listener on `host:port` (port 0: any free one). */
export async function startAgentDiag(
  address: { readonly host: string; readonly port: number },
  status: AgentStatus,
  now: () => number = Date.now,
): Promise<AgentDiagServer> {
  const server: Server = createServer((req, res) => answer(req, res, status, now()));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(address.port, address.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function answer(
  req: IncomingMessage,
  res: ServerResponse,
  status: AgentStatus,
  nowMs: number,
): void {
  const path = (req.url ?? "/").split("?")[0];
  const send = (code: number, type: string, body: string): void => {
    res.writeHead(code, {
      "Content-Type": type,
      "Content-Length": Buffer.byteLength(body),
      "Cache-Control": "no-store",
    });
    res.end(req.method === "HEAD" ? undefined : body);
  };
  const json = (code: number, body: unknown): void =>
    send(code, "application/json; charset=utf-8", JSON.stringify(body));
  if (path !== "/livez" && path !== "/readyz" && path !== "/metrics") {
    return json(404, { error: { code: "not_found", message: "serves /livez, /readyz, /metrics" } });
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("Allow", "GET, HEAD");
    return json(405, { error: { code: "method_not_allowed", message: "use GET" } });
  }
  if (path === "/livez") return json(200, { status: "ok" });
  if (path === "/readyz") {
    return status.isReady(nowMs)
      ? json(200, { status: "ready" })
      : json(503, { status: "not_ready", message: "no unexpired identity yet" });
  }
  return send(200, "text/plain; version=0.0.4; charset=utf-8", status.metrics(nowMs));
}
