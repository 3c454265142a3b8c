/**
 * A parsed file as it crosses from a load worker to the event loop's thread. Structured clone
 * keeps plain objects, arrays, Maps, Sets and `KeyObject`s (a cloned `KeyObject` shares the
 * imported key, nothing is parsed again: measured 12 us per key), but not class instances:
 *
 * - a token's prepared join (`PreparedJoin`, a class with private state) travels as its method's
 *   name and its `settings`, and its method `revive`s it on arrival;
 * - a `KeySet` travels as its list of keys and is rebuilt on arrival, interned by content, so a
 *   JWKS shared by many tokens is one object across files and across loads.
 *
 * A document that parsed to exactly what it parsed to at the last load (a file whose bytes
 * changed elsewhere: a comment, another token, a ConfigMap rewriting every file) keeps its
 * previous objects, and the copy that arrived is dropped at once, young: a full reload of files
 * that changed little leaves nothing behind for a full collection of the old heap.
 */
import { KeySet, type VerificationKey } from "../jwt/keys.ts";
import { JOIN_METHODS } from "../methods/registry.ts";
import type { ParsedDocument, ParsedFile } from "./load.ts";
import type { JoinToken } from "./types.ts";

/** Marks a key set in transit; a key no resource field can have. */
const KEY_SET = "__kube_join_key_set__";

export interface KeySetInTransit {
  readonly [KEY_SET]: readonly VerificationKey[];
}

/** A token's prepared join in transit. */
interface JoinInTransit {
  readonly method: string;
  readonly settings: unknown;
}

/** A `ParsedFile` as a worker posts it: prepared joins and key sets as plain data. */
export interface TransferableFile {
  readonly file: string;
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
  readonly timeDependent: boolean;
  readonly documents: readonly (Omit<ParsedDocument, "token"> & {
    readonly token?:
      (Omit<JoinToken, "join"> & { readonly join: JoinInTransit | undefined }) | undefined;
  })[];
}

/** Replaces prepared joins and key sets by plain data; `shared` keeps one replacement per set. */
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
  return {
    ...parsed,
    documents: parsed.documents.map((doc) => {
      const token = doc.token;
      if (token?.join === undefined)
        return { ...doc, token: token && { ...token, join: undefined } };
      const join = { method: token.join.method, settings: walk(token.join.settings) };
      return { ...doc, token: { ...token, join } };
    }),
  };
}

/**
 * Interns key sets by content: the same keys (same kid, SPKI hash and algorithms, in the same
 * order) are one `KeySet` object. Holds only what the last `retain` call kept.
 */
export class KeySetPool {
  #sets = new Map<string, KeySet>();

  /** The pooled set with exactly these keys, added when new. */
  intern(keys: readonly VerificationKey[]): KeySet {
    const signature = keySignature(keys);
    let set = this.#sets.get(signature);
    if (set === undefined) {
      set = new KeySet(keys);
      this.#sets.set(signature, set);
    }
    return set;
  }

  /** Forgets every set not in `inUse`. */
  retain(inUse: ReadonlySet<KeySet>): void {
    for (const [signature, set] of this.#sets) if (!inUse.has(set)) this.#sets.delete(signature);
  }
}

/** What interns a key set: its keys' ids, SPKI hashes and algorithms, in order. */
function keySignature(keys: readonly VerificationKey[]): string {
  return keys
    .map((k) => `${k.kid ?? ""}|${k.spkiSha256}|${[...k.algorithms].join(",")}`)
    .join("\n");
}

/**
 * Rebuilds a parsed file from what a worker posted: key sets from `pool`, prepared joins by
 * their methods. `moved` is the receiver's own copy (structured clone made it), so it is
 * completed in place rather than copied again: a full reload of 10,000 tokens would otherwise
 * leave a second copy of every token behind as garbage on the event loop's heap. Documents equal
 * to those of `previous` (the same file at the last load) are `previous`'s objects; when every
 * part is equal, the result is `previous` itself.
 */
export function fromTransferable(
  moved: TransferableFile,
  pool: KeySetPool,
  previous?: ParsedFile,
): ParsedFile {
  const kept = new Set<unknown>();
  if (previous !== undefined) {
    let same =
      moved.file === previous.file &&
      moved.documents.length === previous.documents.length &&
      equal(moved.problems, previous.problems) &&
      equal(moved.warnings, previous.warnings) &&
      moved.timeDependent === previous.timeDependent;
    const documents = moved.documents.map((doc, i) => {
      const before = previous.documents[i];
      if (before !== undefined && sameDocument(doc, before)) {
        kept.add(before);
        return before;
      }
      same = false;
      return doc;
    });
    if (same) return previous;
    (moved as { documents: unknown }).documents = documents;
  }
  const rebuilt = new Map<object, KeySet>();
  const restore = (value: unknown): unknown => {
    if (isRecord(value) && Object.hasOwn(value, KEY_SET)) {
      let set = rebuilt.get(value);
      if (set === undefined) {
        set = pool.intern((value as unknown as KeySetInTransit)[KEY_SET]);
        rebuilt.set(value, set);
      }
      return set;
    }
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = restore(value[i]);
    } else if (isRecord(value)) {
      for (const [k, v] of Object.entries(value)) value[k] = restore(v);
    }
    return value;
  };
  for (const doc of moved.documents) {
    if (kept.has(doc)) continue;
    const token = doc.token as { join: unknown } | undefined;
    const join = doc.token?.join;
    if (token === undefined || join === undefined) continue;
    const method = JOIN_METHODS.get(join.method);
    if (method === undefined) {
      throw new TypeError(`a load worker prepared unknown join method ${join.method}`);
    }
    token.join = method.revive(restore(join.settings));
  }
  return moved as unknown as ParsedFile;
}

