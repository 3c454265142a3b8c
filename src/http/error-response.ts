/**
 * The one place an error code becomes an HTTP response, for both listeners: the status from the
 * registry and `{"error": {"code", "message"}}`.
 */
import type { Response } from "express";
import { statusOf, type ErrorCode } from "../errors.ts";

/** What a caller sees of anything unexpected; the details go to the log only. */
export const INTERNAL_MESSAGE = "internal error; the details are in the server log";

export function sendError(res: Response, code: ErrorCode, message: string): void {
  if (res.headersSent) {
    // Too late for a status: end the connection so the client sees a failure, not a short body.
    res.destroy();
    return;
  }
  res.status(statusOf(code)).json({ error: { code, message } });
}
