import { createHash, createPublicKey, type KeyObject } from "node:crypto";
import { LRUCache } from "lru-cache";
import { isPlainObject } from "../lib/plain-object.ts";

/** Signature algorithms a service-account JWT may use. Everything else (none, HS*) is refused. */
/** Keys a JWKS may hold: kube-apiserver publishes one per service-account signing key. */
export const MAX_JWKS_KEYS = 100;

export const ALLOWED_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
] as const;
export type JwsAlgorithm = (typeof ALLOWED_ALGORITHMS)[number];

const RSA_ALGORITHMS: readonly JwsAlgorithm[] = ALLOWED_ALGORITHMS.filter(
  (alg) => alg.startsWith("RS") || alg.startsWith("PS"),
);
// A Map, not an object literal: a JWK's `crv` of "constructor" or "__proto__" must find nothing.
const EC_ALGORITHM_BY_CURVE: ReadonlyMap<unknown, JwsAlgorithm> = new Map([
  ["P-256", "ES256"],
  ["P-384", "ES384"],
  ["P-521", "ES512"],
]);
const MIN_RSA_BITS = 2048;
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;

/** One imported, usable public key of a JWKS. */
export interface VerificationKey {
  /** `kid` as published; undefined when the JWK has none. */
  readonly kid: string | undefined;
  readonly key: KeyObject;
  readonly kty: "RSA" | "EC" | "OKP";
  /** The algorithms this key may verify (narrowed by the JWK's own `alg` when present). */
  readonly algorithms: ReadonlySet<JwsAlgorithm>;
  /** base64url(sha256(SPKI DER)): what kube-apiserver >= 1.16 uses as `kid`. */
  readonly spkiSha256: string;
}

/**
 * A parsed, validated key set. Immutable; `revision` changes whenever the set of keys changes, so
 * caches keyed by it never serve a result verified under keys that are gone.
 */
export class KeySet {
  readonly keys: readonly VerificationKey[];
  readonly revision: string;
  readonly #byKid: ReadonlyMap<string, readonly VerificationKey[]>;

  constructor(keys: readonly VerificationKey[]) {
    this.keys = keys;
    const byKid = new Map<string, VerificationKey[]>();
    for (const k of keys) {
      if (k.kid === undefined || k.kid === "") continue;
      byKid.set(k.kid, [...(byKid.get(k.kid) ?? []), k]);
    }
    this.#byKid = byKid;
    // Sorted: the order of keys in the document changes nothing a verification can observe.
    this.revision = createHash("sha256")
      .update(
        keys
          .map((k) => `${k.kid ?? ""}|${k.spkiSha256}|${[...k.algorithms].sort().join(",")}`)
          .sort()
          .join("\n"),
      )
      .digest("base64url")
      .slice(0, 22);
  }

  /** Whether a key with exactly this non-empty `kid` is in the set. */
  hasKid(kid: string): boolean {
    return this.#byKid.has(kid);
  }

  /**
   * Candidate keys for a JWT header: by `kid` when the token names one (kube >= 1.16 uses the SPKI
   * hash, EKS an opaque id); every key fitting `alg` when the token's kid is empty or absent (kube
   * < 1.16). A named kid that is not in the set yields no candidates: never fall back to trying all.
   */
  candidates(kid: string | undefined, alg: JwsAlgorithm): readonly VerificationKey[] {
    if (kid !== undefined && kid !== "") {
      return (this.#byKid.get(kid) ?? []).filter((k) => k.algorithms.has(alg));
    }
    return this.keys.filter((k) => k.algorithms.has(alg));
  }
}

export type JwksParseResult =
  | { readonly ok: true; readonly keySet: KeySet; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly problems: readonly string[] };

/**
 * Parses a JWKS document (as served at `/openid/v1/jwks`) and imports every key once. Problems are
 * returned, all of them, as messages relative to the JWKS (`keys[1].kid: duplicate ...`): the
 * caller prefixes file and field position.
 */
export function parseJwks(text: string): JwksParseResult {
  const known = PARSED_JWKS.get(text);
  if (known !== undefined) return known;
  const result = parseJwksText(text);
  // Kept under a copy of its own: `text` may be a slice of a whole resource file, which the
  // entry would otherwise keep alive (V8's sliced strings hold their parent).
  PARSED_JWKS.set(Buffer.from(text, "utf8").toString("utf8"), result);
  return result;
}

/**
 * Results of `parseJwks` by the JWKS text. Many tokens of one cluster carry the same JWKS (measured
 * on 10,000 tokens over 16 keys: 32 distinct texts), so they share one imported `KeySet` instead of
 * importing, exporting and hashing the same keys again per token and per reload. A result depends
 * on the text alone and is immutable, so sharing it changes nothing a caller can observe.
 */
const PARSED_JWKS = new LRUCache<string, JwksParseResult>({ max: 4096 });

function parseJwksText(text: string): JwksParseResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    const hashLine = /^\s*#/m.test(text)
      ? " A line starting with '#' inside the jwks block is part of the JSON text, not a YAML comment: remove it."
      : "";
    return {
      ok: false,
      problems: [`not valid JSON (${jsonSyntaxError((err as Error).message, text)}).${hashLine}`],
    };
  }
  if (!isPlainObject(doc) || !Array.isArray(doc["keys"])) {
    return { ok: false, problems: ['must be a JSON object with a "keys" array (a JWKS)'] };
  }
  if (doc["keys"].length > MAX_JWKS_KEYS) {
    // Refused before any key is imported: an oidc issuer's answer (up to 1 MiB) could otherwise
    // hold thousands of keys, each imported on every refresh.
    return {
      ok: false,
      problems: [
        `holds ${doc["keys"].length} keys; at most ${MAX_JWKS_KEYS} are accepted (a cluster publishes a handful)`,
      ],
    };
  }
  const problems: string[] = [];
  const warnings: string[] = [];
  const keys: VerificationKey[] = [];
  const seenKids = new Map<string, number>();
  doc["keys"].forEach((jwk: unknown, i: number) => {
    const where = `keys[${i}]`;
    if (!isPlainObject(jwk)) {
      problems.push(`${where}: must be a JSON object`);
      return;
    }
    const found = PRIVATE_MEMBERS.filter((m) => Object.hasOwn(jwk, m));
    if (found.length > 0) {
      problems.push(
        `${where}: contains private key material (${found.join(", ")}): publish only public keys`,
      );
      return;
    }
    const kid = jwk["kid"];
    if (kid !== undefined && typeof kid !== "string") {
      problems.push(`${where}.kid: must be a string`);
      return;
    }
    if (typeof kid === "string" && kid !== "") {
      const first = seenKids.get(kid);
      if (first !== undefined) {
        problems.push(`${where}.kid: duplicate kid "${kid}" (also keys[${first}])`);
        return;
      }
      seenKids.set(kid, i);
    }
    if (jwk["use"] !== undefined && jwk["use"] !== "sig") {
      warnings.push(`${where}: skipped, "use" is ${JSON.stringify(jwk["use"])}, not "sig"`);
      return;
    }
    const imported = importJwk(jwk, where);
    if (typeof imported === "string") problems.push(imported);
    else keys.push({ ...imported, kid: typeof kid === "string" ? kid : undefined });
  });
  if (problems.length > 0) return Object.freeze({ ok: false, problems: Object.freeze(problems) });
  if (keys.length === 0) {
    return { ok: false, problems: ["holds no usable asymmetric public signing key"] };
  }
  return Object.freeze({ ok: true, keySet: new KeySet(keys), warnings: Object.freeze(warnings) });
}

