/**
 * The `kubernetes` join method: a bot proves itself with its pod's projected service-account JWT,
 * verified against the token's static JWKS or its issuer's OIDC keys, then matched against the
 * token's allow rules (Teleport's `lib/kube/token/validator.go`).
 */
import { JoinError } from "../../errors.ts";
import type { KeySet } from "../../jwt/keys.ts";
import { prepareOidcIssuer, type OidcIssuer } from "../../jwt/oidc.ts";
import { decodeJwt, type DecodedJwt, type ExpectedClaims } from "../../jwt/verify.ts";
import type { FieldReader } from "../../yaml/field-reader.ts";
import type {
  AuthenticateContext,
  AuthenticateTrace,
  JoinAttributes,
  JoinMethod,
  PreparedJoin,
  VerifiedProof,
} from "../join-method.ts";
import { VerifiedTokenCache } from "../verified-token-cache.ts";
import {
  compileAllowRules,
  requireAllowedServiceAccount,
  type AllowRule,
  type ServiceAccountMatcher,
} from "./allow-rules.ts";
import {
  KUBERNETES,
  renderKubernetesAttributes,
  type KubernetesJoinFacts,
} from "./join-attributes.ts";
import { verifyServiceAccountToken, type ServiceAccountIdentity } from "./service-account.ts";
import { readKubernetesSpec, type KubernetesJoinSpec } from "./spec.ts";

/**
 * What the cache keeps of a verified service-account token: the rendered attributes (whose
 * namespace and name the allow rules match), not the whole identity: nothing after verification
 * reads the rest.
 */
export class VerifiedServiceAccount implements VerifiedProof {
  constructor(
    readonly attributes: JoinAttributes & KubernetesJoinFacts,
    readonly expiresAt: number,
  ) {}
}

/**
 * Shapes a verified identity, once, into what the cache keeps and every consumer reads. Exported
 * for the bench's memory figure (a cache filled with exactly what joins put there).
 */
export function toVerifiedServiceAccount(
  identity: ServiceAccountIdentity,
  joinType: string = "static_jwks",
): VerifiedServiceAccount {
  return new VerifiedServiceAccount(
    renderKubernetesAttributes({
      namespace: identity.namespace,
      serviceAccount: identity.serviceAccount,
      pod: identity.podName,
      podUid: identity.podUid,
      nodeName: identity.nodeName,
      jti: identity.jti,
      joinType,
    }),
    identity.expiresAt,
  );
}

/** A kubernetes token's settings, prepared at load: keys or parsed issuer, compiled rules. */
export class KubernetesJoin implements PreparedJoin {
  readonly method = KUBERNETES;
  /** The settings as read (plain data). */
  readonly spec: KubernetesJoinSpec;
  readonly #allowed: ServiceAccountMatcher;
  /** Set for the `oidc` type. */
  readonly #issuer: OidcIssuer | undefined;

  constructor(spec: KubernetesJoinSpec) {
    this.spec = spec;
    this.#allowed = compileAllowRules(spec.allow);
    this.#issuer =
      spec.type === "oidc"
        ? prepareOidcIssuer(spec.issuer, spec.insecureAllowHttpIssuer)
        : undefined;
  }

  async authenticate(
    jwt: string,
    context: AuthenticateContext,
    trace: AuthenticateTrace,
  ): Promise<JoinAttributes> {
    const verified = await this.#verify(jwt, context, trace);
    trace.attributes = verified.attributes;
    requireAllowedServiceAccount(this.#allowed, verified.attributes);
    return verified.attributes;
  }

  /**
   * Verifies the JWT: the one place verification happens, so the cache wraps exactly this. Static
   * keys come from the token; `oidc` keys from the injected key source, after one decode of the
   * header (its kid), which verification then reuses.
   */
  async #verify(
    jwt: string,
    context: AuthenticateContext,
    trace: AuthenticateTrace,
  ): Promise<VerifiedServiceAccount> {
    let keySet: KeySet;
    let decoded: DecodedJwt | undefined;
    const issuer = this.#issuer;
    if (issuer === undefined) {
      keySet = (this.spec as { readonly keySet: KeySet }).keySet;
    } else {
      decoded = decodeJwt(jwt);
      keySet = await oidcKeySet(issuer, decoded.kid, context);
    }
    const { cache, audience, nowMs } = context;
    const key =
      cache === undefined
        ? undefined
        : VerifiedTokenCache.keyOf(jwt, keySet.revision, audience, issuer?.issuer);
    if (cache !== undefined && key !== undefined) {
      const cached = cache.get(key);
      if (cached instanceof VerifiedServiceAccount) {
        trace.cache = "hit";
        return cached;
      }
      trace.cache = "miss";
    }
    const expected: ExpectedClaims =
      issuer === undefined ? { audience } : { audience, issuer: issuer.issuer };
    const verified = toVerifiedServiceAccount(
      verifyServiceAccountToken(decoded ?? jwt, keySet, expected, nowMs, {
        maxKeysWithoutKid: context.maxKeysWithoutKid,
      }),
      this.spec.type,
    );
    if (cache !== undefined && key !== undefined) cache.set(key, verified);
    return verified;
  }

  get settings(): KubernetesJoinSpec {
    return this.spec;
  }

  describe(): readonly string[] {
    const k = this.spec;
    const lines = [`join_method: ${KUBERNETES}, type: ${k.type}`];
    if (k.type === "static_jwks") {
      for (const key of k.keySet.keys) {
        const id = key.kid === undefined || key.kid === "" ? "(no kid)" : key.kid;
        lines.push(`key: ${id} (${key.kty}, ${[...key.algorithms].join("/")})`);
      }
    } else {
      const http = k.insecureAllowHttpIssuer ? " (insecure_allow_http_issuer)" : "";
      lines.push(`issuer: ${k.issuer}${http}`);
    }
    for (const rule of k.allow) lines.push(`allow: ${describeRule(rule)}`);
    return lines;
  }
}

async function oidcKeySet(
  issuer: OidcIssuer,
  kid: string | undefined,
  context: AuthenticateContext,
): Promise<KeySet> {
  const source = context.oidcKeys;
  if (source === undefined) {
    throw new JoinError("keys_unavailable", "this service has no key source for oidc tokens");
  }
  try {
    return await source(issuer, kid);
  } catch (err) {
    if (err instanceof JoinError) throw err;
    context.onInternalError?.(err, { stage: "oidc_keys" });
    throw new JoinError("keys_unavailable", "the issuer's keys could not be obtained");
  }
}

function describeRule(rule: AllowRule): string {
  return rule.kind === "exact"
    ? `${rule.namespace}:${rule.name}`
    : `namespace ${rule.namespaceGlob}, name ${rule.nameGlob} (glob)`;
}

/** The `kubernetes` join method. */
export const kubernetesJoinMethod: JoinMethod = {
  name: KUBERNETES,
  readSpec(r: FieldReader, spec: Readonly<Record<string, unknown>>): KubernetesJoin | undefined {
    const read = readKubernetesSpec(r, spec);
    return read === undefined ? undefined : new KubernetesJoin(read);
  },
  revive(settings: unknown): KubernetesJoin {
    return new KubernetesJoin(settings as KubernetesJoinSpec);
  },
};

/** The settings of a kubernetes token as read, or undefined for a token of another method. */
export function kubernetesSpecOf(join: PreparedJoin | undefined): KubernetesJoinSpec | undefined {
  return join instanceof KubernetesJoin ? join.spec : undefined;
}
