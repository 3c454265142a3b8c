import { JoinError } from "../errors.ts";
import { parseJwks, type KeySet } from "./keys.ts";
import {
  checkFetchableUrl,
  fetchText,
  issuerTlsContext,
  OidcFetchError,
  trustedCas,
  type FetchLimits,
  type OidcFailureReason,
} from "./oidc-fetch.ts";

export { OidcFetchError, type OidcFailureReason } from "./oidc-fetch.ts";

export interface OidcKeySourceOptions {
  /** PEM bundle of extra trusted CAs for private issuers, added to Node's bundled roots. */
  extraCaFile?: string | undefined;
  /** How long a discovery document is reused. Default 1 h. */
  discoveryTtlMs?: number;
  /** A key set older than this is refreshed on the next use. Default 24 h. */
  maxKeyAgeMs?: number;
  /** Per issuer: no fetch attempt sooner than this after the previous one. Default 30 s. */
  cooldownMs?: number;
  /** Larger responses are refused. Default 1 MiB. */
  maxBytes?: number;
  /** Slower responses (headers and body, redirects included) are refused. Default 15 s. */
  timeoutMs?: number;
  /** Redirects followed per request, each target under the same scheme rules. Default 3. */
  maxRedirects?: number;
  /** Injectable clock, milliseconds since the epoch. */
  now?: () => number;
  /**
   * Called once per fetch attempt (discovery when due, then the JWKS): for metrics and the log.
   * `error` is the operator-only detail; it is never shown to callers.
   */
  onFetch?: (issuer: string, ok: boolean, error?: string) => void;
}

export const OIDC_DEFAULTS = {
  discoveryTtlMs: 60 * 60 * 1000,
  maxKeyAgeMs: 24 * 60 * 60 * 1000,
  cooldownMs: 30 * 1000,
  maxBytes: 1024 * 1024,
  timeoutMs: 15 * 1000,
  maxRedirects: 3,
} as const;

const DISCOVERY_PATH = "/.well-known/openid-configuration";

/**
 * An OIDC issuer as a token configures it, parsed once when the resources load (see
 * {@link prepareOidcIssuer}) so a join never parses the URL again.
 */
export interface OidcIssuer {
  /** The issuer exactly as configured: what `iss` must equal and discovery must confirm. */
  readonly issuer: string;
  /** `insecure_allow_http_issuer`. */
  readonly allowHttp: boolean;
  /** The parsed URL, or why it cannot be fetched (reported on every use, as `keys_unavailable`). */
  readonly url: URL | string;
}

/**
 * Keys of an issuer-bound token's issuer, fetched and cached by the key source (the port the join
 * methods use; {@link OidcKeySource.keysForIssuer} implements it). Rejects with
 * `JoinError("keys_unavailable")` while the issuer has not been reachable.
 */
export type OidcKeyLookup = (issuer: OidcIssuer, kid: string | undefined) => Promise<KeySet>;

/** Parses an issuer URL once, for {@link OidcKeySource.keysForIssuer}. */
export function prepareOidcIssuer(issuer: string, allowHttp: boolean): OidcIssuer {
  return { issuer, allowHttp, url: parseIssuer(issuer, allowHttp) };
}

interface IssuerState {
  readonly issuer: string;
  discovery: { readonly jwksUri: URL; readonly fetchedAt: number } | undefined;
  keySet: KeySet | undefined;
  /** When the current key set was last fetched successfully. */
  keysFetchedAt: number | undefined;
  /** When the last fetch attempt (good or bad) started: the cooldown counts from here. */
  lastAttemptAt: number | undefined;
  lastFailure: OidcFailureReason | undefined;
  inflight: Promise<void> | undefined;
}

/**
 * Signing keys of Kubernetes clusters that publish them through OIDC discovery
 * (`<issuer>/.well-known/openid-configuration` -> `jwks_uri`), for `oidc` join tokens.
 *
 * Per issuer: discovery is reused for 1 h; the key set is refetched when it is 24 h old or a token
 * names a `kid` it lacks, but never sooner than the cooldown (30 s) after the previous attempt, so
 * a flood of unknown kids costs one fetch; concurrent callers share one fetch; a failed refresh
 * keeps the previous key set serving. Only when an issuer has never delivered keys does a call
 * fail, with `keys_unavailable`. "Per issuer" means per issuer and http permission: lookups with
 * `allowHttp` and lookups without it keep separate discovery, key sets and cooldowns, so keys
 * fetched over http never serve a token that requires https.
 *
 * @example
 * const keys = new OidcKeySource({ extraCaFile: "/etc/kube-join/issuer-ca.pem" });
 * const issuer = prepareOidcIssuer("https://oidc.example.com", false); // at load
 * const keySet = await keys.keysForIssuer(issuer, decodeJwt(jwt).kid);
 */
