import type { ErrorCode } from "../errors.ts";

/**
 * One join attempt, as reported to listeners (metrics, audit). Never carries the JWT or key
 * material.
 */
export interface JoinAttempt {
  readonly time: Date;
  readonly remoteAddr: string;
  readonly tokenName: string | undefined;
  readonly botName: string | undefined;
  readonly joinMethod: "kubernetes";
  /** Present once the JWT verified. */
  readonly attrs:
    | { readonly namespace: string; readonly serviceAccount: string; readonly pod: string }
    | undefined;
  /** Whether the verified-token cache answered (undefined when verification was not reached). */
  readonly cache: "hit" | "miss" | undefined;
  readonly durationSeconds: number;
  readonly outcome:
    | {
        readonly ok: true;
        readonly tlsSerial: string;
        readonly sshSerial: string;
        readonly expires: Date;
      }
    | { readonly ok: false; readonly code: ErrorCode; readonly message: string };
}

export type JoinListener = (attempt: JoinAttempt) => void;
