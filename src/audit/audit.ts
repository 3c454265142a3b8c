/**
 * The audit trail: one JSON line per join attempt, to a file (append, mode 0600) or a stream
 * (stdout by default). The schema is in docs/operations.md.
 *
 * Each line is built from an explicit allow-list of fields, never by spreading an object, so a
 * field added to `JoinAttempt` later cannot leak into the trail unnoticed; and a token name that
 * looks like a JWT (a caller who pasted the JWT into the wrong field) is redacted.
 */
import { createWriteStream } from "node:fs";
import type { WriteStream } from "node:fs";
import type { JoinAttempt, JoinListener } from "../join/events.ts";

export interface AuditLog {
  /** Writes the audit line of one join attempt; never throws. */
  readonly onJoin: JoinListener;
  /** Flushes and, for a file, closes it. Lines after `close` are dropped. */
  close(): Promise<void>;
}

/** Where write failures are reported: a pino logger fits (`logger.error(obj, msg)`). */
export interface AuditErrorLogger {
  error(details: { err: Error; file?: string }, message: string): void;
}

export interface AuditLogOptions {
  /** Appends to this file (created with mode 0600 if missing). */
  readonly file?: string;
  /** Writes to this stream instead (ignored when `file` is set). Default: stdout. */
  readonly stream?: NodeJS.WritableStream;
  /** Receives write failures, which never stop the service. Default: a JSON line on stderr. */
  readonly logger?: AuditErrorLogger;
}

/** The audit line, field by field (snake_case as in Teleport's audit events). */
export interface AuditEvent {
  readonly event: "bot.join";
  readonly code: "TJ001I" | "TJ001E";
  readonly time: string;
  readonly success: boolean;
  readonly token: string | null;
  readonly bot_name: string | null;
  readonly join_method: string;
  /** As the join method rendered them for the audit trail (kubernetes: namespace, service_account, pod). */
  readonly join_attrs: Readonly<Record<string, string>> | null;
  readonly remote_addr: string;
  readonly error?: { readonly code: string; readonly message: string };
  readonly tls_serial?: string;
  readonly ssh_serial?: string;
  readonly expires?: string;
}

/** Longer token names are cut: Teleport's own names are far shorter, and a line stays small. */
const MAX_TOKEN_NAME_LENGTH = 256;

/** Three base64url segments joined by dots, the first one a JSON object (`{"` is `eyJ`). */
const JWT_LIKE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/;

export const REDACTED_TOKEN_NAME = "[redacted: looks like a JWT]";

/** The token name as the audit trail shows it: redacted if JWT-like, bounded in length. */
export function auditTokenName(name: string | undefined): string | null {
  if (name === undefined) return null;
  if (JWT_LIKE.test(name)) return REDACTED_TOKEN_NAME;
  return name.length > MAX_TOKEN_NAME_LENGTH ? `${name.slice(0, MAX_TOKEN_NAME_LENGTH)}...` : name;
}

/**
 * Builds the audit line of an attempt from an allow-list of its fields. One object literal per
 * outcome, field order as in the schema (a spread of a shared part cost several microseconds per
 * join on the hot path).
 */
export function toAuditEvent(attempt: JoinAttempt): AuditEvent {
  const { outcome, attrs } = attempt;
  // The method's audit rendering is its own allow-list (flat strings, never the proof).
  const joinAttrs = attrs === undefined ? null : attrs.audit;
  if (outcome.ok) {
    return {
      event: "bot.join",
      code: "TJ001I",
      time: attempt.time.toISOString(),
      success: true,
      token: auditTokenName(attempt.tokenName),
      bot_name: attempt.botName ?? null,
      join_method: attempt.joinMethod,
      join_attrs: joinAttrs,
      remote_addr: attempt.remoteAddr,
      tls_serial: outcome.tlsSerial,
      ssh_serial: outcome.sshSerial,
      expires: outcome.expires.toISOString(),
    };
  }
  return {
    event: "bot.join",
    code: "TJ001E",
    time: attempt.time.toISOString(),
    success: false,
    token: auditTokenName(attempt.tokenName),
    bot_name: attempt.botName ?? null,
    join_method: attempt.joinMethod,
    join_attrs: joinAttrs,
    remote_addr: attempt.remoteAddr,
    error: { code: outcome.code, message: outcome.message },
  };
}

const stderrLogger: AuditErrorLogger = {
  error(details, message) {
    process.stderr.write(
      `${JSON.stringify({
        level: "error",
        time: Date.now(),
        msg: message,
        ...(details.file === undefined ? {} : { file: details.file }),
        err: { message: details.err.message, code: (details.err as NodeJS.ErrnoException).code },
      })}\n`,
    );
  },
};

/**
 * Opens the audit sink. A file is opened (and created, mode 0600) right away and reopened after
 * a write failure, so a full disk that recovers does not end the trail; a run of failures is
 * logged once, not once per line.
 *
 * @example
 * const audit = createAuditLog({ file: config.audit.file, logger });
 * joinService.on("attempt", audit.onJoin);
 * process.on("SIGTERM", async () => { await audit.close(); });
 */
export function createAuditLog(options: AuditLogOptions): AuditLog {
  const logger = options.logger ?? stderrLogger;
  const file = options.file;
  let closed = false;

  if (file === undefined) {
    const stream = options.stream ?? process.stdout;
    let failing = false;
    stream.on("error", (err: Error) => {
      if (!failing) logger.error({ err }, "audit stream failed; audit lines are being lost");
      failing = true;
    });
    return {
      onJoin(attempt) {
        if (closed) return;
        try {
          stream.write(`${JSON.stringify(toAuditEvent(attempt))}\n`);
        } catch (err) {
          logger.error({ err: asError(err) }, "audit line not written");
        }
      },
      async close() {
        closed = true;
        // Not ours to end (stdout); wait until what we wrote has left the buffer.
        const writable = stream as NodeJS.WritableStream & { writableNeedDrain?: boolean };
        if (writable.writableNeedDrain === true) {
          await new Promise<void>((resolve) => stream.once("drain", resolve));
        }
      },
    };
  }

  let current: WriteStream | undefined;
  let failing = false;

  const open = (): WriteStream => {
    const stream = createWriteStream(file, { flags: "a", mode: 0o600 });
    stream.on("error", (err) => {
      if (!failing) logger.error({ err, file }, "audit file write failed; audit lines are lost");
      failing = true;
      if (current === stream) current = undefined;
    });
    stream.on("open", () => {
      failing = false;
    });
    return stream;
  };
  current = open();

  return {
    onJoin(attempt) {
      if (closed) return;
      current ??= open();
      current.write(`${JSON.stringify(toAuditEvent(attempt))}\n`);
    },
    async close() {
      closed = true;
      const stream = current;
      current = undefined;
      if (stream === undefined || stream.destroyed) return;
      await new Promise<void>((resolve) => {
        stream.once("close", resolve);
        stream.end();
      });
    },
  };
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
