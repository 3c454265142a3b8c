import { identityOutput } from "./identity.ts";
import type { Output } from "./output.ts";

/** The `outputs[].type` values the agent writes; tbot has more (docs/agent.md says which). */
export const OUTPUT_TYPES = ["identity"] as const;

export type OutputType = (typeof OUTPUT_TYPES)[number];

/** The output of a type named in the config file. */
export function outputOf(type: OutputType): Output {
  switch (type) {
    case "identity":
      return identityOutput;
  }
}
