/**
 * The join pipeline, with no HTTP in it:
 *
 *   lookup token -> token expiry, join method, role -> the token's method authenticates the
 *   request (verify, cached; allow rules) -> bot -> parse public keys -> lifetime -> issue
 *   certificates
 *
 * The pipeline knows join methods only through `src/methods/join-method.ts`: each token carries
 * its method's prepared settings, and the attributes the method renders go unchanged to the
 * certificates, the listeners and the result.
 *
 * Every attempt, successful or not, is reported once to the listeners (metrics, audit) with its
 * duration. A join runs entirely under the resource snapshot it started with, so a reload in the
 * middle never mixes two sets. Errors other than `JoinError` become `internal` with a generic
 * message; their details go only to `onInternalError` (the log).
 */
import type { CertificateAuthority } from "../ca/authority.ts";
import { resolveCertificateLifetime } from "../ca/lifetime.ts";
import { parseSshPublicKey, parseTlsPublicKey } from "../ca/public-keys.ts";
import { INTERNAL_MESSAGE, JoinError } from "../errors.ts";
import type { OidcKeyLookup } from "../jwt/oidc.ts";
import {
  encodeCertificateJoinAttributes,
  type AuthenticateTrace,
  type JoinAttributes,
  type VerifiedProof,
} from "../methods/join-method.ts";
import { DEFAULT_JOIN_METHOD, JOIN_METHODS } from "../methods/registry.ts";
import type { VerifiedTokenCache } from "../methods/verified-token-cache.ts";
import type { ResourceSet } from "../resources/types.ts";
import type { JoinAttempt, JoinListener } from "./events.ts";

/** What a join runs against: swapped as a whole on reload. */
export interface JoinSnapshot {
  readonly resources: ResourceSet;
  readonly authority: CertificateAuthority;
}

export interface JoinServiceOptions {
  /** The expected JWT audience. */
  readonly clusterName: string;
  readonly certs: { readonly defaultTtlMs: number; readonly maxTtlMs: number };
  /** The current snapshot; undefined until resources and CA are loaded (`not_ready`). */
  readonly snapshot: () => JoinSnapshot | undefined;
  /** Milliseconds since the epoch. Default `Date.now`. */
  readonly now?: () => number;
  /** Keys of OIDC issuers, for issuer-bound tokens; without it they fail with `keys_unavailable`. */
  readonly oidcKeys?: OidcKeyLookup;
  /** The verified-token cache; without one every join verifies its proof. */
  readonly cache?: VerifiedTokenCache<VerifiedProof>;
  readonly listeners?: readonly JoinListener[];
  /** Receives unexpected errors (bugs, I/O) with context; never sent to the caller. */
  readonly onInternalError?: (err: unknown, context: { readonly stage: string }) => void;
}

/** A join request after the HTTP layer checked its shape. Holds the JWT: never log it. */
export interface JoinRequest {
  readonly tokenName: string;
  /** Requested role; kube-join joins bots only (`Bot`, case-insensitive). */
  readonly role: string;
  readonly idToken: string;
  readonly publicTlsKey: string;
  readonly publicSshKey: string;
  /** Requested certificate expiry, milliseconds since the epoch. */
  readonly expiresAtMs: number | undefined;
  /** The caller's address, for the audit trail. */
  readonly remoteAddr: string;
}

export interface JoinResult {
  readonly botName: string;
  readonly user: string;
  readonly expires: Date;
  readonly tlsCert: string;
  readonly sshCert: string;
  readonly tlsSerial: string;
  readonly sshSerial: string;
  readonly tlsCaCerts: readonly string[];
  readonly sshCaKeys: readonly string[];
  /** What the join proved, as its method rendered it (the response's `join_attrs`). */
  readonly attributes: JoinAttributes;
}

/** Per-attempt facts gathered along the pipeline, for the JoinAttempt event. */
interface Trace extends AuthenticateTrace {
  botName: string | undefined;
  joinMethod: string;
}

/** The served methods, quoted, joined by " or ": what a token must use to join here. */
const SERVED_METHODS = [...JOIN_METHODS.keys()].map((name) => JSON.stringify(name)).join(" or ");

function newTrace(): Trace {
  return {
    botName: undefined,
    joinMethod: DEFAULT_JOIN_METHOD,
    attributes: undefined,
    cache: undefined,
  };
}

/**
 * The join service: one instance per process, stateless apart from the cache.
 *
 * @example
 * const joins = new JoinService({ clusterName, certs, snapshot: () => state.snapshot });
 * const result = await joins.join({ tokenName: "example-bot", role: "Bot", idToken, ... });
 */
export class JoinService {
  readonly #options: JoinServiceOptions;
  readonly #now: () => number;
  readonly #listeners: JoinListener[];

  constructor(options: JoinServiceOptions) {
    if (options.clusterName === "") throw new TypeError("clusterName must not be empty");
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#listeners = [...(options.listeners ?? [])];
  }

  /** Adds a listener for every later attempt. */
  onAttempt(listener: JoinListener): void {
    this.#listeners.push(listener);
  }

