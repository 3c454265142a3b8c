import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { JoinRequestWire, JoinResponseWire } from "../lib/join-wire.ts";
import { AgentError } from "./agent-error.ts";
import { connectTrusted } from "./ca-pins.ts";
import { parseJoinResponse } from "./identity.ts";

interface JoinTransport {
  readonly server: URL;
  /** PEM trust anchors for an https:// server; when set they replace the system CAs entirely. */
  readonly ca: string | undefined;
  /** `sha256:<hex>` CA pins: when set, the chain is checked by `connectTrusted` instead. */
  readonly caPins?: readonly string[];
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

const MAX_RESPONSE_BYTES = 1024 * 1024;

/** OpenSSL's and Node's codes for a certificate the given anchors do not vouch for. */
const TLS_VERIFY_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/**
 * Sends one join request and returns the issued identity, or throws `AgentError` with the
 * server's error code (status and `Retry-After` attached), or a local code when there is no
 * usable answer (`server_unreachable`, `bad_response`).
 */
export async function postJoin(
  transport: JoinTransport,
  body: JoinRequestWire,
): Promise<JoinResponseWire> {
  const { status, headers, text } = await send(transport, JSON.stringify(body));
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (status === 200) {
    const identity = parseJoinResponse(parsed);
    if (identity === undefined) {
      throw new AgentError(
        "bad_response",
        "HTTP 200 without the identity fields of POST /v1/join",
        {
          status,
        },
      );
    }
    return identity;
  }
  const retryAfterMs = parseRetryAfter(headers["retry-after"]);
  const error = isRecord(parsed) && isRecord(parsed["error"]) ? parsed["error"] : undefined;
  const code = error?.["code"];
  const message = error?.["message"];
  if (typeof code !== "string" || !/^[a-z][a-z0-9_]{0,63}$/.test(code)) {
    throw new AgentError("bad_response", `HTTP ${status} without a kube-join error body`, {
      status,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }
  // The message is the server's, written to be safe to show this caller; cap its size anyway.
  const safeMessage = typeof message === "string" ? message.slice(0, 500) : "";
  throw new AgentError(code, safeMessage, {
    status,
    ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
  });
}

function send(
  transport: JoinTransport,
  payload: string,
): Promise<{ status: number; headers: IncomingMessage["headers"]; text: string }> {
  const url = new URL("/v1/join", transport.server);
  const secure = url.protocol === "https:";
  const pins = secure ? (transport.caPins ?? []) : [];
  const request = secure && pins.length === 0 ? httpsRequest : httpRequest;
  // A deadline for the whole exchange, not http's idle `timeout`: a server (or proxy) that
  // trickles a byte now and then would otherwise hold the join, and the renewal loop behind it,
  // until the current identity expires.
  const deadline = AbortSignal.timeout(transport.timeoutMs);
  const signal =
    transport.signal === undefined ? deadline : AbortSignal.any([transport.signal, deadline]);
  return new Promise((resolve, reject) => {
    const unreachable = (err: Error): void => {
      const reason = deadline.aborted
        ? new Error(`no complete answer within ${transport.timeoutMs} ms`)
        : err;
      const untrusted = TLS_VERIFY_CODES.has(String((reason as NodeJS.ErrnoException).code));
      reject(
        new AgentError(
          "server_unreachable",
          untrusted
            ? `${url.origin}: TLS: the server's certificate chain does not match ca_path (--ca-file): ${describe(reason)}`
            : `${url.origin}: ${describe(reason)}`,
        ),
      );
    };
    const transportOptions =
      pins.length > 0
        ? {
            // node:http over a TLS socket that `connectTrusted` hands over only once the chain
            // matched the CA file or a pin; no byte of the request goes out before that.
            createConnection: (
              _options: unknown,
              oncreate: (err: Error | null, socket: Duplex) => void,
            ): undefined => {
              connectTrusted(
                {
                  host: url.hostname,
                  port: Number(url.port || 443),
                  ca: transport.ca,
                  pins,
                  signal,
                },
                (err, socket) => (err === null ? oncreate(null, socket!) : unreachable(err)),
              );
              return undefined;
            },
          }
        : secure
          ? // Only the given anchors: `ca` replaces Node's bundled roots, so a public CA can
            // never vouch for a kube-join server.
            { ca: transport.ca ?? [], rejectUnauthorized: true }
          : {};
    const req = request(
      {
        // node:http for the pinned case too: its socket is already TLS.
        protocol: secure && pins.length === 0 ? "https:" : "http:",
        hostname: url.hostname.replace(/^\[|\]$/g, ""),
        port: url.port || (secure ? 443 : 80),
        path: url.pathname + url.search,
        method: "POST",
        headers: {
          host: url.host,
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
          accept: "application/json",
        },
        signal,
        ...transportOptions,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_RESPONSE_BYTES) {
            reject(new AgentError("bad_response", "response larger than 1 MiB"));
            req.destroy();
            return;
          }
          chunks.push(chunk);
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString("utf8"),
          }),
        );
        res.on("error", unreachable);
      },
    );
    req.on("error", unreachable);
    req.end(payload);
  });
}

function describe(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === undefined ? err.message : `${code}: ${err.message}`;
}

function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,6}$/.test(value.trim())) return undefined;
  return Number(value.trim()) * 1000;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
