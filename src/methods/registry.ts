/**
 * The join methods kube-join serves, by `spec.join_method`. A new method is one folder under
 * `src/methods/` and one line here.
 */
import type { JoinMethod } from "./join-method.ts";
import { kubernetesJoinMethod } from "./kubernetes/method.ts";

export const JOIN_METHODS: ReadonlyMap<string, JoinMethod> = new Map(
  [kubernetesJoinMethod].map((method) => [method.name, method]),
);

/**
 * The method an attempt is reported under before its token named one (the token was not found,
 * or uses a method served elsewhere): the first one served.
 */
export const DEFAULT_JOIN_METHOD: string = kubernetesJoinMethod.name;
