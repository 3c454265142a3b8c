/**
 * What the running service serves right now: the resource set and the CA, published together as
 * one immutable snapshot. A reload builds a whole new `ResourceSet` and swaps it in with a single
 * assignment, so a join that already took the snapshot finishes under the set it started with and
 * a later one sees only the new set: never a mix.
 */
import type { CertificateAuthority } from "../ca/authority.ts";
import type { JoinSnapshot } from "../join/join.ts";
import type { ResourceSet } from "../resources/types.ts";

export class ServiceState {
  #resources: ResourceSet | undefined;
  #authority: CertificateAuthority | undefined;
  #snapshot: JoinSnapshot | undefined;

  /** The snapshot joins run against; undefined until both resources and CA are loaded. */
  get snapshot(): JoinSnapshot | undefined {
    return this.#snapshot;
  }

  get authority(): CertificateAuthority | undefined {
    return this.#authority;
  }

  get resources(): ResourceSet | undefined {
    return this.#resources;
  }

  /** Ready means a join can be served: `/readyz` and `not_ready` follow this. */
  get ready(): boolean {
    return this.#snapshot !== undefined;
  }

  setAuthority(authority: CertificateAuthority): void {
    this.#authority = authority;
    this.#publish();
  }

  /** Swaps in a fully validated resource set. */
  setResources(resources: ResourceSet): void {
    this.#resources = resources;
    this.#publish();
  }

  #publish(): void {
    if (this.#resources === undefined || this.#authority === undefined) return;
    this.#snapshot = Object.freeze({ resources: this.#resources, authority: this.#authority });
  }
}
