// The kubernetes join method behind the JoinMethod interface: spec prepared at load, one decode
// per JWT, one rendering of the attributes, and a cache that fails closed on foreign values.
import { strict as assert } from "node:assert";
import { describe, test } from "node:test";
import { JoinError } from "../src/errors.ts";
import type { OidcIssuer } from "../src/jwt/oidc.ts";
import type {
  AuthenticateContext,
  AuthenticateTrace,
  VerifiedProof,
} from "../src/methods/join-method.ts";
import {
  encodeJoinAttributes,
  renderKubernetesAttributes,
} from "../src/methods/kubernetes/join-attributes.ts";
import {
  KubernetesJoin,
  kubernetesJoinMethod,
  kubernetesSpecOf,
} from "../src/methods/kubernetes/method.ts";
import { DEFAULT_JOIN_METHOD, JOIN_METHODS } from "../src/methods/registry.ts";
import { VerifiedTokenCache } from "../src/methods/verified-token-cache.ts";
import { parseResources } from "../src/resources/load.ts";
import {
  TEST_AUDIENCE,
  TEST_NOW_MS,
  generateClusterKey,
  mintServiceAccountToken,
  parseJwksOrThrow,
  serviceAccountClaims,
} from "./support/jwt.ts";

const ISSUER = "https://oidc.example.com/cluster-1";
const key = generateClusterKey("ES256");

function context(overrides: Partial<AuthenticateContext> = {}): AuthenticateContext {
  return {
    audience: TEST_AUDIENCE,
    nowMs: TEST_NOW_MS,
    cache: undefined,
    oidcKeys: undefined,
    onInternalError: undefined,
    ...overrides,
  };
}

const trace = (): AuthenticateTrace => ({ cache: undefined, attributes: undefined });

function staticJoin(allow = [{ kind: "exact", namespace: "default", name: "tbot" }] as const) {
  return new KubernetesJoin({ type: "static_jwks", keySet: parseJwksOrThrow(key.jwks), allow });
}

describe("the registry", () => {
  test("maps join_method kubernetes to the kubernetes method, the default for reports", () => {
    assert.equal(JOIN_METHODS.get("kubernetes"), kubernetesJoinMethod);
    assert.deepEqual([...JOIN_METHODS.keys()], ["kubernetes"]);
    assert.equal(DEFAULT_JOIN_METHOD, "kubernetes");
  });

  test("a loaded kubernetes token carries a prepared KubernetesJoin; other methods none", () => {
    const set = parseResources([
      {
        file: "r.yaml",
        text: `kind: bot
version: v1
metadata: { name: example }
spec: { roles: [access] }
---
kind: token
version: v2
metadata: { name: a }
spec:
  roles: [Bot]
  bot_name: example
  join_method: kubernetes
  kubernetes:
    type: oidc
    oidc: { issuer: "${ISSUER}" }
    allow: [{ service_account: "default:tbot" }]
---
kind: token
version: v2
metadata: { name: b }
spec: { roles: [Bot], bot_name: example, join_method: iam }
`,
      },
    ]);
    const a = set.tokens.get("a");
    assert.ok(a?.join instanceof KubernetesJoin);
    assert.equal(a.join.method, "kubernetes");
    assert.deepEqual(kubernetesSpecOf(a.join), {
      type: "oidc",
      issuer: ISSUER,
      insecureAllowHttpIssuer: false,
      allow: [{ kind: "exact", namespace: "default", name: "tbot" }],
    });
    assert.equal(set.tokens.get("b")?.join, undefined);
  });
});

describe("join attributes", () => {
  const facts = { namespace: "ci", serviceAccount: "runner", pod: "runner-5d9f7-abcde" };

  test("the certificate JSON has Teleport's JoinAttrs shape, byte for byte in a fixed order", () => {
    assert.equal(
      encodeJoinAttributes({ ...facts, tokenName: "ci-token" }),
      JSON.stringify({
        meta: { join_token_name: "ci-token", join_method: "kubernetes" },
        kubernetes: {
          subject: "system:serviceaccount:ci:runner",
          pod: { name: "runner-5d9f7-abcde" },
          service_account: { name: "runner", namespace: "ci" },
        },
      }),
    );
  });

  test("one rendering serves the audit line and the response", () => {
    const attributes = renderKubernetesAttributes(facts);
    assert.equal(attributes.method, "kubernetes");
    assert.deepEqual(attributes.audit, {
      namespace: "ci",
      service_account: "runner",
      pod: "runner-5d9f7-abcde",
    });
    assert.deepEqual(attributes.response, {
      kubernetes: {
        subject: "system:serviceaccount:ci:runner",
        namespace: "ci",
        service_account: "runner",
        pod: "runner-5d9f7-abcde",
      },
    });
  });
});