/**
 * Whether a document as it arrived (`moved`, in transit) parsed to exactly what `before` (a
 * document of the last load, rebuilt) did: every field, the token's join method and settings, its
 * key sets by content.
 */
function sameDocument(
  moved: TransferableFile["documents"][number],
  before: ParsedDocument,
): boolean {
  if (!equalFields(moved, before, "token")) return false;
  const movedToken = moved.token;
  const beforeToken = before.token;
  if (movedToken === undefined || beforeToken === undefined) return movedToken === beforeToken;
  if (!equalFields(movedToken, beforeToken, "join")) return false;
  const movedJoin = movedToken.join;
  const beforeJoin = beforeToken.join;
  if (movedJoin === undefined || beforeJoin === undefined) return movedJoin === beforeJoin;
  return movedJoin.method === beforeJoin.method && equal(movedJoin.settings, beforeJoin.settings);
}

/**
 * Structural equality of parsed values: primitives, arrays, plain objects (a key whose value is
 * undefined counts as absent), Maps and Sets in order, and key sets (in transit on the left, a
 * `KeySet` on the right) by their keys. Anything else is equal only to itself. Written with plain
 * loops: it runs over every document of every file a reload parses (10,000 tokens), on the event
 * loop; with array helpers and rest objects it cost more than rebuilding the documents.
 */
function equal(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (b instanceof KeySet) {
    return isRecord(a) && Object.hasOwn(a, KEY_SET) && transitSignature(a) === setSignature(b);
  }
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!equal(a[i], b[i])) return false;
    return true;
  }
  if (a instanceof Map) {
    if (!(b instanceof Map) || a.size !== b.size) return false;
    const right = b.entries();
    for (const [k, v] of a) {
      const [bk, bv] = right.next().value as [unknown, unknown];
      if (!equal(k, bk) || !equal(v, bv)) return false;
    }
    return true;
  }
  if (a instanceof Set) {
    if (!(b instanceof Set) || a.size !== b.size) return false;
    const right = b.values();
    for (const v of a) if (!equal(v, right.next().value)) return false;
    return true;
  }
  if (!isRecord(a) || !isRecord(b) || Object.hasOwn(a, KEY_SET)) return false;
  return equalFields(a, b, undefined);
}

/** `equal` for two plain objects, leaving out the field `skip` (compared by the caller). */
function equalFields(a: object, b: object, skip: string | undefined): boolean {
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  let fields = 0;
  for (const k in left) {
    const v = left[k];
    if (k === skip || v === undefined) continue;
    fields++;
    if (!equal(v, right[k])) return false;
  }
  for (const k in right) if (k !== skip && right[k] !== undefined) fields--;
  return fields === 0;
}

/** Key signatures, computed once per object: many tokens share one key set. */
const SIGNATURES = new WeakMap<object, string>();

function transitSignature(moved: Record<string, unknown>): string {
  let signature = SIGNATURES.get(moved);
  if (signature === undefined) {
    signature = keySignature((moved as unknown as KeySetInTransit)[KEY_SET]);
    SIGNATURES.set(moved, signature);
  }
  return signature;
}

function setSignature(set: KeySet): string {
  let signature = SIGNATURES.get(set);
  if (signature === undefined) {
    signature = keySignature(set.keys);
    SIGNATURES.set(set, signature);
  }
  return signature;
}

/** Every `KeySet` the tokens of a parsed file use (to keep the pool to what is in use). */
export function keySetsOf(parsed: ParsedFile, into: Set<KeySet>): void {
  let sets = KEY_SETS_OF_FILE.get(parsed);
  if (sets === undefined) {
    const found = new Set<KeySet>();
    const walk = (value: unknown): void => {
      if (value instanceof KeySet) found.add(value);
      else if (Array.isArray(value)) value.forEach(walk);
      else if (isRecord(value)) Object.values(value).forEach(walk);
    };
    for (const doc of parsed.documents) walk(doc.token?.join?.settings);
    sets = [...found];
    KEY_SETS_OF_FILE.set(parsed, sets);
  }
  for (const set of sets) into.add(set);
}

/**
 * The key sets of each parsed file, found once: a parsed file never changes, and walking the
 * settings of 10,000 tokens on every reload cost 10-15 ms of the event loop's time.
 */
const KEY_SETS_OF_FILE = new WeakMap<ParsedFile, readonly KeySet[]>();

/** A plain object (not a Map, Set, KeyObject, Date or other class instance). */
function isRecord(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