export class OidcKeySource {
  readonly #limits: Omit<FetchLimits, "allowHttp">;
  readonly #discoveryTtlMs: number;
  readonly #maxKeyAgeMs: number;
  readonly #cooldownMs: number;
  readonly #now: () => number;
  readonly #onFetch: OidcKeySourceOptions["onFetch"];
  /**
   * Keyed by `stateKey(issuer, allowHttp)`: keys fetched under the http permission (an http://
   * jwks_uri, a redirect to http) must never serve a token whose configuration demands https.
   */
  readonly #states = new Map<string, IssuerState>();

  /** Throws `ConfigError` when `extraCaFile` cannot be read or holds no certificate. */
  constructor(options: OidcKeySourceOptions = {}) {
    const positive = (name: keyof typeof OIDC_DEFAULTS, allowZero = false): number => {
      const value = options[name] ?? OIDC_DEFAULTS[name];
      if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
        throw new TypeError(`OidcKeySource: ${name} must be a positive number, got ${value}`);
      }
      return value;
    };
    const maxBytes = positive("maxBytes");
    const timeoutMs = positive("timeoutMs");
    const maxRedirects = positive("maxRedirects", true);
    this.#limits = {
      tls: issuerTlsContext(trustedCas(options.extraCaFile)),
      maxBytes,
      timeoutMs,
      maxRedirects,
    };
    this.#discoveryTtlMs = positive("discoveryTtlMs", true);
    this.#maxKeyAgeMs = positive("maxKeyAgeMs");
    this.#cooldownMs = positive("cooldownMs", true);
    this.#now = options.now ?? Date.now;
    this.#onFetch = options.onFetch;
  }

  /**
   * The key set to verify a token from `issuer` whose header names `kid`. Fetches when the issuer
   * has no keys yet, when its keys are older than the maximum age, or when `kid` is non-empty and
   * not in the set, each time only if the cooldown since the last attempt has passed. A token whose
   * kid is still unknown gets the current set, and verification refuses it
   * (`jwt_signature_invalid`).
   *
   * Throws `JoinError("keys_unavailable")` when no key set was ever fetched for the issuer (or the
   * issuer URL is not fetchable): the message names only the kind of failure.
   */
  keysFor(issuer: string, kid: string | undefined, allowHttp: boolean): Promise<KeySet> {
    return this.keysForIssuer(prepareOidcIssuer(issuer, allowHttp), kid);
  }

  /** {@link keysFor} for an issuer parsed at load: the join path, which parses nothing. */
  async keysForIssuer(prepared: OidcIssuer, kid: string | undefined): Promise<KeySet> {
    const { issuer, allowHttp, url: issuerUrl } = prepared;
    if (typeof issuerUrl === "string") {
      this.#report(issuer, false, issuerUrl);
      throw unavailable("issuer URL not usable");
    }
    const state = this.#stateOf(issuer, allowHttp);
    if (state.inflight !== undefined) {
      await state.inflight;
    } else if (this.#refreshDue(state, kid)) {
      await this.#refresh(issuer, issuerUrl, allowHttp, state);
    }
    if (state.keySet !== undefined) return state.keySet;
    throw unavailable(state.lastFailure ?? "issuer unreachable");
  }

  /**
   * Seconds since the issuer's freshest key set was fetched; undefined before the first success.
   * An issuer used both with and without `insecure_allow_http_issuer` has two key sets (see
   * `keysFor`); the age is the younger one's, so the gauge keeps one series per issuer URL.
   */
  keySetAgeSeconds(issuer: string): number | undefined {
    let fetchedAt: number | undefined;
    for (const allowHttp of [false, true]) {
      const at = this.#states.get(stateKey(issuer, allowHttp))?.keysFetchedAt;
      if (at !== undefined && (fetchedAt === undefined || at > fetchedAt)) fetchedAt = at;
    }
    return fetchedAt === undefined ? undefined : Math.max(0, (this.#now() - fetchedAt) / 1000);
  }

  /** `[issuer, seconds]` for every issuer whose keys have been fetched, for the age gauge. */
  keySetAges(): Array<readonly [string, number]> {
    const issuers = new Set<string>();
    for (const state of this.#states.values()) issuers.add(state.issuer);
    const ages: Array<readonly [string, number]> = [];
    for (const issuer of issuers) {
      const age = this.keySetAgeSeconds(issuer);
      if (age !== undefined) ages.push([issuer, age]);
    }
    return ages;
  }

  #stateOf(issuer: string, allowHttp: boolean): IssuerState {
    const key = stateKey(issuer, allowHttp);
    let state = this.#states.get(key);
    if (state === undefined) {
      state = {
        issuer,
        discovery: undefined,
        keySet: undefined,
        keysFetchedAt: undefined,
        lastAttemptAt: undefined,
        lastFailure: undefined,
        inflight: undefined,
      };
      this.#states.set(key, state);
    }
    return state;
  }

  #refreshDue(state: IssuerState, kid: string | undefined): boolean {
    const now = this.#now();
    if (state.lastAttemptAt !== undefined && !elapsed(now, state.lastAttemptAt, this.#cooldownMs)) {
      return false;
    }
    if (state.keySet === undefined || state.keysFetchedAt === undefined) return true;
    if (elapsed(now, state.keysFetchedAt, this.#maxKeyAgeMs)) return true;
    return kid !== undefined && kid !== "" && !state.keySet.hasKid(kid);
  }

  #refresh(issuer: string, issuerUrl: URL, allowHttp: boolean, state: IssuerState): Promise<void> {
    state.lastAttemptAt = this.#now();
    const attempt = this.#fetchKeySet(issuer, issuerUrl, allowHttp, state)
      .then(
        (keySet) => {
          // An unchanged set keeps its identity, so nothing keyed by the old object is disturbed.
          if (state.keySet?.revision !== keySet.revision) state.keySet = keySet;
          state.keysFetchedAt = this.#now();
          state.lastFailure = undefined;
          this.#report(issuer, true);
        },
        (err: unknown) => {
          const failure =
            err instanceof OidcFetchError
              ? err
              : new OidcFetchError("issuer unreachable", `unexpected: ${String(err)}`);
          state.lastFailure = failure.reason;
          this.#report(issuer, false, failure.message);
        },
      )
      .finally(() => {
        state.inflight = undefined;
      });
    state.inflight = attempt;
    return attempt;
  }

  async #fetchKeySet(
    issuer: string,
    issuerUrl: URL,
    allowHttp: boolean,
    state: IssuerState,
  ): Promise<KeySet> {
    const limits: FetchLimits = { ...this.#limits, allowHttp };
    let discovery = state.discovery;
    if (
      discovery === undefined ||
      elapsed(this.#now(), discovery.fetchedAt, this.#discoveryTtlMs)
    ) {
      const jwksUri = await this.#discover(issuer, issuerUrl, limits);
      discovery = { jwksUri, fetchedAt: this.#now() };
      state.discovery = discovery;
    }
    let text: string;
    try {
      text = await fetchText(discovery.jwksUri, limits);
    } catch (err) {
      // The jwks_uri may have moved: look it up again on the next attempt.
      state.discovery = undefined;
      throw err;
    }
    const parsed = parseJwks(text);
    if (!parsed.ok) {
      state.discovery = undefined;
      throw new OidcFetchError(
        "invalid key set",
        `${discovery.jwksUri.href}: ${parsed.problems.slice(0, 5).join("; ")}`,
      );
    }
    return parsed.keySet;
  }

  async #discover(issuer: string, issuerUrl: URL, limits: FetchLimits): Promise<URL> {
    const url = new URL(issuerUrl.href.replace(/\/+$/, "") + DISCOVERY_PATH);
    const text = await fetchText(url, limits);
    const invalid = (detail: string): OidcFetchError =>
      new OidcFetchError("invalid discovery document", `${url.href}: ${detail}`);
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch (err) {
      throw invalid(`not valid JSON (${(err as Error).message})`);
    }
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
      throw invalid("not a JSON object");
    }
    const record = doc as Record<string, unknown>;
    if (record["issuer"] !== issuer) {
      throw invalid(
        `its issuer ${JSON.stringify(record["issuer"])} does not equal the configured issuer ${JSON.stringify(issuer)}`,
      );
    }
    const jwksUri = record["jwks_uri"];
    if (typeof jwksUri !== "string") throw invalid("jwks_uri is missing or not a string");
    let parsed: URL;
    try {
      parsed = new URL(jwksUri);
    } catch {
      throw invalid(`jwks_uri ${JSON.stringify(jwksUri)} is not an absolute URL`);
    }
    const refused = checkFetchableUrl(parsed, limits.allowHttp);
    if (refused !== undefined) throw invalid(`jwks_uri refused: ${refused}`);
    return parsed;
  }

  #report(issuer: string, ok: boolean, error?: string): void {
    try {
      if (error === undefined) this.#onFetch?.(issuer, ok);
      else this.#onFetch?.(issuer, ok, error);
    } catch {
      // A broken metrics or log hook must not break key fetching.
    }
  }
}

/**
 * Where an issuer's state lives. The http permission is part of the key: under it, discovery may
 * point at (or redirect to) an http:// key set, and a key set obtained that way must stay out of
 * reach of tokens that require https from the same issuer.
 */
function stateKey(issuer: string, allowHttp: boolean): string {
  return `${allowHttp ? "http-ok" : "https-only"}|${issuer}`;
}

/** Whether at least `span` ms passed from `since` to `now`; a clock that went back counts as yes. */
function elapsed(now: number, since: number, span: number): boolean {
  return now < since || now - since >= span;
}

function parseIssuer(issuer: string, allowHttp: boolean): URL | string {
  let url: URL;
  try {
    url = new URL(issuer);
  } catch {
    return `${JSON.stringify(issuer)} is not an absolute URL`;
  }
  if (url.search !== "" || url.hash !== "") {
    return `${issuer}: an issuer has no query or fragment`;
  }
  return checkFetchableUrl(url, allowHttp) ?? url;
}

function unavailable(reason: string): JoinError {
  return new JoinError(
    "keys_unavailable",
    `no signing keys are available yet for this token's OIDC issuer (${reason}); retry later`,
  );
}
