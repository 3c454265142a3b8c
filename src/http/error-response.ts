/**
 * The one place an error code becomes an HTTP response, for both listeners and for the join
 * endpoint (which runs on node:http without express): the status from the registry and
 * `{"error": {"code", "message"}}`.
 */
import type { ServerResponse } from "node:http";
import { statusOf, type ErrorCode } from "../errors.ts";

/** The media type of every JSON body this service sends. */
export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

export function sendError(res: ServerResponse, code: ErrorCode, message: string): void {
  if (res.headersSent) {
    // Too late for a status: end the connection so the client sees a failure, not a short body.
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  res.statusCode = statusOf(code);
  res.setHeader("Content-Type", JSON_CONTENT_TYPE);
  res.setHeader("Content-Length", Buffer.byteLength(body));
  res.end(body);
}
