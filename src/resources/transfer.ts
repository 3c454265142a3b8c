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
 * previous objects. Each document travels with its fingerprint (the sha256 of its form in
 * transit); given the fingerprints of the file's last load, the worker sends `null` for a document
 * whose fingerprint did not change, so the event loop neither receives nor compares it: a full
 * reload of files that changed little costs the event loop a few small messages, and leaves
 * nothing behind for a full collection of the old heap.
 */
import { createHash } from "node:crypto";
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

/** A `ParsedDocument` in transit: its prepared join and key sets as plain data. */
type DocumentInTransit = Omit<ParsedDocument, "token"> & {
  readonly token?:
    (Omit<JoinToken, "join"> & { readonly join: JoinInTransit | undefined }) | undefined;
};

/** A `ParsedFile` as a worker posts it: prepared joins and key sets as plain data. */
export interface TransferableFile {
  readonly file: string;
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
  readonly timeDependent: boolean;
  /** `null`: the same as the document at this index at the last load (same fingerprint). */
  readonly documents: readonly (DocumentInTransit | null)[];
  /** Each document's fingerprint, in order. */
  readonly fingerprints: readonly string[];
}

/**
 * Replaces prepared joins and key sets by plain data; `shared` keeps one replacement per set.
 * `previous`: the fingerprints of this file's documents at the last load; a document whose
 * fingerprint is the same at the same index is left out (`null`).
 */
export function toTransferable(
  parsed: ParsedFile,
  shared: Map<KeySet, KeySetInTransit>,
  previous?: readonly string[],
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
  const documents: (DocumentInTransit | null)[] = parsed.documents.map((doc) => {
    const token = doc.token;
    if (token?.join === undefined) return { ...doc, token: token && { ...token, join: undefined } };
    const join = { method: token.join.method, settings: walk(token.join.settings) };
    return { ...doc, token: { ...token, join } };
  });
  const fingerprints = documents.map((doc) => fingerprintOf(doc!));
  if (previous !== undefined) {
    fingerprints.forEach((fingerprint, i) => {
      if (previous[i] === fingerprint) documents[i] = null;
    });
  }
  return {
    file: parsed.file,
    problems: parsed.problems,
    warnings: parsed.warnings,
    timeDependent: parsed.timeDependent,
    documents,
    fingerprints,
  };
}

/**
 * A document's fingerprint: the sha256 of its form in transit as JSON, with Maps, Sets and key
 * sets (by their keys' signature) spelled out. Two documents with one fingerprint parsed to the
 * same values, positions and keys.
 */
function fingerprintOf(doc: DocumentInTransit): string {
  const json = JSON.stringify(doc, (_key, value: unknown) => {
    if (value instanceof Map) return { "~map": [...value] };
    if (value instanceof Set) return { "~set": [...value] };
    // Not from YAML's core schema, but JSON would throw on one and fail the reload.
    if (typeof value === "bigint") return { "~bigint": value.toString() };
    if (isRecord(value) && Object.hasOwn(value, KEY_SET)) {
      return { "~keys": keySignature((value as unknown as KeySetInTransit)[KEY_SET]) };
    }
    return value;
  });
  return createHash("sha256").update(json).digest("base64url");
}

/** The fingerprints of each parsed file's documents (see `fingerprintsOf`). */
const FINGERPRINTS = new WeakMap<ParsedFile, readonly string[]>();

/** The fingerprints of a parsed file's documents, when it came through `fromTransferable`. */
export function fingerprintsOf(parsed: ParsedFile): readonly string[] | undefined {
  return FINGERPRINTS.get(parsed);
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
 * leave a second copy of every token behind as garbage on the event loop's heap. A document left
 * out (`null`: the same as at the last load) is `previous`'s; when every part is the same, the
 * result is `previous` itself.
 *
 * @throws TypeError when a document is left out that `previous` does not have.
 */
export function fromTransferable(
  moved: TransferableFile,
  pool: KeySetPool,
  previous?: ParsedFile,
): ParsedFile {
  const kept = new Set<unknown>();
  const documents = moved.documents.map((doc, i) => {
    if (doc !== null) return doc;
    const before = previous?.documents[i];
    if (before === undefined) {
      throw new TypeError(`a load worker left out document ${i} of ${moved.file}, not known here`);
    }
    kept.add(before);
    return before;
  });
  if (
    previous !== undefined &&
    kept.size === previous.documents.length &&
    documents.length === previous.documents.length &&
    moved.file === previous.file &&
    sameStrings(moved.problems, previous.problems) &&
    sameStrings(moved.warnings, previous.warnings) &&
    moved.timeDependent === previous.timeDependent
  ) {
    return previous;
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
  for (const doc of documents as DocumentInTransit[]) {
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
  const { fingerprints, ...rest } = moved;
  const parsed = { ...rest, documents } as unknown as ParsedFile;
  FINGERPRINTS.set(parsed, fingerprints);
  return parsed;
}

function sameStrings(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
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
