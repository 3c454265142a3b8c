import type { Destination, FileSet } from "./destination.ts";

/**
 * The `memory` destination (tbot's, and the guide's choice for the agent's own storage): the set
 * lives in this process only. The kubernetes join method needs no state across restarts, since
 * every join presents a fresh service-account token. A write replaces the whole set at once.
 */
export function createMemoryDestination(): Destination {
  let current: FileSet | undefined;
  return {
    description: "memory",
    write(set) {
      // A copy, so the caller changing its map afterwards cannot change what was written.
      current = new Map(set);
      return Promise.resolve();
    },
    read() {
      return Promise.resolve(current);
    },
  };
}
