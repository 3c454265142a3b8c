/**
 * PLACEHOLDER until the `kubernetes_secret` destination (branch `kubesecret`) is merged: the same
 * export, so the config file can name the destination and the agent compiles, but building one
 * fails at start-up with a usage error. The integrator replaces this file with that branch's.
 */
import { ConfigError } from "../../errors.ts";
import type { Destination } from "./destination.ts";

export function createKubernetesSecretDestination(options: {
  name: string;
  namespace: string | undefined;
  labels: Readonly<Record<string, string>>;
  env: NodeJS.ProcessEnv;
}): Destination {
  throw new ConfigError([
    `kubernetes_secret ${options.name}: the kubernetes_secret destination is not available in this build`,
  ]);
}
