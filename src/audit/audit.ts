/**
 * The audit trail: one JSON line per join attempt, to a file (append, mode 0600) or a stream
 * (stdout by default). The schema is in docs/operations.md.
 *
 * It fails closed. A successful join waits for its line to be written before the certificates
 * are sent (`record` resolves); when the line cannot be written (a full disk, EIO, a removed
 * directory, a closed stdout) `record` rejects with `audit_unavailable` and the caller gets no
 * certificate, unless the operator chose `on_failure: continue`. Writes are group commits: the
 * lines of joins that arrive while a write is in flight go out together in the next write, so a
 * busy service makes one write(2) per batch, not per join.
 *
 * A line is in the file whole or not at all: after a short or failed write the file is truncated
 * back to the end of the last whole batch. A file moved or removed under the service (logrotate
 * without copytruncate) is noticed by comparing the open file with the path (`checkFile`, every
 * few seconds and on SIGHUP) and a new one is opened. While the sink fails it is not healthy
 * (`/readyz` says not ready); it probes by itself and, on the first write that succeeds again,
 * writes an `audit.gap` line that says how many lines were lost, and is healthy again.
 *
 * Each line is built from an explicit allow-list of fields, never by spreading an object, so a
 * field added to `JoinAttempt` later cannot leak into the trail unnoticed; and a token name that
 * looks like a JWT (a caller who pasted the JWT into the wrong field) is redacted.
 */
import * as fs from "node:fs";
import { ConfigError, JoinError } from "../errors.ts";
import type { JoinAttempt } from "../join/events.ts";

/** `refuse` (default): no certificate without its audit line. `continue`: lose the line. */
export type AuditFailurePolicy = "refuse" | "continue";

export interface AuditTrail {
  /**
   * Writes the audit line of one attempt. Resolves once it is written; when it cannot be, rejects
   * with `JoinError("audit_unavailable")` under `refuse` and resolves under `continue`.
   */
  record(attempt: JoinAttempt): Promise<void>;
  /** False while lines cannot be written (the service is then not ready). */
  readonly healthy: boolean;
  /** Hears of every line that could not be written (a metric). */
  onWriteFailures(listener: (lines: number) => void): void;
  /** Hears of every change of `healthy`. */
  onHealthChange(listener: (healthy: boolean) => void): void;
  /** Compares the open file with its path now and reopens a moved or removed file (SIGHUP). */
  checkFile(): Promise<void>;
  /** Writes what is queued and, for a file, closes it. Lines after `close` are dropped. */
  close(): Promise<void>;
}

/** Where failures and recoveries are reported: a pino logger fits. One line each, not per line. */
export interface AuditLogger {
  error(details: { err: Error; file?: string }, message: string): void;
  warn(details: Record<string, unknown>, message: string): void;
  info(details: Record<string, unknown>, message: string): void;
}

/**
 * The few file operations the sink makes, so a test can inject an error that no unprivileged
 * file system produces on demand (EIO). The default is node:fs.
 */
export interface AuditFileSystem {
  open(path: string): Promise<number>;
  write(fd: number, buffer: Buffer, offset: number, length: number): Promise<number>;
  ftruncate(fd: number, length: number): Promise<void>;
  fstat(fd: number): Promise<FileIdentity & { readonly size: number }>;
  stat(path: string): Promise<FileIdentity>;
  close(fd: number): Promise<void>;
}

export interface FileIdentity {
  readonly dev: number;
  readonly ino: number;
}

export interface AuditTrailOptions {
  /** Appends to this file (created with mode 0600 if missing). */
  readonly file?: string;
  /** Writes to this stream instead (ignored when `file` is set). Default: stdout. */
  readonly stream?: NodeJS.WritableStream;
  /** Default `refuse`. */
  readonly onFailure?: AuditFailurePolicy;
  readonly logger?: AuditLogger;
  /** Hears of every line that could not be written (a metric), and of health changes. */
  readonly onWriteFailures?: (lines: number) => void;
  readonly onHealthChange?: (healthy: boolean) => void;
  /** How often a failing sink retries on its own. Default 1 s. */
  readonly retryIntervalMs?: number;
  /** How often the open file is compared with its path. Default 2 s. */
  readonly fileCheckIntervalMs?: number;
  readonly fileSystem?: AuditFileSystem;
  /** Milliseconds since the epoch, for the `audit.gap` line. Default `Date.now`. */
  readonly now?: () => number;
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
  /** The recorded bot instance (docs/store.md), on success. */
  readonly bot_instance_id?: string;
  readonly generation?: number;
  /** The name of the lock that refused a `join_locked` attempt. */
  readonly lock?: string;
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
      ...(outcome.botInstanceId === undefined
        ? {}
        : { bot_instance_id: outcome.botInstanceId, generation: outcome.generation ?? 0 }),
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
    ...(outcome.lock === undefined ? {} : { lock: outcome.lock.name }),
  };
}

