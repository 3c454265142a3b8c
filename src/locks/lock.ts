/**
 * Locks, as Teleport's `kind: lock` resource defines them: a target (one or more fields, all of
 * which must match) and an optional message and expiry. A lock in force refuses new certificates
 * to whatever it targets; certificates already issued stay valid until they expire.
 *
 * Pure: no I/O. Locks come from the admin's YAML (`src/resources/`) and from the store
 * (`kube-join lock create`); `LockSet` merges them into maps so a join checks them with a few
 * in-memory lookups and never a query.
 */

/** The target fields, as Teleport's YAML spells them (`spec.target.<field>`). */
export const LOCK_TARGET_FIELDS = [
  "user",
  "join_token",
  "bot_instance_id",
  "kubernetes_service_account",
  "kubernetes_namespace",
] as const;

export type LockTargetField = (typeof LOCK_TARGET_FIELDS)[number];

/** The fields a lock targets; at least one is set, and a join matches when all set fields do. */
export type LockTarget = Readonly<Partial<Record<LockTargetField, string>>>;

export interface Lock {
  /** `metadata.name`: a UUID for locks made by `kube-join lock create`. */
  readonly name: string;
  readonly target: LockTarget;
  /** Written by the admin; the only part of a lock a refused caller may see. */
  readonly message: string | undefined;
  /** `spec.expires`, milliseconds since the epoch; undefined: until deleted. */
  readonly expiresAtMs: number | undefined;
  /** When `kube-join lock create` made it; undefined for YAML locks. */
  readonly createdAtMs: number | undefined;
  /** Where it came from: `store` (CLI) or the `file:line` of its YAML document. */
  readonly origin: string;
}

/** What a join is, as far as locks look at it. */
export interface LockSubject {
  /** `bot-NAME`, the Teleport user of the bot. */
  readonly user: string;
  readonly joinToken: string;
  /** Undefined until the instance is known (a pod's first join has none yet). */
  readonly botInstanceId: string | undefined;
  /** `namespace:name`. */
  readonly kubernetesServiceAccount: string;
  readonly kubernetesNamespace: string;
}

/**
 * The lock subject of a join: the bot's Teleport user, the token, the instance once known, and
 * the workload identity the join proved. Built here, so the join pipeline names no lock target.
 */
export function lockSubjectOf(join: {
  readonly botName: string;
  readonly tokenName: string;
  readonly botInstanceId: string | undefined;
  readonly namespace: string;
  readonly serviceAccount: string;
}): LockSubject {
  return {
    user: `bot-${join.botName}`,
    joinToken: join.tokenName,
    botInstanceId: join.botInstanceId,
    kubernetesServiceAccount: `${join.namespace}:${join.serviceAccount}`,
    kubernetesNamespace: join.namespace,
  };
}

function subjectValue(subject: LockSubject, field: LockTargetField): string | undefined {
  switch (field) {
    case "user":
      return subject.user;
    case "join_token":
      return subject.joinToken;
    case "bot_instance_id":
      return subject.botInstanceId;
    case "kubernetes_service_account":
      return subject.kubernetesServiceAccount;
    case "kubernetes_namespace":
      return subject.kubernetesNamespace;
  }
}

/** The set fields of a target, in `LOCK_TARGET_FIELDS` order. */
export function targetEntries(target: LockTarget): [LockTargetField, string][] {
  const entries: [LockTargetField, string][] = [];
  for (const field of LOCK_TARGET_FIELDS) {
    const value = target[field];
    if (value !== undefined) entries.push([field, value]);
  }
  return entries;
}

/** `user=bot-example,join_token=x`: a target in one line, for the CLI's table. */
export function formatTarget(target: LockTarget): string {
  return targetEntries(target)
    .map(([field, value]) => `${field}=${value}`)
    .join(",");
}

/**
 * An immutable set of locks, indexed by the first field of each target: matching a join is one
 * map lookup per field, then a check of that lock's other fields and expiry.
 *
 * @example
 * const locks = new LockSet([{ name: "l1", target: { user: "bot-example" }, ... }]);
 * locks.match(subject, Date.now()); // the lock, or undefined
 */
export class LockSet {
  static readonly EMPTY = new LockSet([]);

  readonly size: number;
  readonly #byField = new Map<LockTargetField, Map<string, Lock[]>>();

  constructor(locks: Iterable<Lock>) {
    let size = 0;
    for (const lock of locks) {
      const first = targetEntries(lock.target)[0];
      if (first === undefined) continue; // the loader refuses empty targets; never match all
      const [field, value] = first;
      let byValue = this.#byField.get(field);
      if (byValue === undefined) {
        byValue = new Map();
        this.#byField.set(field, byValue);
      }
      const list = byValue.get(value);
      if (list === undefined) byValue.set(value, [lock]);
      else list.push(lock);
      size += 1;
    }
    this.size = size;
  }

  /** The first lock in force at `nowMs` whose whole target matches the subject, or undefined. */
  match(subject: LockSubject, nowMs: number): Lock | undefined {
    if (this.size === 0) return undefined;
    for (const [field, byValue] of this.#byField) {
      const value = subjectValue(subject, field);
      if (value === undefined) continue;
      const candidates = byValue.get(value);
      if (candidates === undefined) continue;
      for (const lock of candidates) {
        if (lock.expiresAtMs !== undefined && lock.expiresAtMs <= nowMs) continue;
        if (targetEntries(lock.target).every(([f, v]) => subjectValue(subject, f) === v)) {
          return lock;
        }
      }
    }
    return undefined;
  }
}
