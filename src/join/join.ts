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
import { newCertificateSerials, tlsSerialHex } from "../ca/serials.ts";
import type { JoinAttempt, JoinListener } from "./events.ts";
import { JoinLockedError, type InstanceLedger } from "./instance-ledger.ts";

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
  /**
   * The audit trail. A successful join resolves only after `record` did; when `record` rejects,
   * the join fails with that error (`audit_unavailable`) and its certificates are never returned.
   * Failed attempts are recorded without waiting.
   */
  readonly auditTrail?: { record(attempt: JoinAttempt): Promise<void> };
  /** Keys tried for a JWT that names no key id (`max_keys_without_kid`); default 4. */
  readonly maxKeysWithoutKid?: number;
  /** Receives unexpected errors (bugs, I/O) with context; never sent to the caller. */
  readonly onInternalError?: (err: unknown, context: { readonly stage: string }) => void;
  /**
   * Bot instances and locks (docs/store.md): undefined until the store is open (`not_ready`).
   * Without the option the service records nothing and enforces no lock (unit tests).
   */
  readonly instances?: () => InstanceLedger | undefined;
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
  /** The recorded bot instance; undefined when the service keeps none. */
  readonly botInstance: { readonly id: string; readonly generation: number } | undefined;
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
    let result: JoinResult;
    try {
      result = await this.#run(request, nowMs, trace);
    } catch (err) {
      const joinError = this.#asJoinError(err, "join");
      this.#noteRefused(request, trace, nowMs, joinError);
      this.#emit(request, trace, started, nowMs, {
        ok: false,
        code: joinError.code,
        message: joinError.message,
        ...(joinError instanceof JoinLockedError
          ? { lock: { name: joinError.lockName, targetField: joinError.targetField } }
          : {}),
      });
      throw joinError;
    }
    const outcome = {
      ok: true,
      tlsSerial: result.tlsSerial,
      sshSerial: result.sshSerial,
      expires: result.expires,
      ...(result.botInstance === undefined
        ? {}
        : { botInstanceId: result.botInstance.id, generation: result.botInstance.generation }),
    } as const;
    const audit = this.#options.auditTrail;
    if (audit !== undefined) {
      try {
        await audit.record(this.#attempt(request, trace, started, nowMs, outcome));
      } catch (err) {
        // No certificate leaves without its audit line (docs/operations.md, "failure modes").
        const joinError = this.#asJoinError(err, "audit");
        this.#notify(
          this.#attempt(request, trace, started, nowMs, {
            ok: false,
            code: joinError.code,
            message: joinError.message,
          }),
        );
        throw joinError;
      }
    }
    this.#notify(this.#attempt(request, trace, started, nowMs, outcome));
    return result;
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
        maxKeysWithoutKid: this.#options.maxKeysWithoutKid,
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
    // Locks, then the instance record, then the signatures: no certificate without its record,
    // and the record's id and generation go into the certificates (serials chosen up front).
    const serials = newCertificateSerials();
    let botInstance: JoinResult["botInstance"];
    const instances = this.#options.instances;
    if (instances !== undefined) {
      const ledger = instances();
      if (ledger === undefined) {
        throw new JoinError("not_ready", "the service is still opening its store");
      }
      const facts = attributes.instance;
      const key = { botName: bot.name, tokenName: token.name, podUid: facts.uid };
      ledger.refuseIfLocked(
        { ...key, namespace: facts.namespace, serviceAccount: facts.serviceAccount },
        nowMs,
      );
      const record = await ledger.record({
        ...key,
        joinMethod: attributes.method,
        joinType: facts.joinType,
        namespace: facts.namespace,
        serviceAccount: facts.serviceAccount,
        podName: facts.podName,
        nodeName: facts.nodeName,
        atMs: nowMs,
        remoteAddress: request.remoteAddr,
        jti: facts.jti,
        tlsSerial: tlsSerialHex(serials),
        sshSerial: serials.ssh.toString(),
        // What the certificates will say: whole seconds.
        expiresAtMs: Math.floor(notAfterMs / 1000) * 1000,
      });
      botInstance = { id: record.botInstanceId, generation: record.generation };
    }
    const issued = snapshot.authority.issueBotCertificates({
      botName: bot.name,
      roles: bot.roles,
      logins: bot.traits.get("logins") ?? [],
      joinAttributesJson: encodeCertificateJoinAttributes(token.name, attributes),
      tlsPublicKey,
      sshPublicKey,
      notBeforeMs,
      notAfterMs,
      serials,
      ...(botInstance === undefined ? {} : { botInstance }),
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
      botInstance,
    };
  }

  /**
   * A refusal after the proof verified joins the history of the pod's instance, if it has one:
   * the operator sees a locked or otherwise refused pod in `kube-join instances show`. Not
   * awaited; a store outage is not a refusal worth writing down.
   */
  #noteRefused(request: JoinRequest, trace: Trace, nowMs: number, error: JoinError): void {
    const facts = trace.attributes?.instance;
    const botName = trace.botName;
    if (facts === undefined || botName === undefined || error.code === "store_unavailable") return;
    const ledger = this.#options.instances?.();
    ledger?.noteRefused(
      { botName, tokenName: request.tokenName, podUid: facts.uid },
      { atMs: nowMs, remoteAddress: request.remoteAddr, jti: facts.jti, result: error.code },
    );
  }

  #asJoinError(err: unknown, stage: string): JoinError {
    if (err instanceof JoinError) return err;
    this.#options.onInternalError?.(err, { stage });
    return new JoinError("internal", INTERNAL_MESSAGE);
  }

  /** Reports a failed attempt: to the audit trail without waiting, and to the listeners. */
  #emit(
    request: Pick<JoinRequest, "remoteAddr"> & { readonly tokenName: string | undefined },
    trace: Trace,
    started: bigint,
    nowMs: number,
    outcome: JoinAttempt["outcome"],
  ): void {
    const attempt = this.#attempt(request, trace, started, nowMs, outcome);
    // A refusal gives nothing away, so it need not wait for its line; a lost one is counted
    // by the trail itself.
    this.#options.auditTrail?.record(attempt).catch(() => {});
    this.#notify(attempt);
  }

  #attempt(
    request: Pick<JoinRequest, "remoteAddr"> & { readonly tokenName: string | undefined },
    trace: Trace,
    started: bigint,
    nowMs: number,
    outcome: JoinAttempt["outcome"],
  ): JoinAttempt {
    return {
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
  }

  #notify(attempt: JoinAttempt): void {
    for (const listener of this.#listeners) {
      try {
        listener(attempt);
      } catch (err) {
        // A failing listener (metrics) never fails the join.
        this.#options.onInternalError?.(err, { stage: "listener" });
      }
    }
  }
}

function isBotRole(role: string): boolean {
  return role.toLowerCase() === "bot";
}
