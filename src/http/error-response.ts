/**
 * The one place an error code becomes an HTTP response, for both listeners and for the join
 * endpoint (which runs on node:http without express): the status from the registry and
 * `{"error": {"code", "message"}}`.
 */
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { statusOf, type ErrorCode } from "../errors.ts";
import { STORE_RETRY_AFTER_SECONDS } from "../join/instance-ledger.ts";

/**
 * Codes that mean "the service cannot do it now": they carry a `Retry-After` (seconds). The
 * store's 5 s is about how long a database failover takes to show (docs/store.md).
 */
const RETRY_AFTER_SECONDS: Partial<Record<ErrorCode, number>> = {
  store_unavailable: STORE_RETRY_AFTER_SECONDS,
};

/** The media type of every JSON body this service sends. */
export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

/**
 * Codes answered before the request body is read. Their connection is closed after the answer:
 * keeping it alive would make node:http read (and throw away) the rest of an upload the client
 * controls, for as long as the client likes to send it.
 */
const REFUSED_BEFORE_BODY: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "payload_too_large",
  "unsupported_media_type",
  "not_found",
  "method_not_allowed",
  "rate_limited",
]);

export function sendError(res: ServerResponse, code: ErrorCode, message: string): void {
  if (res.headersSent) {
    // Too late for a status: end the connection so the client sees a failure, not a short body.
    res.destroy();
    return;
  }
  if (REFUSED_BEFORE_BODY.has(code) || res.req.complete === false) closeWithoutReading(res);
  const body = JSON.stringify({ error: { code, message } });
  res.statusCode = statusOf(code);
  const retryAfter = RETRY_AFTER_SECONDS[code];
  if (retryAfter !== undefined && !res.hasHeader("Retry-After")) {
    res.setHeader("Retry-After", String(retryAfter));
  }
  res.setHeader("Content-Type", JSON_CONTENT_TYPE);
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
}

/** How long a refused client has to read its answer before its connection is cut. */
export const LINGER_MS = 2_000;
/** How much more of a refused upload is read (and thrown away) while lingering, at most. */
export const LINGER_BYTES = 1024 * 1024;

/**
 * Answers with `Connection: close` and, once the answer is out, sends FIN and lingers: the
 * connection closes as soon as the client closes its side, and at the latest after `LINGER_MS`.
 * What the client still uploads meanwhile is thrown away up to `LINGER_BYTES`; beyond that the
 * socket is no longer read at all. node:http on its own would destroy the socket at once, and
 * with upload bytes unread the kernel answers with a reset, which can destroy the answer before
 * the client read it (the lingering close of Apache and nginx, bounded in bytes).
 */
function closeWithoutReading(res: ServerResponse): void {
  res.setHeader("Connection", "close");
  const socket = res.socket as (Socket & { destroySoon?: () => void }) | null;
  if (socket === null || socket.destroySoon === undefined) return;
  const req = res.req;
  // node:http calls destroySoon once a `Connection: close` response has finished.
  socket.destroySoon = function lingeringClose(this: Socket) {
    this.end();
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once("close", () => clearTimeout(timer));
    const readBefore = this.bytesRead;
    const onData = (): void => {
      if (this.bytesRead - readBefore <= LINGER_BYTES) return;
      req.off("data", onData);
      // The HTTP parser reads the handle directly; pausing the socket stops that read
      // (node:http listens for "pause"), and its body dump would resume it: pause again.
      this.pause();
      this.on("resume", () => this.pause());
    };
    req.on("data", onData);
  };
}