  /**
   * Runs one join. Resolves with the certificates, or rejects with a `JoinError` whose code and
   * message are safe to return to the caller.
   */
  async join(request: JoinRequest): Promise<JoinResult> {
    const started = process.hrtime.bigint();
    const nowMs = this.#now();
    const trace = newTrace();
    try {
      const result = await this.#run(request, nowMs, trace);
      this.#emit(request, trace, started, nowMs, {
        ok: true,
        tlsSerial: result.tlsSerial,
        sshSerial: result.sshSerial,
        expires: result.expires,
      });
      return result;
    } catch (err) {
      const joinError = this.#asJoinError(err, "join");
      this.#emit(request, trace, started, nowMs, {
        ok: false,
        code: joinError.code,
        message: joinError.message,
      });
      throw joinError;
    }
  }

  /**
   * Reports an attempt the HTTP layer refused before it could become a `JoinRequest` (a body that
   * is not JSON, too large, missing fields), so the audit trail and metrics see every attempt.
   */
  reportRefused(attempt: {
    readonly remoteAddr: string;
    readonly tokenName: string | undefined;
    readonly error: JoinError;
  }): void {
    this.#emit(
      { remoteAddr: attempt.remoteAddr, tokenName: attempt.tokenName },
      newTrace(),
      process.hrtime.bigint(),
      this.#now(),
      { ok: false, code: attempt.error.code, message: attempt.error.message },
    );
  }

  async #run(request: JoinRequest, nowMs: number, trace: Trace): Promise<JoinResult> {
    // Taken once: everything below sees the same resources even if a reload swaps them meanwhile.
    const snapshot = this.#options.snapshot();
    if (snapshot === undefined) {
      throw new JoinError("not_ready", "the service is still loading its resources and CA");
    }
    const token = snapshot.resources.tokens.get(request.tokenName);
    if (token === undefined) {
      throw new JoinError("token_not_found", "no join token of that name exists");
    }
    trace.botName = token.botName;
    if (token.expiresAt !== undefined && token.expiresAt <= nowMs) {
      // Nothing is proven yet: say what failed, not the token's settings.
      throw new JoinError("token_expired", "the join token has expired");
    }
    const join = token.join;
    if (join === undefined) {
      throw new JoinError(
        "join_method_mismatch",
        `the join token does not use the ${SERVED_METHODS} join method`,
      );
    }
    trace.joinMethod = join.method;
    if (!isBotRole(request.role) || !token.roles.some(isBotRole)) {
      throw new JoinError(
        "role_mismatch",
        `the join token does not allow role ${JSON.stringify(request.role)}: kube-join joins bots (role "Bot")`,
      );
    }

    const attributes = await join.authenticate(
      request.idToken,
      {
        audience: this.#options.clusterName,
        nowMs,
        cache: this.#options.cache,
        oidcKeys: this.#options.oidcKeys,
        onInternalError: this.#options.onInternalError,
      },
      trace,
    );

    const bot =
      token.botName === undefined ? undefined : snapshot.resources.bots.get(token.botName);
    if (bot === undefined) {
      // Resource validation guarantees every bot token names a loaded bot.
      throw new Error(
        `token ${token.name} names bot ${String(token.botName)}, which is not loaded`,
      );
    }
    const tlsPublicKey = parseTlsPublicKey(request.publicTlsKey);
    const sshPublicKey = parseSshPublicKey(request.publicSshKey);
    const { notBeforeMs, notAfterMs } = resolveCertificateLifetime(request.expiresAtMs, nowMs, {
      defaultTtlMs: this.#options.certs.defaultTtlMs,
      maxTtlMs: this.#options.certs.maxTtlMs,
      botMaxSessionTtlMs: bot.maxSessionTtlMs,
    });
    const issued = snapshot.authority.issueBotCertificates({
      botName: bot.name,
      roles: bot.roles,
      logins: bot.traits.get("logins") ?? [],
      joinAttributesJson: encodeCertificateJoinAttributes(token.name, attributes),
      tlsPublicKey,
      sshPublicKey,
      notBeforeMs,
      notAfterMs,
    });
    const trusted = snapshot.authority.trusted();
    return {
      botName: bot.name,
      user: `bot-${bot.name}`,
      expires: issued.notAfter,
      tlsCert: issued.tlsCert,
      sshCert: issued.sshCert,
      tlsSerial: issued.tlsSerial,
      sshSerial: issued.sshSerial,
      tlsCaCerts: trusted.tlsCaCerts,
      sshCaKeys: trusted.sshCaKeys,
      attributes,
    };
  }

  #asJoinError(err: unknown, stage: string): JoinError {
    if (err instanceof JoinError) return err;
    this.#options.onInternalError?.(err, { stage });
    return new JoinError("internal", INTERNAL_MESSAGE);
  }

  #emit(
    request: Pick<JoinRequest, "remoteAddr"> & { readonly tokenName: string | undefined },
    trace: Trace,
    started: bigint,
    nowMs: number,
    outcome: JoinAttempt["outcome"],
  ): void {
    const attempt: JoinAttempt = {
      time: new Date(nowMs),
      remoteAddr: request.remoteAddr,
      tokenName: request.tokenName,
      botName: trace.botName,
      joinMethod: trace.joinMethod,
      attrs: trace.attributes,
      cache: trace.cache,
      durationSeconds: Number(process.hrtime.bigint() - started) / 1e9,
      outcome,
    };
    for (const listener of this.#listeners) {
      try {
        listener(attempt);
      } catch (err) {
        // A failing listener (say, a full disk under the audit file) never fails the join.
        this.#options.onInternalError?.(err, { stage: "listener" });
      }
    }
  }
}

function isBotRole(role: string): boolean {
  return role.toLowerCase() === "bot";
}
