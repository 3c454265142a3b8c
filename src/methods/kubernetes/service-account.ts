/**
 * What a projected Kubernetes service-account JWT must carry on top of the generic JWT checks
 * (steps 7-9 of docs/verification.md), and the identity it then proves.
 */
import { JoinError } from "../../errors.ts";
import type { KeySet } from "../../jwt/keys.ts";
import {
  objectOrUndefined,
  own,
  stringOrUndefined,
  verifyJwt,
  type DecodedJwt,
  type ExpectedClaims,
  type VerifyLimits,
} from "../../jwt/verify.ts";
import { DNS_LABEL, DNS_SUBDOMAIN } from "./names.ts";

/** What a verified projected service-account JWT proves. Produced by `verifyServiceAccountToken`. */
export interface ServiceAccountIdentity {
  /** `sub`: `system:serviceaccount:NAMESPACE:NAME`. */
  readonly subject: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly serviceAccountUid: string | undefined;
  readonly podName: string;
  readonly podUid: string | undefined;
  /** `kubernetes.io.node.name`, set by newer clusters. */
  readonly nodeName: string | undefined;
  readonly issuer: string | undefined;
  readonly jti: string | undefined;
  /** `iat` and `exp`, in seconds since the epoch. */
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/** The longest `exp - iat` accepted, in seconds (exactly this passes). */
export const MAX_TOKEN_TTL_SECONDS = 30 * 60;

const SUBJECT_PREFIX = "system:serviceaccount:";
// Kubernetes object names: namespaces are DNS labels, service accounts and pods DNS subdomains.
// kube-apiserver never issues anything else, so anything else is not one of its tokens.

/**
 * Verifies a projected service-account JWT against a static key set and returns who it proves the
 * caller is. Pure: the same (token, keys, expected claims, time) always give the same answer.
 *
 * Checks, in this order, each with its own code (see docs/verification.md):
 * 1.-6. the generic JWT checks of `verifyJwt` (structure, algorithm, signature, audience and
 *    issuer, time, required time claims);
 * 7. `kubernetes.io.pod.name`: `jwt_not_pod_bound`;
 * 8. `exp - iat` <= 30 min: `jwt_ttl_too_long`;
 * 9. `sub` = `system:serviceaccount:NS:NAME`: `jwt_not_service_account`, agreeing with
 *    `kubernetes.io`: `jwt_claims_inconsistent`.
 *
 * No message ever contains the token or any part of it.
 *
 * @example
 * const identity = verifyServiceAccountToken(jwt, keySet, { audience: "example.teleport.sh" },
 *   Date.now());
 * identity.namespace; // "default"
 *
 * @throws JoinError with one of the codes above
 * @throws TypeError when `expected.audience` is empty or `nowMs` is not a finite number
 */
export function verifyServiceAccountToken(
  jwt: string | DecodedJwt,
  keys: KeySet,
  expected: ExpectedClaims,
  nowMs: number,
  limits: VerifyLimits = {},
): ServiceAccountIdentity {
  const { claims, issuedAt, expiresAt } = verifyJwt(jwt, keys, expected, nowMs, limits);

  // 7. Pod binding: legacy secret tokens and tokens requested without a pod never join.
  const kube = objectOrUndefined(own(claims, "kubernetes.io"));
  const pod = objectOrUndefined(own(kube, "pod"));
  const podName = own(pod, "name");
  if (typeof podName !== "string" || podName === "") {
    throw new JoinError(
      "jwt_not_pod_bound",
      "the token is not bound to a pod (no kubernetes.io.pod.name): mount a projected service-account token",
    );
  }
  if (!DNS_SUBDOMAIN.test(podName)) {
    throw new JoinError("jwt_not_pod_bound", "kubernetes.io.pod.name is not a valid pod name");
  }

  // 8. Lifetime.
  const ttl = expiresAt - issuedAt;
  if (ttl > MAX_TOKEN_TTL_SECONDS) {
    throw new JoinError(
      "jwt_ttl_too_long",
      `the token lives ${formatSeconds(ttl)} (exp - iat), more than the ${MAX_TOKEN_TTL_SECONDS / 60} minutes allowed: set expirationSeconds to at most ${MAX_TOKEN_TTL_SECONDS} in the projected volume`,
    );
  }

  // 9. Subject, and agreement with the kubernetes.io claim.
  const sub = own(claims, "sub");
  const parts =
    typeof sub === "string" && sub.startsWith(SUBJECT_PREFIX)
      ? sub.slice(SUBJECT_PREFIX.length).split(":")
      : [];
  const [namespace, serviceAccount] = parts;
  if (
    parts.length !== 2 ||
    namespace === undefined ||
    serviceAccount === undefined ||
    !DNS_LABEL.test(namespace) ||
    !DNS_SUBDOMAIN.test(serviceAccount)
  ) {
    throw new JoinError(
      "jwt_not_service_account",
      "sub is not system:serviceaccount:NAMESPACE:NAME with valid Kubernetes names",
    );
  }
  const serviceAccountClaim = objectOrUndefined(own(kube, "serviceaccount"));
  if (own(kube, "namespace") !== namespace) {
    throw new JoinError(
      "jwt_claims_inconsistent",
      `sub names namespace ${namespace} but kubernetes.io.namespace does not`,
    );
  }
  if (own(serviceAccountClaim, "name") !== serviceAccount) {
    throw new JoinError(
      "jwt_claims_inconsistent",
      `sub names service account ${serviceAccount} but kubernetes.io.serviceaccount.name does not`,
    );
  }

  return {
    subject: sub as string,
    namespace,
    serviceAccount,
    serviceAccountUid: stringOrUndefined(own(serviceAccountClaim, "uid")),
    podName,
    podUid: stringOrUndefined(own(pod, "uid")),
    nodeName: stringOrUndefined(own(objectOrUndefined(own(kube, "node")), "name")),
    issuer: stringOrUndefined(own(claims, "iss")),
    jti: stringOrUndefined(own(claims, "jti")),
    issuedAt,
    expiresAt,
  };
}

function formatSeconds(seconds: number): string {
  if (seconds >= 3600 && seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}
