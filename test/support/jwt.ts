/**
 * Mints realistic projected service-account tokens for tests, with keys generated in the test.
 *
 * ```ts
 * const key = generateClusterKey("ES256");
 * const keySet = parseJwksOrThrow(key.jwks);           // what a token resource would hold
 * const jwt = mintServiceAccountToken(key);             // default:tbot, valid at TEST_NOW_MS
 * const other = mintServiceAccountToken(key, serviceAccountClaims({ namespace: "ci", serviceAccount: "bot" }));
 * const noPod = mintServiceAccountToken(key, { "kubernetes.io": { namespace: "default" } });
 * const noExp = mintServiceAccountToken(key, { exp: undefined });   // undefined deletes a claim
 * const oddKid = mintServiceAccountToken(key, {}, { kid: "" });     // header overrides likewise
 * ```
 *
 * Tokens look like what kube-apiserver >= 1.30 mounts into a pod: RS256/ES256 header with
 * `kid` = base64url(sha256(SPKI DER)); claims `aud`, `exp`, `iat`, `nbf`, `iss`, `jti`, `sub`
 * and `kubernetes.io` {namespace, node, pod, serviceaccount}.
 */
import {
  createHash,
  generateKeyPairSync,
  randomUUID,
  sign,
  constants,
  type KeyObject,
} from "node:crypto";
import { parseJwks, type JwsAlgorithm, type KeySet } from "../../src/jwt/keys.ts";

/** The fixed clock of token tests: 2026-01-15T12:00:00Z. */
export const TEST_NOW_MS = Date.UTC(2026, 0, 15, 12, 0, 0);
/** The audience (Teleport cluster name) minted tokens carry by default. */
export const TEST_AUDIENCE = "kube-join.example.com";
/** The issuer minted tokens carry by default. */
export const TEST_ISSUER = "https://kubernetes.default.svc.cluster.local";

export interface ClusterKey {
  readonly alg: JwsAlgorithm;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** base64url(sha256(SPKI DER)), as kube-apiserver >= 1.16 computes it (unless overridden). */
  readonly kid: string;
  /** The public JWK as `/openid/v1/jwks` serves it: kty, use, alg, kid and the public members. */
  readonly jwk: Readonly<Record<string, unknown>>;
  /** `{"keys":[jwk]}` as JSON text, ready for `spec.kubernetes.static_jwks.jwks`. */
  readonly jwks: string;
}

export interface ClusterKeyOptions {
  /** Publish the key under this kid instead of the SPKI hash (EKS-style opaque ids, rotations). */
  readonly kid?: string;
  /** RSA modulus size (default 2048). */
  readonly modulusLength?: number;
  /** Leave `alg` out of the JWK (kube always sets it; older tools do not). */
  readonly omitJwkAlg?: boolean;
}

/**
 * Generates a signing key pair of the kind `alg` needs: RSA 2048 for RS and PS, P-256/384/521 for
 * ES256/384/512, Ed25519 for EdDSA. Key generation costs a few ms (RSA ~50 ms): generate once per
 * test file.
 */
export function generateClusterKey(
  alg: JwsAlgorithm = "RS256",
  options: ClusterKeyOptions = {},
): ClusterKey {
  const { privateKey, publicKey } = generatePair(alg, options.modulusLength ?? 2048);
  const kid = options.kid ?? spkiSha256(publicKey);
  const jwk: Record<string, unknown> = {
    use: "sig",
    ...publicKey.export({ format: "jwk" }),
    kid,
    ...(options.omitJwkAlg ? {} : { alg }),
  };
  return { alg, privateKey, publicKey, kid, jwk, jwks: jwksOf(jwk) };
}

/** A JWKS document holding these keys (or raw JWKs), as JSON text. */
export function jwksOf(
  ...keys: ReadonlyArray<ClusterKey | Readonly<Record<string, unknown>>>
): string {
  return JSON.stringify({ keys: keys.map((k) => ("privateKey" in k ? k.jwk : k)) });
}

/** `parseJwks` that throws on problems: for tests whose subject is not the JWKS itself. */
export function parseJwksOrThrow(text: string): KeySet {
  const result = parseJwks(text);
  if (!result.ok) throw new Error(`test JWKS rejected: ${result.problems.join("; ")}`);
  return result.keySet;
}

/** base64url(sha256(SPKI DER)) of a public key: kube-apiserver's key id. */
export function spkiSha256(publicKey: KeyObject): string {
  return createHash("sha256")
    .update(publicKey.export({ type: "spki", format: "der" }))
    .digest("base64url");
}

