import type { KeySet } from "../jwt/keys.ts";
import type { Lock } from "../locks/lock.ts";

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

/** One entry of `spec.kubernetes.allow`. Matching is in `src/rules.ts`. */
export type AllowRule =
  | { readonly kind: "exact"; readonly namespace: string; readonly name: string }
  | { readonly kind: "glob"; readonly namespaceGlob: string; readonly nameGlob: string };

export type KubernetesJoinSpec =
  | {
      readonly type: "static_jwks";
      readonly keySet: KeySet;
      readonly allow: readonly AllowRule[];
    }
  | {
      readonly type: "oidc";
      readonly issuer: string;
      readonly insecureAllowHttpIssuer: boolean;
      readonly allow: readonly AllowRule[];
    };

/** `kind: token`, `version: v2`. */
export interface JoinToken {
  readonly name: string;
  /** `metadata.expires`, milliseconds since the epoch. */
  readonly expiresAt: number | undefined;
  readonly roles: readonly string[];
  readonly botName: string | undefined;
  /** Any join method Teleport knows; only `kubernetes` can join here (others: join_method_mismatch). */
  readonly joinMethod: string;
  /** Present when `joinMethod` is `kubernetes`. */
  readonly kubernetes: KubernetesJoinSpec | undefined;
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