const stderrLogger: AuditLogger = {
  error(details, message) {
    writeStderr("error", message, {
      ...(details.file === undefined ? {} : { file: details.file }),
      err: { message: details.err.message, code: (details.err as NodeJS.ErrnoException).code },
    });
  },
  warn(details, message) {
    writeStderr("warn", message, details);
  },
  info(details, message) {
    writeStderr("info", message, details);
  },
};

function writeStderr(level: string, msg: string, details: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ level, time: Date.now(), msg, ...details })}\n`);
}

export const nodeAuditFileSystem: AuditFileSystem = {
  open: (path) =>
    new Promise((resolve, reject) => {
      fs.open(path, "a", 0o600, (err, fd) => (err === null ? resolve(fd) : reject(err)));
    }),
  write: (fd, buffer, offset, length) =>
    new Promise((resolve, reject) => {
      fs.write(fd, buffer, offset, length, null, (err, written) =>
        err === null ? resolve(written) : reject(err),
      );
    }),
  ftruncate: (fd, length) =>
    new Promise((resolve, reject) => {
      fs.ftruncate(fd, length, (err) => (err === null ? resolve() : reject(err)));
    }),
  fstat: (fd) =>
    new Promise((resolve, reject) => {
      fs.fstat(fd, (err, st) => (err === null ? resolve(st) : reject(err)));
    }),
  stat: (path) =>
    new Promise((resolve, reject) => {
      fs.stat(path, (err, st) => (err === null ? resolve(st) : reject(err)));
    }),
  close: (fd) =>
    new Promise((resolve, reject) => {
      fs.close(fd, (err) => (err === null ? resolve() : reject(err)));
    }),
};

/** What a caller is told when its certificates are withheld for want of an audit line. */
export const AUDIT_UNAVAILABLE_MESSAGE =
  "the audit trail cannot be written, so no certificate is issued; retry later";

/** Where lines go: a file or a stream. `append` writes a whole buffer or rejects. */
interface Target {
  /** Writes all of `data` or none of it (as far as the target can promise). */
  append(data: Buffer): Promise<void>;
  /** Reopens a moved or removed file; rejects when the path cannot be opened. */
  check(): Promise<"same" | "reopened">;
  close(): Promise<void>;
}

interface Pending {
  readonly line: string;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

/**
 * Opens the audit trail. With a file that cannot be opened, rejects with a `ConfigError` under
 * `refuse`; under `continue` it logs a warning and starts unhealthy, retrying on its own.
 *
 * @example
 * const audit = await openAuditTrail({ file: config.audit.file, logger: log });
 * await audit.record(attempt); // before the certificates are sent
 */
export async function openAuditTrail(options: AuditTrailOptions): Promise<AuditTrail> {
  const logger = options.logger ?? stderrLogger;
  const policy = options.onFailure ?? "refuse";
  const file = options.file;
  let target: Target;
  let startError: Error | undefined;
  if (file === undefined) {
    target = streamTarget(options.stream ?? process.stdout);
  } else {
    const fileTarget = new FileTarget(file, options.fileSystem ?? nodeAuditFileSystem);
    try {
      await fileTarget.open();
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? asError(err).message;
      if (policy === "refuse") {
        throw new ConfigError([
          `${file}: audit.file: cannot be opened for appending (${code}); fix the path or its permissions, or set audit.on_failure: continue to serve without an audit trail`,
        ]);
      }
      startError = asError(err);
    }
    target = fileTarget;
  }
  const sink = new GroupCommitSink(target, policy, logger, options, file);
  if (startError !== undefined) sink.failAtStart(startError);
  return sink;
}

class GroupCommitSink implements AuditTrail {
  readonly #target: Target;
  readonly #policy: AuditFailurePolicy;
  readonly #logger: AuditLogger;
  readonly #file: string | undefined;
  readonly #now: () => number;
  #queue: Pending[] = [];
  #running = false;
  #idle: Promise<void> = Promise.resolve();
  #markIdle: () => void = () => {};
  #closed = false;
  #healthy = true;
  #checkDue = false;
  #probeDue = false;
  /** Lines lost since the sink last wrote one, and when the run of failures began. */
  #lost = 0;
  #failingSince = 0;
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #failureListeners: Array<(lines: number) => void> = [];
  readonly #healthListeners: Array<(healthy: boolean) => void> = [];

  constructor(
    target: Target,
    policy: AuditFailurePolicy,
    logger: AuditLogger,
    options: AuditTrailOptions,
    file: string | undefined,
  ) {
    this.#target = target;
    this.#policy = policy;
    this.#logger = logger;
    this.#file = file;
    this.#now = options.now ?? Date.now;
    if (options.onWriteFailures !== undefined) this.#failureListeners.push(options.onWriteFailures);
    if (options.onHealthChange !== undefined) this.#healthListeners.push(options.onHealthChange);
    const retry = setInterval(() => {
      if (!this.#healthy) {
        this.#probeDue = true;
        this.#kick();
      }
    }, options.retryIntervalMs ?? 1000);
    this.#timers.push(retry);
    if (file !== undefined) {
      const check = setInterval(() => {
        this.#checkDue = true;
        this.#kick();
      }, options.fileCheckIntervalMs ?? 2000);
      this.#timers.push(check);
    }
    for (const timer of this.#timers) timer.unref();
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  onWriteFailures(listener: (lines: number) => void): void {
    this.#failureListeners.push(listener);
  }

  onHealthChange(listener: (healthy: boolean) => void): void {
    this.#healthListeners.push(listener);
  }

  failAtStart(err: Error): void {
    this.#fail(err, 0);
  }

  record(attempt: JoinAttempt): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ line: `${JSON.stringify(toAuditEvent(attempt))}\n`, resolve, reject });
      this.#kick();
    });
  }

  checkFile(): Promise<void> {
    this.#checkDue = true;
    this.#kick();
    return this.#idle;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const timer of this.#timers) clearInterval(timer);
    await this.#idle;
    await this.#target.close();
  }

  /** Starts the one worker unless it runs already: writes, checks and probes never overlap. */
  #kick(): void {
    if (this.#running) return;
    this.#running = true;
    this.#idle = new Promise((resolve) => {
      this.#markIdle = resolve;
    });
    void this.#work();
  }

  async #work(): Promise<void> {
    try {
      while (this.#checkDue || this.#queue.length > 0 || this.#probeDue) {
        if (this.#checkDue) {
          this.#checkDue = false;
          await this.#checkNow();
        } else if (this.#queue.length > 0) {
          // Everything that queued while the previous write was in flight goes out as one write.
          const batch = this.#queue;
          this.#queue = [];
          await this.#writeBatch(batch);
        } else {
          this.#probeDue = false;
          if (!this.#healthy) await this.#writeBatch([]);
        }
      }
    } finally {
      this.#running = false;
      this.#markIdle();
    }
  }

  async #checkNow(): Promise<void> {
    try {
      const result = await this.#target.check();
      if (result === "reopened") {
        this.#logger.info(
          { file: this.#file },
          "the audit file was moved or removed; a new one is opened at its path",
        );
      }
    } catch (err) {
      this.#fail(asError(err), 0);
    }
  }

  async #writeBatch(batch: readonly Pending[]): Promise<void> {
    let text = "";
    for (const pending of batch) text += pending.line;
    if (!this.#healthy) text = this.#gapLine() + text;
    if (text === "") return;
    try {
      await this.#target.append(Buffer.from(text, "utf8"));
    } catch (err) {
      this.#fail(asError(err), batch.length);
      if (this.#policy === "refuse") {
        const refusal = new JoinError("audit_unavailable", AUDIT_UNAVAILABLE_MESSAGE);
        for (const pending of batch) pending.reject(refusal);
      } else {
        for (const pending of batch) pending.resolve();
      }
      return;
    }
    if (!this.#healthy) this.#recover();
    for (const pending of batch) pending.resolve();
  }

  /** The line that marks a gap in the trail: when it began and how many lines it holds. */
  #gapLine(): string {
    return `${JSON.stringify({
      event: "audit.gap",
      code: "TJ002W",
      time: new Date(this.#now()).toISOString(),
      since: new Date(this.#failingSince).toISOString(),
      lost_lines: this.#lost,
      on_failure: this.#policy,
    })}\n`;
  }

  #fail(err: Error, lines: number): void {
    if (lines > 0) for (const listener of this.#failureListeners) listener(lines);
    this.#lost += lines;
    if (!this.#healthy) return;
    this.#healthy = false;
    this.#failingSince = this.#now();
    for (const listener of this.#healthListeners) listener(false);
    const file = this.#file;
    this.#logger.error(
      file === undefined ? { err } : { err, file },
      this.#policy === "refuse"
        ? "audit trail cannot be written: joins are refused (audit_unavailable) until it can"
        : "audit trail cannot be written: joins go on and their audit lines are lost (on_failure: continue)",
    );
  }

  #recover(): void {
    this.#healthy = true;
    this.#logger.info(
      { lost_lines: this.#lost, since: new Date(this.#failingSince).toISOString() },
      "audit trail writable again",
    );
    this.#lost = 0;
    for (const listener of this.#healthListeners) listener(true);
  }
}

/**
 * An append-only file. Tracks the length after the last whole write so a short write (a disk
 * that filled up mid-line) is truncated away, and the identity of the open file so a moved or
 * removed one is noticed.
 */
class FileTarget implements Target {
  readonly #path: string;
  readonly #fs: AuditFileSystem;
  #fd: number | undefined;
  #identity: FileIdentity | undefined;
  #goodLength = 0;
  #truncatePending = false;

  constructor(path: string, fileSystem: AuditFileSystem) {
    this.#path = path;
    this.#fs = fileSystem;
  }

  async open(): Promise<void> {
    const fd = await this.#fs.open(this.#path);
    try {
      const st = await this.#fs.fstat(fd);
      await this.#closeQuietly();
      this.#fd = fd;
      this.#identity = { dev: st.dev, ino: st.ino };
      this.#goodLength = st.size;
      this.#truncatePending = false;
    } catch (err) {
      await this.#fs.close(fd).catch(() => {});
      throw err;
    }
  }

  async append(data: Buffer): Promise<void> {
    if (this.#fd === undefined) await this.open();
    const fd = this.#fd as number;
    if (this.#truncatePending) {
      await this.#fs.ftruncate(fd, this.#goodLength);
      this.#truncatePending = false;
    }
    let offset = 0;
    try {
      while (offset < data.length) {
        const written = await this.#fs.write(fd, data, offset, data.length - offset);
        if (written <= 0) throw Object.assign(new Error("short write"), { code: "EIO" });
        offset += written;
      }
    } catch (err) {
      if (offset > 0) {
        try {
          await this.#fs.ftruncate(fd, this.#goodLength);
        } catch {
          // Retried before the next write; until then the sink is failing anyway.
          this.#truncatePending = true;
        }
      }
      throw err;
    }
    this.#goodLength += data.length;
  }

  async check(): Promise<"same" | "reopened"> {
    let current: FileIdentity | undefined;
    try {
      current = await this.#fs.stat(this.#path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    const open = this.#identity;
    if (
      this.#fd !== undefined &&
      open !== undefined &&
      current !== undefined &&
      current.dev === open.dev &&
      current.ino === open.ino
    ) {
      return "same";
    }
    if (this.#truncatePending) {
      // A half-written line sits in the old file: cut it before leaving that file behind.
      if (this.#fd !== undefined) await this.#fs.ftruncate(this.#fd, this.#goodLength);
      this.#truncatePending = false;
    }
    try {
      await this.open();
    } catch (err) {
      // Lines must not go on into a file nobody can find any more.
      await this.#closeQuietly();
      throw err;
    }
    return "reopened";
  }

  async close(): Promise<void> {
    await this.#closeQuietly();
  }

  async #closeQuietly(): Promise<void> {
    const fd = this.#fd;
    this.#fd = undefined;
    this.#identity = undefined;
    if (fd !== undefined) await this.#fs.close(fd).catch(() => {});
  }
}

/** A stream (stdout): a line is confirmed when the stream's write callback reports success. */
function streamTarget(stream: NodeJS.WritableStream): Target {
  let failure: Error | undefined;
  // Without a listener an EPIPE on stdout would be thrown and end the process.
  stream.on("error", (err: Error) => {
    failure = err;
  });
  return {
    append(data) {
      if (failure !== undefined) return Promise.reject(failure);
      return new Promise<void>((resolve, reject) => {
        try {
          stream.write(data, (err?: Error | null) => {
            if (err === undefined || err === null) resolve();
            else reject(err);
          });
        } catch (err) {
          reject(asError(err));
        }
      });
    },
    check: () => Promise.resolve("same"),
    async close() {
      // Not ours to end (stdout); wait until what we wrote has left the buffer.
      const writable = stream as NodeJS.WritableStream & { writableNeedDrain?: boolean };
      if (writable.writableNeedDrain === true && failure === undefined) {
        await new Promise<void>((resolve) => stream.once("drain", resolve));
      }
    },
  };
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
