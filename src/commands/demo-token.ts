/**
 * `kube-join demo-token`: prints a projected service-account JWT, shaped like the one kube-apiserver
 * mounts into a pod, signed by the TEST-ONLY demo cluster key in `fixtures/demo/`. It lets a
 * newcomer try a join against `npm start` without a Kubernetes cluster. The demo key is public:
 * tokens it signs prove nothing outside the demo.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  randomUUID,
  sign,
} from "node:crypto";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseDuration } from "../lib/duration.ts";

export const DEMO_KEY_FILE = fileURLToPath(
  new URL("../../fixtures/demo/demo-cluster-key.TEST-ONLY.jwk.json", import.meta.url),
);
export const DEMO_AUDIENCE = "example.teleport.sh";
export const DEMO_ISSUER = "https://kubernetes.default.svc.cluster.local";

const HELP = `Usage: kube-join demo-token [--service-account NS:NAME] [--ttl DURATION] [--audience AUD] [--pod NAME]

Prints a pod-bound projected service-account JWT signed by the TEST-ONLY demo cluster key
(fixtures/demo/demo-cluster-key.TEST-ONLY.jwk.json), for trying a join against \`npm start\`.
  --service-account  namespace:name              [default:tbot]
  --ttl              lifetime (kube-join accepts at most 30m)   [10m]
  --audience         the aud claim (kube-join's cluster_name)    [${DEMO_AUDIENCE}]
  --pod              the pod the token is bound to               [tbot-<random>]
  --key              a private JWK file to sign with instead of the demo key`;

export interface DemoTokenOptions {
  readonly namespace: string;
  readonly serviceAccount: string;
  readonly ttlSeconds: number;
  readonly audience: string;
  readonly podName: string;
  readonly nowMs: number;
}

/** Signs a projected-style token with a private JWK (RSA, EC P-256 or Ed25519). */
export function signDemoToken(
  privateJwk: Record<string, unknown>,
  options: DemoTokenOptions,
): string {
  const { kty, crv, n, e, d, p, q, dp, dq, qi, x, y } = privateJwk;
  const key = createPrivateKey({
    key: JSON.parse(JSON.stringify({ kty, crv, n, e, d, p, q, dp, dq, qi, x, y })) as never,
    format: "jwk",
  });
  const spki = createPublicKey(key).export({ type: "spki", format: "der" });
  const kid = createHash("sha256").update(spki).digest("base64url");
  const alg =
    key.asymmetricKeyType === "rsa" ? "RS256" : key.asymmetricKeyType === "ec" ? "ES256" : "EdDSA";
  const iat = Math.floor(options.nowMs / 1000);
  const claims = {
    aud: [options.audience],
    exp: iat + options.ttlSeconds,
    iat,
    iss: DEMO_ISSUER,
    jti: randomUUID(),
    "kubernetes.io": {
      namespace: options.namespace,
      node: { name: "demo-node", uid: randomUUID() },
      pod: { name: options.podName, uid: randomUUID() },
      serviceaccount: { name: options.serviceAccount, uid: randomUUID() },
    },
    nbf: iat,
    sub: `system:serviceaccount:${options.namespace}:${options.serviceAccount}`,
  };
  const input = `${b64(JSON.stringify({ alg, kid }))}.${b64(JSON.stringify(claims))}`;
  const data = Buffer.from(input);
  const signature =
    alg === "RS256"
      ? sign("sha256", data, key)
      : alg === "ES256"
        ? sign("sha256", data, { key, dsaEncoding: "ieee-p1363" })
        : sign(null, data, key);
  return `${input}.${signature.toString("base64url")}`;
}

export async function run(args: string[]): Promise<number> {
  let serviceAccountRef = "default:tbot";
  let ttl = "10m";
  let audience = DEMO_AUDIENCE;
  let podName = `tbot-${randomBytes(4).toString("hex")}`;
  let keyFile = DEMO_KEY_FILE;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--help" || arg === "-h") {
      console.log(HELP);
      return 0;
    }
    const value = args[i + 1];
    if (value === undefined || !arg?.startsWith("--")) {
      console.error(
        `kube-join demo-token: ${value === undefined ? `${String(arg)} needs a value` : `unknown argument ${JSON.stringify(arg)}`}\n\n${HELP}`,
      );
      return 2;
    }
    i++;
    switch (arg) {
      case "--service-account":
        serviceAccountRef = value;
        break;
      case "--ttl":
        ttl = value;
        break;
      case "--audience":
        audience = value;
        break;
      case "--pod":
        podName = value;
        break;
      case "--key":
        keyFile = value;
        break;
      default:
        console.error(`kube-join demo-token: unknown option ${arg}\n\n${HELP}`);
        return 2;
    }
  }
  const match = /^([^:\s]+):([^:\s]+)$/.exec(serviceAccountRef);
  if (match === null) {
    console.error(
      `kube-join demo-token: --service-account must be namespace:name, got ${JSON.stringify(serviceAccountRef)}`,
    );
    return 2;
  }
  let ttlMs: number;
  try {
    ttlMs = parseDuration(ttl);
  } catch (err) {
    console.error(`kube-join demo-token: --ttl: ${(err as Error).message}`);
    return 2;
  }
  if (ttlMs < 1000) {
    console.error("kube-join demo-token: --ttl must be at least 1s");
    return 2;
  }
  let jwk: Record<string, unknown>;
  try {
    jwk = JSON.parse(await readFile(keyFile, "utf8")) as Record<string, unknown>;
  } catch (err) {
    console.error(
      `kube-join demo-token: cannot read the key file ${keyFile}: ${(err as Error).message}`,
    );
    return 1;
  }
  console.log(
    signDemoToken(jwk, {
      namespace: match[1] as string,
      serviceAccount: match[2] as string,
      ttlSeconds: Math.floor(ttlMs / 1000),
      audience,
      podName,
      nowMs: Date.now(),
    }),
  );
  return 0;
}

function b64(text: string): string {
  return Buffer.from(text).toString("base64url");
}
