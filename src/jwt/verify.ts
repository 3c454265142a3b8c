/**
 * The generic JWS/JWT checks (steps 1-6 of docs/verification.md) that any JWT-based join method
 * reuses. What a Kubernetes service-account token must carry on top is checked in
 * `src/methods/kubernetes/service-account.ts`.
 */
import { constants, verify, type KeyObject } from "node:crypto";
import { JoinError } from "../errors.ts";
import {
  ALLOWED_ALGORITHMS,
  type JwsAlgorithm,
  type KeySet,
  type VerificationKey,
} from "./keys.ts";

/** What the token must have been issued for. */
export interface ExpectedClaims {
  /** The cluster name: `aud` (a string or a list) must contain it. */
  readonly audience: string;
  /** When set (an issuer-bound method, such as the kubernetes `oidc` type), `iss` must equal it exactly. */
  readonly issuer?: string;
}

/** Bounds on the work one token may cost (each signature check is CPU its sender gets for free). */
export interface VerifyLimits {
  /**
   * Keys tried for a JWT that names no `kid` (kube < 1.16), in JWKS order; a JWKS with more keys
   * of the token's algorithm than this makes such a token `jwt_signature_invalid` unless one of
   * the first ones verifies it. Default {@link DEFAULT_MAX_KEYS_WITHOUT_KID}.
   */
  readonly maxKeysWithoutKid?: number | undefined;
}

/** Keys tried for a JWT without a kid unless the service is configured otherwise. */
export const DEFAULT_MAX_KEYS_WITHOUT_KID = 4;

/** Tokens larger than this are refused before anything is decoded. */
export const MAX_JWT_LENGTH = 16 * 1024;
/** Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds. */
export const CLOCK_LEEWAY_SECONDS = 10;

// A kid is echoed in messages only when it looks like one (kube's SPKI hash, EKS's hex id).
const PRINTABLE_KID = /^[A-Za-z0-9._~+/=:-]{1,128}$/;

const ALLOWED = new Set<string>(ALLOWED_ALGORITHMS);
const HASH_OF: Readonly<Record<JwsAlgorithm, string | null>> = {
  RS256: "sha256",
  RS384: "sha384",
  RS512: "sha512",
  PS256: "sha256",
  PS384: "sha384",
  PS512: "sha512",
  ES256: "sha256",
  ES384: "sha384",
  ES512: "sha512",
  EdDSA: null,
};
const SALT_LENGTH: Readonly<Record<string, number>> = { sha256: 32, sha384: 48, sha512: 64 };

/** A JSON object as `JSON.parse` returns it. */
export type JsonObject = Record<string, unknown>;

/** A JWT after the structural checks of step 1: what {@link decodeJwt} returns. */
export interface DecodedJwt {
  readonly alg: string;
  readonly kid: string | undefined;
  readonly signingInput: Buffer;
  readonly signature: Buffer;
  /** The claims' bytes (strict base64url decoded); `verifyJwt` parses them. */
  readonly payload: Buffer;
}

/**
 * Reads the `alg` and `kid` of a JWT's header without verifying anything, so a key source (the
 * `oidc` type) can tell whether it knows the kid before choosing keys. Applies the same structural
 * checks as step 1 of {@link verifyJwt}: size, three strict base64url parts, a
 * header that is a JSON object with a string `alg`, an optional string `kid`, and no `crit`.
 *
 * @throws JoinError `jwt_malformed`
 */
export function decodeJwtHeader(jwt: string): { alg: string; kid: string | undefined } {
  const { alg, kid } = decodeJwt(jwt);
  return { alg, kid };
}