function importJwk(
  jwk: Record<string, unknown>,
  where: string,
): Omit<VerificationKey, "kid"> | string {
  const kty = jwk["kty"];
  let algorithms: JwsAlgorithm[];
  let publicJwk: Record<string, unknown>;
  switch (kty) {
    case "RSA":
      algorithms = [...RSA_ALGORITHMS];
      publicJwk = { kty, n: jwk["n"], e: jwk["e"] };
      break;
    case "EC": {
      const alg = EC_ALGORITHM_BY_CURVE.get(jwk["crv"]);
      if (alg === undefined)
        return `${where}.crv: unsupported EC curve ${JSON.stringify(jwk["crv"])}`;
      algorithms = [alg];
      publicJwk = { kty, crv: jwk["crv"], x: jwk["x"], y: jwk["y"] };
      break;
    }
    case "OKP":
      if (jwk["crv"] !== "Ed25519") {
        return `${where}.crv: unsupported OKP curve ${JSON.stringify(jwk["crv"])} (only Ed25519)`;
      }
      algorithms = ["EdDSA"];
      publicJwk = { kty, crv: jwk["crv"], x: jwk["x"] };
      break;
    case "oct":
      return `${where}.kty: symmetric keys ("oct") are never accepted: service-account tokens are signed with asymmetric keys`;
    default:
      return `${where}.kty: unsupported key type ${JSON.stringify(kty)} (RSA, EC or OKP)`;
  }
  if (jwk["alg"] !== undefined) {
    const alg = jwk["alg"] as JwsAlgorithm;
    if (!algorithms.includes(alg)) {
      return `${where}.alg: ${JSON.stringify(jwk["alg"])} does not fit a ${kty} key`;
    }
    algorithms = [alg];
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: publicJwk as never, format: "jwk" });
  } catch (err) {
    return `${where}: not a valid ${String(kty)} public key (${(err as Error).message})`;
  }
  if (kty === "RSA") {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS)
      return `${where}: RSA key of ${bits} bits is too small (at least ${MIN_RSA_BITS})`;
  }
  const spkiSha256 = createHash("sha256")
    .update(key.export({ type: "spki", format: "der" }))
    .digest("base64url");
  return { key, kty, algorithms: new Set(algorithms), spkiSha256 };
}

/**
 * Where JSON.parse failed, without its own message: V8 quotes the input around the error, and a
 * JWKS pasted with private members (`d`, `p`, `q`) must not have them copied into diagnostics.
 */
function jsonSyntaxError(message: string, text: string): string {
  const at = /at position (\d+)/.exec(message);
  if (at !== null) {
    const before = text.slice(0, Number(at[1]));
    const line = before.split("\n").length;
    const column = before.length - before.lastIndexOf("\n");
    return `syntax error at line ${line}, column ${column}`;
  }
  if (/Unexpected end/.test(message)) return "the text ends before the JSON does";
  const token = /^Unexpected token '(.)'/.exec(message)?.[1];
  if (token !== undefined && /^[{}[\]:,#"']$/.test(token)) return `unexpected '${token}'`;
  return "syntax error";
}
