/** The verified facts of a Kubernetes join that a bot's certificates carry. */
export interface JoinAttributes {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly pod: string;
  readonly tokenName: string;
  readonly joinMethod: "kubernetes";
}

/**
 * Join attributes as JSON in the shape of Teleport's `JoinAttrs` protobuf message serialised by
 * protojson with proto field names (the value format Teleport writes under OID 1.3.9999.2.21,
 * though Teleport puts it in the subject name and kube-join in an extension, so a reader of
 * Teleport's certificates parses the value but must look for it here). Key order is fixed, so equal inputs give equal bytes.
 */
export function encodeJoinAttributes(attributes: JoinAttributes): string {
  return JSON.stringify({
    meta: { join_token_name: attributes.tokenName, join_method: attributes.joinMethod },
    kubernetes: {
      subject: `system:serviceaccount:${attributes.namespace}:${attributes.serviceAccount}`,
      pod: { name: attributes.pod },
      service_account: { name: attributes.serviceAccount, namespace: attributes.namespace },
    },
  });
}
