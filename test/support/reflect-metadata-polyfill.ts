/**
 * The subset of the Reflect metadata API (rbuckton/reflect-metadata) that tsyringe checks for
 * and TypeScript's emitted decorators call. Installed only where missing, so a real polyfill
 * loaded first wins. See `peculiar-x509.ts`.
 */
type MetadataMap = Map<unknown, unknown>;
const store = new WeakMap<object, Map<PropertyKey | undefined, MetadataMap>>();

function metadataOf(target: object, property: PropertyKey | undefined, create: boolean) {
  let byProperty = store.get(target);
  if (!byProperty) {
    if (!create) return undefined;
    byProperty = new Map();
    store.set(target, byProperty);
  }
  let map = byProperty.get(property);
  if (!map && create) {
    map = new Map();
    byProperty.set(property, map);
  }
  return map;
}

function getOwnMetadata(key: unknown, target: object, property?: PropertyKey): unknown {
  return metadataOf(target, property, false)?.get(key);
}

function getMetadata(key: unknown, target: object, property?: PropertyKey): unknown {
  for (
    let at: object | null = target;
    at !== null;
    at = Object.getPrototypeOf(at) as object | null
  ) {
    const map = metadataOf(at, property, false);
    if (map?.has(key)) return map.get(key);
  }
  return undefined;
}

function defineMetadata(
  key: unknown,
  value: unknown,
  target: object,
  property?: PropertyKey,
): void {
  metadataOf(target, property, true)?.set(key, value);
}

const polyfill = {
  getOwnMetadata,
  getMetadata,
  defineMetadata,
  hasOwnMetadata: (key: unknown, target: object, property?: PropertyKey) =>
    metadataOf(target, property, false)?.has(key) ?? false,
  hasMetadata: (key: unknown, target: object, property?: PropertyKey) =>
    getMetadata(key, target, property) !== undefined,
  metadata:
    (key: unknown, value: unknown) =>
    (target: object, property?: PropertyKey): void =>
      defineMetadata(key, value, target, property),
};

const reflect = Reflect as unknown as Record<string, unknown>;
if (typeof reflect["getMetadata"] !== "function") {
  for (const [name, fn] of Object.entries(polyfill)) {
    Object.defineProperty(Reflect, name, { value: fn, configurable: true, writable: true });
  }
}
