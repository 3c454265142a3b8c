import type { Destination } from "./destination.ts";
import { createDirectoryDestination } from "./directory.ts";
import type { IdentityFs } from "./directory.ts";
import { createKubernetesSecretDestination } from "./kubernetes-secret.ts";
import { createMemoryDestination } from "./memory.ts";

/** Where a set goes, as the config file or the flags name it (validated before it gets here). */
export type DestinationSpec =
  | { readonly type: "directory"; readonly path: string }
  | { readonly type: "memory" }
  | {
      readonly type: "kubernetes_secret";
      readonly name: string;
      /** Absent: `POD_NAMESPACE`. */
      readonly namespace: string | undefined;
      readonly labels: Readonly<Record<string, string>>;
    };

/** What opening a destination may need from the outside world. */
export interface DestinationContext {
  readonly now: () => Date;
  readonly fs?: IdentityFs;
  readonly warn?: (message: string) => void;
  /** For `kubernetes_secret`: `POD_NAMESPACE`, `KUBECONFIG`, the in-cluster variables. */
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * The destination a spec names. Opening does no I/O: the first write or read does.
 *
 * @throws ConfigError when the spec cannot be honoured here (a `kubernetes_secret` without a
 *   namespace or API credentials): a usage error, found before the first join.
 */
export function openDestination(spec: DestinationSpec, context: DestinationContext): Destination {
  switch (spec.type) {
    case "directory":
      return createDirectoryDestination({
        path: spec.path,
        now: context.now,
        ...(context.fs === undefined ? {} : { fs: context.fs }),
        ...(context.warn === undefined ? {} : { warn: context.warn }),
      });
    case "memory":
      return createMemoryDestination();
    case "kubernetes_secret":
      return createKubernetesSecretDestination({
        name: spec.name,
        namespace: spec.namespace,
        labels: spec.labels,
        env: context.env ?? {},
      });
  }
}

/** `directory /var/lib/bot`, `memory`: for the start log line. */
export function describeDestination(spec: DestinationSpec): string {
  switch (spec.type) {
    case "directory":
      return `directory ${spec.path}`;
    case "memory":
      return "memory";
    case "kubernetes_secret":
      return `kubernetes_secret ${spec.namespace === undefined ? "" : `${spec.namespace}/`}${spec.name}`;
  }
}
