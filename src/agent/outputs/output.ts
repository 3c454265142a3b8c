import type { FileSet } from "../destinations/destination.ts";
import type { CheckedIdentity } from "../identity.ts";

/**
 * An agent output: data, not a place. It turns a checked identity into a complete set of named
 * files (pure: no I/O, the same identity always gives the same bytes); a `Destination` then writes
 * the set atomically. A new output is one file in this folder and one case in `outputs/index.ts`.
 */
export interface Output {
  /** For logs: `native`, `identity`. */
  readonly type: string;
  render(identity: CheckedIdentity): FileSet;
}
