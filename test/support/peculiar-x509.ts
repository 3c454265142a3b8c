/**
 * `@peculiar/x509`, loadable: the tests' and the bench's ASN.1 oracle (a dev dependency; the
 * service builds every certificate from `src/ca/der.ts`). Its dependency tsyringe refuses to
 * load unless a Reflect metadata polyfill (`reflect-metadata`) is installed, and none is among
 * our dependencies. The library only needs the metadata calls to exist (its decorated classes
 * take no constructor parameters), so a minimal, WeakMap-backed polyfill is installed here,
 * before the library loads: ES modules evaluate their imports in order. Import `x509` from this
 * module, never from "@peculiar/x509" directly.
 */
import "./reflect-metadata-polyfill.ts";

export * as x509 from "@peculiar/x509";
