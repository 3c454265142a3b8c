import type { Destination } from "./destination.ts";
import { createDirectoryDestination } from "./directory.ts";
import type { IdentityFs } from "./directory.ts";
import { createMemoryDestination } from "./memory.ts";

/** Where a set goes, as the config file or the flags name it (validated before it gets here). */
export type DestinationSpec =
  { readonly type: "directory"; readonly path: string } | { readonly type: "memory" };

/** What opening a destination may need from the outside world. */
export interface DestinationContext {
  readonly now: () => Date;
  readonly fs?: IdentityFs;
  readonly warn?: (message: string) => void;
}

/** The destination a spec names. Opening does no I/O: the first write or read does. */
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
  }
}

/** `directory /var/lib/bot`, `memory`: for the start log line. */
export function describeDestination(spec: DestinationSpec): string {
  return spec.type === "directory" ? `directory ${spec.path}` : spec.type;
}
