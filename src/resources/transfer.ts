/**
 * A parsed file as it crosses from the load worker to the event loop's thread. Structured clone
 * keeps plain objects, arrays, Maps, Sets and `KeyObject`s (a cloned `KeyObject` shares the
 * imported key, nothing is parsed again: measured 12 us per key), but not class instances: a
 * `KeySet` travels as its list of keys and is rebuilt on arrival. A key set shared by many tokens
 * is one object on both sides (structured clone keeps shared references within a message, and the
 * receiver interns key sets by content across files and loads).
 */
import { KeySet, type VerificationKey } from "../jwt/keys.ts";
import type { ParsedFile } from "./load.ts";

/** Marks a key set in transit; a key no resource field can have. */
const KEY_SET = "__kube_join_key_set__";

export interface KeySetInTransit {
  readonly [KEY_SET]: readonly VerificationKey[];
}

/** A `ParsedFile` whose key sets are plain key lists: what the worker posts. */
export type TransferableFile = { readonly __transferable: true } & Record<string, unknown>;

/** Replaces every `KeySet` in `parsed` by its keys; `shared` keeps one replacement per set. */
export function toTransferable(
  parsed: ParsedFile,
  shared: Map<KeySet, KeySetInTransit>,
): TransferableFile {
  const walk = (value: unknown): unknown => {
    if (value instanceof KeySet) {
      let moved = shared.get(value);
      if (moved === undefined) {
        moved = { [KEY_SET]: value.keys };
        shared.set(value, moved);
      }
      return moved;
    }
    if (Array.isArray(value)) return value.map(walk);
    if (isRecord(value)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = walk(v);
      return out;
    }
    return value;
  };
  return { ...(walk(parsed) as Record<string, unknown>), __transferable: true };
}

/**
 * Interns key sets by content: the same keys (same kid, SPKI hash and algorithms, in the same
 * order) are one `KeySet` object, across files and across loads, so an unchanged cluster JWKS is
 * held once however many tokens carry it. Holds only what the last `retain` call kept.
 */
export class KeySetPool {
  #sets = new Map<string, KeySet>();

  /** The pooled set with exactly these keys, added when new. */
  intern(keys: readonly VerificationKey[]): KeySet {
    const signature = keys
      .map((k) => `${k.kid ?? ""}|${k.spkiSha256}|${[...k.algorithms].join(",")}`)
      .join("\n");
    let set = this.#sets.get(signature);
    if (set === undefined) {
      set = new KeySet(keys);
      this.#sets.set(signature, set);
    }
    return set;
  }

  /** Adds an already built set (parsed on this thread), keeping the pooled one when equal. */
  adopt(set: KeySet): KeySet {
    return this.intern(set.keys);
  }

  /** Forgets every set not in `inUse`. */
  retain(inUse: ReadonlySet<KeySet>): void {
    for (const [signature, set] of this.#sets) if (!inUse.has(set)) this.#sets.delete(signature);
  }

  get size(): number {
    return this.#sets.size;
  }
}

/** Rebuilds a parsed file from what the worker posted; key sets come from `pool`. */
export function fromTransferable(moved: TransferableFile, pool: KeySetPool): ParsedFile {
  const rebuilt = new Map<object, KeySet>();
  const walk = (value: unknown): unknown => {
    if (isRecord(value) && Object.hasOwn(value, KEY_SET)) {
      let set = rebuilt.get(value);
      if (set === undefined) {
        set = pool.intern((value as unknown as KeySetInTransit)[KEY_SET]);
        rebuilt.set(value, set);
      }
      return set;
    }
    if (Array.isArray(value)) return value.map(walk);
    if (isRecord(value)) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) out[k] = walk(v);
      return out;
    }
    return value;
  };
  const rest: Record<string, unknown> = { ...moved };
  delete rest["__transferable"];
  return walk(rest) as ParsedFile;
}

/** Every `KeySet` a parsed file refers to (to keep the pool to what is in use). */
export function keySetsOf(parsed: ParsedFile, into: Set<KeySet>): void {
  for (const doc of parsed.documents) {
    const spec = doc.token?.kubernetes;
    if (spec?.type === "static_jwks") into.add(spec.keySet);
  }
}

/** Rewrites the key sets of a file parsed on this thread to the pooled ones. */
export function internKeySets(parsed: ParsedFile, pool: KeySetPool): ParsedFile {
  let changed = false;
  const documents = parsed.documents.map((doc) => {
    const token = doc.token;
    const spec = token?.kubernetes;
    if (token === undefined || spec?.type !== "static_jwks") return doc;
    const keySet = pool.adopt(spec.keySet);
    if (keySet === spec.keySet) return doc;
    changed = true;
    return { ...doc, token: { ...token, kubernetes: { ...spec, keySet } } };
  });
  return changed ? { ...parsed, documents } : parsed;
}

/** A plain object (not a Map, Set, KeyObject, Date or other class instance). */
function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
