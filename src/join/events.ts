import type { ErrorCode } from "../errors.ts";
import type { JoinAttributes } from "../methods/join-method.ts";

/**
 * One join attempt, as reported to listeners (metrics, audit). Never carries the JWT or key
 * material.
 */
export interface JoinAttempt {
  readonly time: Date;
  readonly remoteAddr: string;
  readonly tokenName: string | undefined;
  readonly botName: string | undefined;
  /** The token's join method (the first one served while no token named one). */
  readonly joinMethod: string;
  /** Present once the proof verified (also when the allow rules then refused it). */
  readonly attrs: JoinAttributes | undefined;
  /** Whether the verified-token cache answered (undefined when verification was not reached). */
  readonly cache: "hit" | "miss" | undefined;
  readonly durationSeconds: number;
  readonly outcome:
    | {
        readonly ok: true;
        readonly tlsSerial: string;
        readonly sshSerial: string;
        readonly expires: Date;
        /** The recorded bot instance (docs/store.md); undefined when the service keeps none. */
        readonly botInstanceId?: string | undefined;
        readonly generation?: number | undefined;
      }
    | {
        readonly ok: false;
        readonly code: ErrorCode;
        readonly message: string;
        /** For `join_locked`: the lock's name (audit) and its first target field (metric). */
        readonly lock?: { readonly name: string; readonly targetField: string } | undefined;
      };
}

export type JoinListener = (attempt: JoinAttempt) => void;
