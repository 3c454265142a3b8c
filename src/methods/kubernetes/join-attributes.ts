/**
 * The join attributes of a kubernetes join, rendered once when the service-account token
 * verified: the same facts for the certificates (Teleport's `JoinAttrs.kubernetes`), the audit
 * trail and the join response.
 */
import {
  encodeCertificateJoinAttributes,
  type InstanceFacts,
  type JoinAttributes,
} from "../join-method.ts";

/** The join method's name, as `spec.join_method` and every rendering spell it. */
export const KUBERNETES = "kubernetes";

/** The verified facts of a Kubernetes join that a bot's certificates, audit and answer carry. */
export interface KubernetesJoinFacts {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly pod: string;
  /** `kubernetes.io.pod.uid`: the instance's key in the store. */
  readonly podUid?: string | undefined;
  readonly nodeName?: string | undefined;
  readonly jti?: string | undefined;
  /** The token's type (`static_jwks`, `oidc`). */
  readonly joinType?: string | undefined;
}

/**
 * The attributes of one kubernetes join. The certificates' JSON (the one costly rendering) is made
 * once, in the constructor; the audit and response views are small objects of the same strings,
 * built when read, so an entry of the verified-token cache stays as small as the identity it
 * replaces (bench: `mem: RSS with the verified-token cache full`).
 */
class KubernetesJoinAttributes implements JoinAttributes, KubernetesJoinFacts {
  readonly method = KUBERNETES;
  readonly certificateMember: string;

  constructor(
    readonly namespace: string,
    readonly serviceAccount: string,
    readonly pod: string,
    readonly podUid: string | undefined,
    readonly nodeName: string | undefined,
    readonly jti: string | undefined,
    readonly joinType: string | undefined,
  ) {
    this.certificateMember = `"${KUBERNETES}":${JSON.stringify({
      subject: subjectOf(namespace, serviceAccount),
      pod: { name: pod },
      service_account: { name: serviceAccount, namespace },
    })}`;
  }

  get audit(): Readonly<Record<string, string>> {
    return { namespace: this.namespace, service_account: this.serviceAccount, pod: this.pod };
  }

  get instance(): InstanceFacts {
    return {
      // A token without a pod UID (older clusters) still names its pod: unique in its namespace.
      uid: this.podUid ?? `${this.namespace}/${this.pod}`,
      joinType: this.joinType ?? "static_jwks",
      namespace: this.namespace,
      serviceAccount: this.serviceAccount,
      podName: this.pod,
      nodeName: this.nodeName,
      jti: this.jti,
    };
  }

  get response(): Readonly<Record<string, unknown>> {
    return {
      [KUBERNETES]: {
        subject: subjectOf(this.namespace, this.serviceAccount),
        namespace: this.namespace,
        service_account: this.serviceAccount,
        pod: this.pod,
      },
    };
  }
}

/**
 * Renders the verified facts for every consumer. The subject is rebuilt from the namespace and
 * name, which verification checked `sub` to equal.
 */
export function renderKubernetesAttributes(
  facts: KubernetesJoinFacts,
): JoinAttributes & KubernetesJoinFacts {
  return new KubernetesJoinAttributes(
    facts.namespace,
    facts.serviceAccount,
    facts.pod,
    facts.podUid,
    facts.nodeName,
    facts.jti,
    facts.joinType,
  );
}

function subjectOf(namespace: string, serviceAccount: string): string {
  return `system:serviceaccount:${namespace}:${serviceAccount}`;
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
