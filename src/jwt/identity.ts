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