export interface ServiceAccountClaimOptions {
  readonly namespace?: string;
  readonly serviceAccount?: string;
  readonly podName?: string;
  /** `kubernetes.io.pod.uid`; default a new random UUID (a new pod). */
  readonly podUid?: string;
  /** `kubernetes.io.node.name`; default `node-1`. */
  readonly nodeName?: string;
  readonly audience?: string | readonly string[];
  readonly issuer?: string;
  /** Issue time; default TEST_NOW_MS. */
  readonly issuedAtMs?: number;
  /** `exp - iat`; default 600 (kube's minimum `expirationSeconds`). */
  readonly ttlSeconds?: number;
}

/**
 * The full claim set of a projected token for one service account, consistent everywhere (`sub`,
 * `kubernetes.io.namespace`, `kubernetes.io.serviceaccount.name`). Defaults: `default:tbot`, pod
 * `tbot-6d4cf56db6-x7k2p`, audience TEST_AUDIENCE, issued at TEST_NOW_MS, 10 minute lifetime.
 */
export function serviceAccountClaims(
  options: ServiceAccountClaimOptions = {},
): Record<string, unknown> {
  const namespace = options.namespace ?? "default";
  const serviceAccount = options.serviceAccount ?? "tbot";
  const iat = Math.floor((options.issuedAtMs ?? TEST_NOW_MS) / 1000);
  const audience = options.audience ?? TEST_AUDIENCE;
  return {
    aud: typeof audience === "string" ? [audience] : [...audience],
    exp: iat + (options.ttlSeconds ?? 600),
    iat,
    iss: options.issuer ?? TEST_ISSUER,
    jti: randomUUID(),
    "kubernetes.io": {
      namespace,
      node: { name: options.nodeName ?? "node-1", uid: "a3c0f3a4-8f2e-4d7a-9d7e-2b1e6f0c9a11" },
      pod: {
        name: options.podName ?? "tbot-6d4cf56db6-x7k2p",
        uid: options.podUid ?? randomUUID(),
      },
      serviceaccount: { name: serviceAccount, uid: "5b3c9f7e-1d2a-4c8b-9e6f-0a7d3b2c1e44" },
    },
    nbf: iat,
    sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
  };
}

/**
 * Signs a projected service-account token. `claims` are laid over `serviceAccountClaims()` (pass
 * a full `serviceAccountClaims({...})` to change the service account), `header` over
 * `{ alg: key.alg, kid: key.kid }`; a value of `undefined` removes that member.
 */
export function mintServiceAccountToken(
  key: ClusterKey,
  claims: Readonly<Record<string, unknown>> = {},
  header: Readonly<Record<string, unknown>> = {},
): string {
  return signCompact(
    key,
    JSON.stringify(withoutUndefined({ alg: key.alg, kid: key.kid, ...header })),
    JSON.stringify(withoutUndefined({ ...serviceAccountClaims(), ...claims })),
  );
}

/**
 * Signs exact header and payload JSON text (for hostile inputs JSON.stringify cannot produce,
 * such as `1e999` or a duplicate `__proto__` member) with the key's own algorithm, whatever the
 * header claims.
 */
export function signCompact(key: ClusterKey, headerJson: string, payloadJson: string): string {
  const input = `${b64url(headerJson)}.${b64url(payloadJson)}`;
  return `${input}.${signBytes(key, Buffer.from(input, "latin1")).toString("base64url")}`;
}

/** base64url (no padding) of a UTF-8 string or bytes. */
export function b64url(data: string | Uint8Array): string {
  return Buffer.from(data).toString("base64url");
}

function signBytes(key: ClusterKey, data: Buffer): Buffer {
  const { alg, privateKey } = key;
  if (alg === "EdDSA") return sign(null, data, privateKey);
  const hash = `sha${alg.slice(2)}`;
  if (alg.startsWith("ES")) return sign(hash, data, { key: privateKey, dsaEncoding: "ieee-p1363" });
  if (alg.startsWith("PS")) {
    return sign(hash, data, {
      key: privateKey,
      padding: constants.RSA_PKCS1_PSS_PADDING,
      saltLength: Number(alg.slice(2)) / 8,
    });
  }
  return sign(hash, data, privateKey);
}

function generatePair(
  alg: JwsAlgorithm,
  modulusLength: number,
): { privateKey: KeyObject; publicKey: KeyObject } {
  switch (alg) {
    case "ES256":
      return generateKeyPairSync("ec", { namedCurve: "P-256" });
    case "ES384":
      return generateKeyPairSync("ec", { namedCurve: "P-384" });
    case "ES512":
      return generateKeyPairSync("ec", { namedCurve: "P-521" });
    case "EdDSA":
      return generateKeyPairSync("ed25519");
    default:
      return generateKeyPairSync("rsa", { modulusLength });
  }
}

function withoutUndefined(object: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined));
}