/** A JWT whose signature, audience, issuer and time claims verified (steps 1-6). */
export interface VerifiedJwt {
  /** The claims object, as the token carried it. Read fields with {@link own}. */
  readonly claims: JsonObject;
  /** `iat` and `exp`, in seconds since the epoch. */
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/**
 * Verifies a compact JWS JWT against a static key set: the generic checks any JWT-based join method
 * reuses (the Kubernetes claims are checked on top by `methods/kubernetes/service-account.ts`).
 * Pure: the same (token, keys, expected claims, time) always give the same answer. Takes the JWT
 * as text, or as {@link decodeJwt} returned it (so a caller that read the header to pick keys
 * does not decode it twice).
 *
 * Checks, in this order, each with its own code (see docs/verification.md):
 * 1. size <= 16 KiB, compact JWS, header and claims JSON objects, no `crit`: `jwt_malformed`;
 * 2. `alg` asymmetric and fitting the key: `jwt_algorithm_not_allowed`;
 * 3. a key (by `kid`, or when kid is empty or absent one of the first
 *    `limits.maxKeysWithoutKid` keys of the token's algorithm) verifies: `jwt_signature_invalid`;
 * 4. `aud` contains `expected.audience`: `jwt_audience_mismatch`; `iss` equals `expected.issuer`
 *    when set: `jwt_issuer_mismatch`;
 * 5. time, 10 s leeway: `jwt_expired`, `jwt_not_yet_valid`;
 * 6. `exp`, `iat` present finite numbers: `jwt_missing_claim`.
 *
 * No message ever contains the token or any part of it.
 *
 * @throws JoinError with one of the codes above
 * @throws TypeError when `expected.audience` is empty or `nowMs` is not a finite number
 */
export function verifyJwt(
  jwt: string | DecodedJwt,
  keys: KeySet,
  expected: ExpectedClaims,
  nowMs: number,
  limits: VerifyLimits = {},
): VerifiedJwt {
  if (typeof expected.audience !== "string" || expected.audience === "") {
    throw new TypeError("expected.audience must be a non-empty string");
  }
  if (!Number.isFinite(nowMs)) throw new TypeError("nowMs must be a finite number");

  // 1. Structure.
  const token = typeof jwt === "string" ? decodeJwt(jwt) : jwt;
  // Claims are parsed here, before the signature is checked, so that "malformed" is always the
  // first answer for a broken token (the documented order); nothing in them is used until the
  // signature has verified, and 16 KiB bounds the work.
  const claims = parseJsonObject(token.payload, "claims");

  // 2. Algorithm: allowed at all, and fitting the key(s) it would be checked with.
  if (!ALLOWED.has(token.alg)) {
    throw new JoinError(
      "jwt_algorithm_not_allowed",
      `alg ${describeAlg(token.alg)} is not allowed: service-account tokens are signed with RS*, PS*, ES* or EdDSA`,
    );
  }
  const alg = token.alg as JwsAlgorithm;
  const kidNamed = token.kid !== undefined && token.kid !== "";
  const candidates = keys.candidates(token.kid, alg);
  if (candidates.length === 0 && (!kidNamed || keys.hasKid(token.kid as string))) {
    throw new JoinError(
      "jwt_algorithm_not_allowed",
      kidNamed
        ? `alg ${alg} does not fit the type of the trusted key with kid ${describeKid(token.kid as string)}`
        : `alg ${alg} fits none of the trusted keys`,
    );
  }

  // 3. Signature.
  if (candidates.length === 0) {
    throw new JoinError(
      "jwt_signature_invalid",
      `no trusted key has kid ${describeKid(token.kid as string)} (was the cluster's signing key rotated?)`,
    );
  }
  // At most `maxKeysWithoutKid` signature checks for a token without a kid: otherwise anyone who
  // reaches the port makes the service check one bad signature per key of the JWKS. A named kid
  // selects one key (duplicate kids are refused when the JWKS is parsed); the bound holds anyway.
  const maxTried = limits.maxKeysWithoutKid ?? DEFAULT_MAX_KEYS_WITHOUT_KID;
  const tried = candidates.length > maxTried ? candidates.slice(0, maxTried) : candidates;
  if (!tried.some((k) => verifyWith(k, alg, token.signingInput, token.signature))) {
    let message: string;
    if (kidNamed) {
      message = `the signature does not verify with the trusted key of kid ${describeKid(token.kid as string)}`;
    } else if (tried.length < candidates.length) {
      message = `the token names no key id (kid) and the JWKS has ${candidates.length} ${alg} keys, more than the ${tried.length} tried for a token without one; none of those verifies its signature (kube-apiserver >= 1.16 names the key)`;
    } else {
      message = `the token names no kid and none of the ${candidates.length} trusted ${alg} key(s) verifies its signature`;
    }
    throw new JoinError("jwt_signature_invalid", message);
  }

  // 4. Audience, then issuer (oidc).
  const audiences = audienceList(own(claims, "aud"));
  if (!audiences.includes(expected.audience)) {
    const legacy =
      own(claims, "aud") === undefined &&
      own(claims, "kubernetes.io/serviceaccount/secret.name") !== undefined
        ? " (this is a legacy secret-based token: use a projected token with this audience)"
        : "";
    throw new JoinError(
      "jwt_audience_mismatch",
      `aud must contain ${JSON.stringify(expected.audience)}; the token carries ${describeValues(audiences)}${legacy}`,
    );
  }
  if (expected.issuer !== undefined && own(claims, "iss") !== expected.issuer) {
    throw new JoinError(
      "jwt_issuer_mismatch",
      `iss must be ${JSON.stringify(expected.issuer)}; the token carries ${describeValue(own(claims, "iss"))}`,
    );
  }

  // 5. Time. Only numbers can be compared; anything else is reported by step 6.
  const nowSeconds = nowMs / 1000;
  const exp = own(claims, "exp");
  const iat = own(claims, "iat");
  const nbf = own(claims, "nbf");
  if (isNumericDate(exp) && exp <= nowSeconds - CLOCK_LEEWAY_SECONDS) {
    throw new JoinError("jwt_expired", `the token expired at ${isoTime(exp)}`);
  }
  for (const [name, value] of [
    ["nbf", nbf],
    ["iat", iat],
  ] as const) {
    if (isNumericDate(value) && value > nowSeconds + CLOCK_LEEWAY_SECONDS) {
      throw new JoinError(
        "jwt_not_yet_valid",
        `the token's ${name} (${isoTime(value)}) is in the future`,
      );
    }
  }

  // 6. Required time claims.
  for (const [name, value, required] of [
    ["exp", exp, true],
    ["iat", iat, true],
    ["nbf", nbf, false],
  ] as const) {
    if (value === undefined && !required) continue;
    if (value === undefined) {
      throw new JoinError("jwt_missing_claim", `the token has no ${name} claim`);
    }
    if (!isNumericDate(value)) {
      throw new JoinError(
        "jwt_missing_claim",
        `the token's ${name} claim is not a finite number of seconds since the epoch`,
      );
    }
  }

  return { claims, issuedAt: iat as number, expiresAt: exp as number };
}

/**
 * Step 1 of {@link verifyJwt} without the claims' JSON: size, three strict base64url parts, a
 * header that is a JSON object with a string `alg`, an optional string `kid`, and no `crit`. A key
 * source (the `oidc` type) reads the kid from it; the same value then goes to `verifyJwt`.
 *
 * @throws JoinError `jwt_malformed`
 */
export function decodeJwt(jwt: string): DecodedJwt {
  if (typeof jwt !== "string" || jwt.length === 0) {
    throw new JoinError("jwt_malformed", "the token is empty");
  }
  if (jwt.length > MAX_JWT_LENGTH) {
    throw new JoinError(
      "jwt_malformed",
      `the token is larger than ${MAX_JWT_LENGTH} bytes (${jwt.length} characters)`,
    );
  }
  const parts = jwt.split(".");
  if (parts.length !== 3) {
    throw new JoinError(
      "jwt_malformed",
      `the token is not a compact JWS (3 dot-separated parts; it has ${parts.length})`,
    );
  }
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = parseJsonObject(decodeBase64Url(headerPart, "header"), "header");
  if (Object.hasOwn(header, "crit")) {
    // RFC 7515 4.1.11: unknown critical extensions must be rejected, and none are understood here.
    throw new JoinError(
      "jwt_malformed",
      "the header carries crit, which kube-join does not support",
    );
  }
  const alg = own(header, "alg");
  if (typeof alg !== "string") {
    throw new JoinError("jwt_malformed", "the header has no string alg");
  }
  const kid = own(header, "kid");
  if (kid !== undefined && typeof kid !== "string") {
    throw new JoinError("jwt_malformed", "the header's kid is not a string");
  }
  const signature = decodeBase64Url(signaturePart, "signature");
  const payload = decodeBase64Url(payloadPart, "claims");
  return {
    alg,
    kid,
    signingInput: Buffer.from(`${headerPart}.${payloadPart}`, "latin1"),
    signature,
    payload,
  };
}

/** Strict base64url: the alphabet only, no padding, canonical (re-encodes to the same text). */
function decodeBase64Url(part: string, what: string): Buffer {
  const bytes = Buffer.from(part, "base64url");
  if (bytes.toString("base64url") !== part) {
    throw new JoinError("jwt_malformed", `the ${what} is not strict base64url`);
  }
  return bytes;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

function parseJsonObject(bytes: Buffer, what: "header" | "claims"): JsonObject {
  let value: unknown;
  try {
    // JSON.parse defines "__proto__" as an own property and never touches prototypes; its error
    // messages quote the input, so they are not passed on.
    value = JSON.parse(UTF8.decode(bytes));
  } catch {
    throw new JoinError("jwt_malformed", `the ${what} is not valid UTF-8 JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new JoinError("jwt_malformed", `the ${what} is not a JSON object`);
  }
  return value as JsonObject;
}

function verifyWith(
  candidate: VerificationKey,
  alg: JwsAlgorithm,
  signingInput: Buffer,
  signature: Buffer,
): boolean {
  const hash = HASH_OF[alg];
  const key: KeyObject = candidate.key;
  try {
    if (alg.startsWith("ES")) {
      return verify(hash, signingInput, { key, dsaEncoding: "ieee-p1363" }, signature);
    }
    if (alg.startsWith("PS")) {
      return verify(
        hash,
        signingInput,
        {
          key,
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: SALT_LENGTH[hash as string] as number,
        },
        signature,
      );
    }
    return verify(hash, signingInput, key, signature);
  } catch {
    // OpenSSL refuses some malformed signatures (wrong length) by throwing: not a match.
    return false;
  }
}

/** A claim by name: own properties only, so nothing inherited counts as a claim. */
export function own(object: JsonObject | undefined, key: string): unknown {
  return object !== undefined && Object.hasOwn(object, key) ? object[key] : undefined;
}

/** `value` when it is a JSON object (not an array or null). */
export function objectOrUndefined(value: unknown): JsonObject | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as JsonObject)
    : undefined;
}

/** `value` when it is a string. */
export function stringOrUndefined(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function isNumericDate(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value);
}

function audienceList(aud: unknown): readonly unknown[] {
  if (aud === undefined) return [];
  return Array.isArray(aud) ? aud : [aud];
}

function describeValue(value: unknown): string {
  if (value === undefined) return "none";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function describeValues(values: readonly unknown[]): string {
  if (values.length === 0) return "none";
  const shown = values.slice(0, 5).map(describeValue).join(", ");
  return values.length > 5 ? `[${shown}, and ${values.length - 5} more]` : `[${shown}]`;
}

function describeAlg(alg: string): string {
  return describeValue(alg);
}

function describeKid(kid: string): string {
  return PRINTABLE_KID.test(kid) ? JSON.stringify(kid) : "(not shown: not a printable key id)";
}

function isoTime(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? `${seconds}` : date.toISOString();
}
