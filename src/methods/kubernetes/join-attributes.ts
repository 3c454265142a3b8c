/**
 * The join attributes of a kubernetes join, rendered once when the service-account token
 * verified: the same facts for the certificates (Teleport's `JoinAttrs.kubernetes`), the audit
 * trail and the join response.
 */
import { encodeCertificateJoinAttributes, type JoinAttributes } from "../join-method.ts";

/** The join method's name, as `spec.join_method` and every rendering spell it. */
export const KUBERNETES = "kubernetes";

/** The verified facts of a Kubernetes join that a bot's certificates, audit and answer carry. */
export interface KubernetesJoinFacts {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly pod: string;
}

/**
 * Renders the verified facts for every consumer. The subject is rebuilt from the namespace and
 * name, which verification checked `sub` to equal.
 */
export function renderKubernetesAttributes(facts: KubernetesJoinFacts): JoinAttributes {
  const subject = `system:serviceaccount:${facts.namespace}:${facts.serviceAccount}`;
  return {
    method: KUBERNETES,
    audit: { namespace: facts.namespace, service_account: facts.serviceAccount, pod: facts.pod },
    response: {
      [KUBERNETES]: {
        subject,
        namespace: facts.namespace,
        service_account: facts.serviceAccount,
        pod: facts.pod,
      },
    },
    certificateMember: `"${KUBERNETES}":${JSON.stringify({
      subject,
      pod: { name: facts.pod },
      service_account: { name: facts.serviceAccount, namespace: facts.namespace },
    })}`,
  };
}

/**
 * The certificates' join-attributes JSON of a kubernetes join in one call (tests, the bench and
 * fixtures that sign without a join).
 */
export function encodeJoinAttributes(
  attributes: KubernetesJoinFacts & { readonly tokenName: string },
): string {
  return encodeCertificateJoinAttributes(
    attributes.tokenName,
    renderKubernetesAttributes(attributes),
  );
}
