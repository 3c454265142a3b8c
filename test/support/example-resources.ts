/**
 * The in-process tests' resource set: the Teleport guide's bot `example` and its token
 * `example-bot` allowing `default:tbot`, trusting `jwks`. One copy instead of one per test file.
 */
import { parseResources } from "../../src/resources/load.ts";
import type { ResourceSet } from "../../src/resources/types.ts";

export function exampleResources(
  jwks: string,
  options: { readonly file?: string; readonly logins?: readonly string[] } = {},
): ResourceSet {
  const traits =
    options.logins === undefined
      ? ""
      : `\n  traits: [{name: logins, values: [${options.logins.join(", ")}]}]`;
  return parseResources([
    {
      file: options.file ?? "resources.yaml",
      text: `kind: bot
version: v1
metadata: {name: example}
spec:
  roles: [access]${traits}
---
kind: token
version: v2
metadata: {name: example-bot}
spec:
  roles: [Bot]
  bot_name: example
  join_method: kubernetes
  kubernetes:
    type: static_jwks
    static_jwks: {jwks: '${jwks}'}
    allow: [{service_account: "default:tbot"}]
`,
    },
  ]);
}
