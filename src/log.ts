/**
 * The service's logger: JSON lines on stderr (stdout is the default audit sink), with levels.
 *
 * Redaction is a second line of defence: no code of ours logs a JWT or key material, but should a
 * request body or an error object carrying one ever reach a log call, these fields are censored.
 */
import { pino, type Logger } from "pino";

export type { Logger } from "pino";

/** Field names censored wherever they appear (top level, or one or two levels down). */
const SECRET_FIELDS = [
  "id_token",
  "idToken",
  "jwt",
  "token_value",
  "authorization",
  "private_key",
  "privateKey",
  "key_pem",
];

export const REDACT_PATHS: readonly string[] = SECRET_FIELDS.flatMap((f) => [
  f,
  `*.${f}`,
  `*.*.${f}`,
]);

export interface LoggerOptions {
  readonly level?: string;
  /** File descriptor to write to; 2 (stderr) unless a test says otherwise. */
  readonly fd?: number;
}

/**
 * Creates the process logger. Writes synchronously so the last lines before an exit are never
 * lost; the service logs a handful of lines per reload, not per request.
 *
 * @example const log = createLogger({ level: "info" }); log.info({ join_url }, "ready");
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      level: options.level ?? "info",
      base: { service: "kube-join" },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
    },
    pino.destination({ fd: options.fd ?? 2, sync: true }),
  );
}
