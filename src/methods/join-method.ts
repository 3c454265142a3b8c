/**
 * The one interface every join method implements (Teleport keeps one file per method in
 * `lib/auth/join`, step-ca one provisioner per type behind one interface). A method:
 *
 * 1. reads its part of a token's spec when the resources load, and prepares everything a join
 *    needs (globs compiled, issuer URLs parsed, verify options set): an admin's mistake fails
 *    at start-up with `file:line`, never as `internal` on the first join;
 * 2. authenticates a join request against that prepared spec (verify the proof, then the allow
 *    rules; fail closed) into {@link JoinAttributes};
 * 3. renders those attributes once, for the certificates, the audit trail and the response.
 *
 * The join pipeline, the CA and the HTTP layer only see this interface, never a method's name.
 */
import type { OidcKeyLookup } from "../jwt/oidc.ts";
import type { FieldReader } from "../yaml/field-reader.ts";
import type { VerifiedTokenCache } from "./verified-token-cache.ts";

/**
 * What a join proved, rendered once by its method when the proof verified. Never carries the
 * proof (the JWT) or key material.
 */
export interface JoinAttributes {
  /** The join method, as `join_method` in the audit trail and the certificates names it. */
  readonly method: string;
  /** The audit line's `join_attrs`: flat strings. */
  readonly audit: Readonly<Record<string, string>>;
  /** The join response's `join_attrs`: `{ <method>: { ... } }`. */
  readonly response: Readonly<Record<string, unknown>>;
  /**
   * The method's member of Teleport's `JoinAttrs` JSON (`"<method>":{...}`), which
   * {@link encodeCertificateJoinAttributes} completes with the token's `meta`.
   */
  readonly certificateMember: string;
  /** The joining instance, as the bot-instance store records it and locks match it. */
  readonly instance: InstanceFacts;
}

/**
 * What identifies one instance of a bot and describes it in the store (docs/store.md). The
 * store's columns are Kubernetes' words; another method would map its own facts onto them.
 */
export interface InstanceFacts {
  /** Stable across one instance's renewals and unique to it: for Kubernetes, the pod UID. */
  readonly uid: string;
  /** The token's type within its method (`static_jwks`, `oidc`). */
  readonly joinType: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly podName: string;
  readonly nodeName: string | undefined;
  /** The proof's own id (`jti`), for the history: which token a join presented. */
  readonly jti: string | undefined;
}

/**
 * Join attributes as JSON in the shape of Teleport's `JoinAttrs` protobuf message serialised by
 * protojson with proto field names (the value format Teleport writes under OID 1.3.9999.2.21,
 * though Teleport puts it in the subject name and kube-join in an extension, so a reader of
 * Teleport's certificates parses the value but must look for it here). Key order is fixed, so
 * equal inputs give equal bytes: `{"meta":{"join_token_name":..,"join_method":..},"<method>":{..}}`.
 */
export function encodeCertificateJoinAttributes(
  tokenName: string,
  attributes: JoinAttributes,
): string {
  const meta = JSON.stringify({ join_token_name: tokenName, join_method: attributes.method });
  return `{"meta":${meta},${attributes.certificateMember}}`;
}

/** What a method may use while it authenticates one request. */
export interface AuthenticateContext {
  /** The audience a proof must be issued for: the cluster name. */
  readonly audience: string;
  /** The time of the join, milliseconds since the epoch. */
  readonly nowMs: number;
  /** The verified-token cache; without one every join verifies its proof. */
  readonly cache: VerifiedTokenCache<VerifiedProof> | undefined;
  /** Keys of OIDC issuers (discovery + JWKS); without it issuer-bound proofs get `keys_unavailable`. */
  readonly oidcKeys: OidcKeyLookup | undefined;
  /** Receives unexpected errors (bugs, I/O) with context; never sent to the caller. */
  readonly onInternalError:
    ((err: unknown, context: { readonly stage: string }) => void) | undefined;
  /** Keys tried for a JWT proof that names no key id (`max_keys_without_kid`); default 4. */
  readonly maxKeysWithoutKid?: number | undefined;
}

/** Filled by a method as it goes, for the join attempt's event (also when it then refuses). */
export interface AuthenticateTrace {
  /** Whether the verified-token cache answered (undefined when verification was not reached). */
  cache: "hit" | "miss" | undefined;
  /** Set as soon as the proof verified, before the allow rules are checked. */
  attributes: JoinAttributes | undefined;
}

/** What a method keeps in the verified-token cache for one verified proof. */
export interface VerifiedProof {
  /** The proof's own expiry, seconds since the epoch: the entry never outlives it. */
  readonly expiresAt: number;
  readonly attributes: JoinAttributes;
}

/** A token's join settings, read and prepared at load by its method. Immutable. */
export interface PreparedJoin {
  /** The name of the method that prepared it (`spec.join_method`). */
  readonly method: string;
  /**
   * Verifies `proof` (the request's `id_token`) and checks it against this token's rules.
   * Resolves with the attributes it proves; rejects with a `JoinError` whose code and message are
   * safe for the caller. Fails closed: anything it cannot check is a refusal.
   */
  authenticate(
    proof: string,
    context: AuthenticateContext,
    trace: AuthenticateTrace,
  ): Promise<JoinAttributes>;
  /** Lines describing the settings for `kube-join check` (no secrets; keys by kid only). */
  describe(): readonly string[];
  /**
   * The settings as read, before they were prepared: plain data (objects, arrays, strings,
   * numbers, Maps, Sets) and `KeySet`s, what `JoinMethod.revive` takes back. The resource loader
   * moves these from its parsing thread to the event loop's (see `src/resources/transfer.ts`).
   */
  readonly settings: unknown;
}

/** One join method: reads and prepares its part of a token's spec at load. */
export interface JoinMethod {
  /** `spec.join_method`, and the name of the method's block in the spec (`spec.<name>`). */
  readonly name: string;
  /**
   * Reads the method's settings from a token's `spec` mapping, reporting problems with their
   * field paths in `r`. Undefined when there were problems.
   */
  readSpec(r: FieldReader, spec: Readonly<Record<string, unknown>>): PreparedJoin | undefined;
  /**
   * Prepares settings this method read earlier (`PreparedJoin.settings`, possibly in another
   * thread) again, exactly as `readSpec` prepared them. Never given anything `readSpec` did not
   * produce.
   */
  revive(settings: unknown): PreparedJoin;
}