describe("KubernetesJoin.authenticate", () => {
  test("verifies, then matches the allow rules; the trace has the attributes either way", async () => {
    const join = staticJoin();
    const t = trace();
    const attributes = await join.authenticate(mintServiceAccountToken(key), context(), t);
    assert.equal(t.attributes, attributes);
    assert.equal(attributes.audit["service_account"], "tbot");

    const refused = trace();
    const other = mintServiceAccountToken(key, serviceAccountClaims({ serviceAccount: "tbot2" }));
    await assert.rejects(join.authenticate(other, context(), refused), (err: unknown) => {
      assert.ok(err instanceof JoinError);
      assert.equal(err.code, "no_matching_allow_rule");
      return true;
    });
    assert.equal(refused.attributes?.audit["service_account"], "tbot2");
  });

  test("allow rules are compiled at load: the spec's array changing later changes nothing", async () => {
    const allow = [{ kind: "exact", namespace: "default", name: "other" }];
    const join = new KubernetesJoin({
      type: "static_jwks",
      keySet: parseJwksOrThrow(key.jwks),
      allow: allow as never,
    });
    allow.push({ kind: "exact", namespace: "default", name: "tbot" });
    await assert.rejects(
      join.authenticate(mintServiceAccountToken(key), context(), trace()),
      (err: unknown) => err instanceof JoinError && err.code === "no_matching_allow_rule",
    );
  });

  test("oidc: the issuer is parsed once at load and the same value reaches the key source", async () => {
    const join = new KubernetesJoin({
      type: "oidc",
      issuer: ISSUER,
      insecureAllowHttpIssuer: false,
      allow: [{ kind: "exact", namespace: "default", name: "tbot" }],
    });
    const seen: OidcIssuer[] = [];
    const kids: Array<string | undefined> = [];
    const ctx = context({
      oidcKeys: async (issuer, kid) => {
        seen.push(issuer);
        kids.push(kid);
        return parseJwksOrThrow(key.jwks);
      },
    });
    const jwt = mintServiceAccountToken(key, serviceAccountClaims({ issuer: ISSUER }));
    await join.authenticate(jwt, ctx, trace());
    await join.authenticate(jwt, ctx, trace());
    assert.equal(seen.length, 2);
    assert.equal(seen[0], seen[1], "one prepared issuer, not one per join");
    assert.ok(seen[0]?.url instanceof URL);
    assert.equal(seen[0]?.url.href, `${ISSUER}`);
    assert.deepEqual(kids, [key.kid, key.kid]);
  });

  test("a value another method left under the same cache key is a miss, never trusted", async () => {
    const join = staticJoin();
    const cache = new VerifiedTokenCache<VerifiedProof>({ maxEntries: 10, now: () => TEST_NOW_MS });
    const jwt = mintServiceAccountToken(key);
    const keySet = kubernetesSpecOf(join);
    assert.ok(keySet?.type === "static_jwks");
    const cacheKey = VerifiedTokenCache.keyOf(
      jwt,
      keySet.keySet.revision,
      TEST_AUDIENCE,
      undefined,
    );
    const forged: VerifiedProof = {
      expiresAt: TEST_NOW_MS / 1000 + 600,
      attributes: renderKubernetesAttributes({ namespace: "x", serviceAccount: "y", pod: "z" }),
    };
    cache.set(cacheKey, forged);
    const t = trace();
    const attributes = await join.authenticate(jwt, context({ cache }), t);
    assert.equal(t.cache, "miss");
    assert.equal(attributes.audit["service_account"], "tbot");
    const again = trace();
    assert.equal(await join.authenticate(jwt, context({ cache }), again), attributes);
    assert.equal(again.cache, "hit");
  });

  test("describe() gives the lines kube-join check prints", () => {
    const lines = staticJoin().describe();
    assert.equal(lines[0], "join_method: kubernetes, type: static_jwks");
    assert.match(lines[1] ?? "", /^key: .+ \(EC, ES256\)$/);
    assert.equal(lines[2], "allow: default:tbot");
  });
});
