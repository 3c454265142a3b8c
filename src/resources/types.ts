import type { Lock } from "../locks/lock.ts";
import type { PreparedJoin } from "../methods/join-method.ts";
import type { SourcePosition } from "../yaml/yaml-source.ts";

export type { SourcePosition };

/** `kind: bot`, `version: v1`. */
export interface Bot {
  readonly name: string;
  readonly roles: readonly string[];
  /** Trait name -> values, e.g. `logins` -> `["root", "ubuntu"]`. */
  readonly traits: ReadonlyMap<string, readonly string[]>;
  /** `spec.max_session_ttl`, in milliseconds (default 12 h). */
  readonly maxSessionTtlMs: number;
  readonly source: SourcePosition;
}

/** `kind: token`, `version: v2`. */
export interface JoinToken {
  readonly name: string;
  /** `metadata.expires`, milliseconds since the epoch. */
  readonly expiresAt: number | undefined;
  readonly roles: readonly string[];
  readonly botName: string | undefined;
  /** Any join method Teleport knows; only those in `src/methods/registry.ts` join here. */
  readonly joinMethod: string;
  /**
   * The settings of `joinMethod`, read and prepared by that method at load; undefined for a
   * method kube-join does not serve (its joins get join_method_mismatch).
   */
  readonly join: PreparedJoin | undefined;
  readonly source: SourcePosition;
}

/** Everything loaded from the resource files, validated as a whole; swapped atomically on reload. */
export interface ResourceSet {
  readonly bots: ReadonlyMap<string, Bot>;
  readonly tokens: ReadonlyMap<string, JoinToken>;
  /** `kind: lock` resources: enforced with the store's locks (see `src/locks/lock.ts`). */
  readonly locks: ReadonlyMap<string, Lock>;
  /** Non-fatal notes (other kinds skipped, JWK with use != sig skipped), formatted like problems. */
  readonly warnings: readonly string[];
  /** The files that were read, for watching. */
  readonly files: readonly string[];
}
