import { generateKeyPairSync } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { strict as assert } from "node:assert";
import { ConfigError } from "../src/errors.ts";
import { loadResources, parseResources, type ResourceText } from "../src/resources/load.ts";
import type { ResourceSet } from "../src/resources/types.ts";
import { kubernetesSpecOf } from "../src/methods/kubernetes/method.ts";
import { formatFieldPath, parseYamlDocument, parseYamlDocuments } from "../src/yaml/yaml-source.ts";

// Keys generated here; EC keys because they are fast to make.
function publicJwk(kid: string): Record<string, unknown> {
  const { publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { ...publicKey.export({ format: "jwk" }), kid, use: "sig", alg: "ES256" };
}
function privateJwk(kid: string): Record<string, unknown> {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { ...privateKey.export({ format: "jwk" }), kid };
}
const KEY_A = publicJwk("key-a");
const KEY_B = publicJwk("key-b");
const JWKS = JSON.stringify({ keys: [KEY_A] });

// Line numbers matter: every expected problem below names its file:line:col in these texts.
const BOTS = `kind: bot
version: v1
metadata:
  name: robot
spec:
  roles: [access]
  traits:
    - name: logins
      values: [root, ubuntu]
  max_session_ttl: 1h
`;

const TOKEN = `kind: token
version: v2
metadata:
  name: kube-bot
  expires: "2030-01-31T15:04:05Z"
spec:
  roles: [Bot]
  bot_name: robot
  join_method: kubernetes
  kubernetes:
    type: static_jwks
    static_jwks:
      jwks: '${JWKS}'
    allow:
      - service_account: default:tbot
      - service_account_namespace: ci-*
        service_account_name: runner-?
`;

const STATIC_JWKS_LINES = `    type: static_jwks
    static_jwks:
      jwks: '${JWKS}'
`;
const OIDC_LINES = `    type: oidc
    oidc:
      issuer: https://issuer.example.com/id/1
`;
const OIDC_TOKEN = edit(TOKEN, [STATIC_JWKS_LINES, OIDC_LINES]);
const ALL_RULES = `    allow:
      - service_account: default:tbot
      - service_account_namespace: ci-*
        service_account_name: runner-?
`;

/** Applies exact text replacements, failing loudly when a `from` is not in the text. */
function edit(text: string, ...edits: [string, string][]): string {
  let out = text;
  for (const [from, to] of edits) {
    assert.ok(out.includes(from), `test setup: ${JSON.stringify(from)} not in text`);
    out = out.replace(from, to);
  }
  return out;
}

function problemsOf(sources: ResourceText[]): readonly string[] {
  try {
    parseResources(sources);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail("expected a ConfigError, but the resources loaded");
}

function load(tokens: string, bots = BOTS): ResourceSet {
  return parseResources([
    { file: "bots.yaml", text: bots },
    { file: "tokens.yaml", text: tokens },
  ]);
}

const JOIN_METHODS =
  "token, ec2, iam, github, circleci, kubernetes, gitlab, gcp, azure, spacelift, tpm, terraform_cloud, bitbucket, oracle, azure_devops, bound_keypair";
const NO_API_SERVER =
  'verifies tokens through the Kubernetes API server\'s TokenReview API, and kube-join does not talk to a Kubernetes API server; use one of the supported types "static_jwks" or "oidc"';
const BAD_SA =
  'must be "namespace:name" (exactly one ":" with a namespace and a service account name), got';

test("the happy token and bot load with every field", () => {
  const set = load(TOKEN);
  assert.deepEqual(set.warnings, []);
  assert.deepEqual(set.files, ["bots.yaml", "tokens.yaml"]);
  const bot = set.bots.get("robot");
  assert.ok(bot);
  assert.deepEqual(bot.roles, ["access"]);
  assert.deepEqual([...bot.traits], [["logins", ["root", "ubuntu"]]]);
  assert.equal(bot.maxSessionTtlMs, 3_600_000);
  assert.deepEqual(bot.source, { file: "bots.yaml", line: 4, col: 3 });
  const token = set.tokens.get("kube-bot");
  assert.ok(token);
  assert.equal(token.expiresAt, Date.UTC(2030, 0, 31, 15, 4, 5));
  assert.deepEqual(token.roles, ["Bot"]);
  assert.equal(token.botName, "robot");
  assert.equal(token.joinMethod, "kubernetes");
  assert.deepEqual(token.source, { file: "tokens.yaml", line: 4, col: 3 });
  const k = kubernetesSpecOf(token.join);
  assert.ok(k?.type === "static_jwks");
  assert.deepEqual(
    k.keySet.keys.map((key) => key.kid),
    ["key-a"],
  );
  assert.deepEqual(k.allow, [
    { kind: "exact", namespace: "default", name: "tbot" },
    { kind: "glob", namespaceGlob: "ci-*", nameGlob: "runner-?" },
  ]);
});

test("accepted variations", async (t) => {
  const cases: { name: string; text: string; check: (set: ResourceSet) => void }[] = [
    {
      name: "Bot role in any case, stored as Bot",
      text: edit(TOKEN, ["roles: [Bot]", "roles: [bOT, bot]"]),
      check: (set) => assert.deepEqual(set.tokens.get("kube-bot")?.roles, ["Bot"]),
    },
    {
      name: "expires with offset and fraction",
      text: edit(TOKEN, ["2030-01-31T15:04:05Z", "2030-01-31T16:04:05.5+01:00"]),
      check: (set) =>
        assert.equal(set.tokens.get("kube-bot")?.expiresAt, Date.UTC(2030, 0, 31, 15, 4, 5, 500)),
    },
    {
      name: "no expires",
      text: edit(TOKEN, ['  expires: "2030-01-31T15:04:05Z"\n', ""]),
      check: (set) => assert.equal(set.tokens.get("kube-bot")?.expiresAt, undefined),
    },
    {
      name: "oidc with an https issuer",
      text: OIDC_TOKEN,
      check: (set) =>
        assert.deepEqual(kubernetesSpecOf(set.tokens.get("kube-bot")?.join), {
          type: "oidc",
          issuer: "https://issuer.example.com/id/1",
          insecureAllowHttpIssuer: false,
          allow: [
            { kind: "exact", namespace: "default", name: "tbot" },
            { kind: "glob", namespaceGlob: "ci-*", nameGlob: "runner-?" },
          ],
        }),
    },
    {
      name: "oidc with http and insecure_allow_http_issuer: true",
      text: edit(OIDC_TOKEN, [
        "      issuer: https://issuer.example.com/id/1\n",
        "      issuer: http://127.0.0.1:8080\n      insecure_allow_http_issuer: true\n",
      ]),
      check: (set) => {
        const k = kubernetesSpecOf(set.tokens.get("kube-bot")?.join);
        assert.ok(k?.type === "oidc");
        assert.equal(k.issuer, "http://127.0.0.1:8080");
        assert.equal(k.insecureAllowHttpIssuer, true);
      },
    },
    {
      name: "another Teleport join method loads without a kubernetes block",
      text: edit(
        TOKEN,
        ["join_method: kubernetes", "join_method: github"],
        [
          `  kubernetes:\n${STATIC_JWKS_LINES}${ALL_RULES}`,
          "  github:\n    allow:\n      - repository: example/app\n",
        ],
      ),
      check: (set) => {
        const token = set.tokens.get("kube-bot");
        assert.equal(token?.joinMethod, "github");
        assert.equal(token?.join, undefined);
      },
    },
    {
      name: "several keys keep their kids",
      text: edit(TOKEN, [JWKS, JSON.stringify({ keys: [KEY_A, KEY_B] })]),
      check: (set) => {
        const k = kubernetesSpecOf(set.tokens.get("kube-bot")?.join);
        assert.ok(k?.type === "static_jwks");
        assert.deepEqual(
          k.keySet.keys.map((key) => key.kid),
          ["key-a", "key-b"],
        );
      },
    },
    {
      name: "empty documents are ignored",
      text: `---\n${TOKEN}---\n---\n`,
      check: (set) => assert.equal(set.tokens.size, 1),
    },
  ];
  for (const c of cases) await t.test(c.name, () => c.check(load(c.text)));
});

test("warnings: reported, and loading goes on", async (t) => {
  const cases: { name: string; text: string; warnings: string[] }[] = [
    {
      name: "other kinds are skipped",
      text: `${TOKEN}---\nkind: role\nversion: v7\nmetadata:\n  name: access\n`,
      warnings: ['tokens.yaml:19:1: kind: "role" is not a kind kube-join uses: skipped'],
    },
    {
      name: "roles besides Bot never join here",
      text: edit(TOKEN, ["roles: [Bot]", "roles: [Bot, Node]"]),
      warnings: [
        'tokens.yaml:7:16: spec.roles[1]: role "Node" never joins here: kube-join issues bot certificates only',
      ],
    },
    {
      name: "a glob rule allowing everything",
      text: edit(TOKEN, ["ci-*", "'*'"], ["runner-?", "'*'"]),
      warnings: [
        "tokens.yaml:16:9: spec.kubernetes.allow[1]: allows every service account of every namespace of the cluster",
      ],
    },
    {
      name: "a kubernetes block on another join method",
      text: edit(TOKEN, ["join_method: kubernetes", "join_method: gitlab"]),
      warnings: ['tokens.yaml:10:3: spec.kubernetes: ignored: join_method is "gitlab"'],
    },
    {
      name: "a JWK whose use is not sig",
      text: edit(TOKEN, [JWKS, JSON.stringify({ keys: [KEY_A, { ...KEY_B, use: "enc" }] })]),
      warnings: [
        'tokens.yaml:13:7: spec.kubernetes.static_jwks.jwks: keys[1]: skipped, "use" is "enc", not "sig"',
      ],
    },
  ];
  for (const c of cases) {
    await t.test(c.name, () => assert.deepEqual(load(c.text).warnings, c.warnings));
  }
});

// One case per validation rule: the exact problems, with file:line:col, and nothing else.
const TOKEN_CASES: { name: string; text: string; problems: (string | RegExp)[] }[] = [
  {
    name: "missing roles",
    text: edit(TOKEN, ["  roles: [Bot]\n", ""]),
    problems: [
      "tokens.yaml:6:1: spec.roles: provisioning token is missing roles: set roles: [Bot]",
    ],
  },
  {
    name: "empty roles",
    text: edit(TOKEN, ["roles: [Bot]", "roles: []"]),
    problems: [
      "tokens.yaml:7:3: spec.roles: provisioning token is missing roles: set roles: [Bot]",
    ],
  },
  {
    name: "Bot role without bot_name",
    text: edit(TOKEN, ["  bot_name: robot\n", ""]),
    problems: ['tokens.yaml:6:1: spec.bot_name: token with role "Bot" must set bot_name'],
  },
  {
    name: "bot_name without the Bot role",
    text: edit(TOKEN, ["roles: [Bot]", "roles: [Node]"]),
    problems: [
      'tokens.yaml:7:3: spec.roles: must include "Bot" (any case): kube-join joins bots only, e.g. roles: [Bot]',
      'tokens.yaml:8:3: spec.bot_name: can only set bot_name on token with role "Bot"',
    ],
  },
  {
    name: "bot_name naming no loaded bot",
    text: edit(TOKEN, ["bot_name: robot", "bot_name: robott"]),
    problems: [
      'tokens.yaml:8:3: spec.bot_name: names no loaded bot "robott" (bots loaded: "robot")',
    ],
  },
  {
    name: "unknown join method",
    text: edit(TOKEN, ["join_method: kubernetes", "join_method: kubernets"]),
    problems: [
      `tokens.yaml:9:3: spec.join_method: unknown join method "kubernets"; join method must be one of ${JOIN_METHODS}`,
    ],
  },
  {
    name: "missing join_method next to a kubernetes block",
    text: edit(TOKEN, ["  join_method: kubernetes\n", ""]),
    problems: [
      'tokens.yaml:6:1: spec.join_method: must be set to "kubernetes": Teleport defaults an empty join method to "token" (or "ec2"), which would ignore the kubernetes block',
    ],
  },
  {
    name: "missing kubernetes block",
    text: edit(TOKEN, [`  kubernetes:\n${STATIC_JWKS_LINES}${ALL_RULES}`, ""]),
    problems: [
      'tokens.yaml:6:1: spec.kubernetes: "kubernetes" configuration must be provided for the join method "kubernetes"',
    ],
  },
  {
    name: "spec.allow (the ec2/iam rules) on a kubernetes token",
    text: edit(TOKEN, ["  join_method:", '  allow: [{aws_account: "1"}]\n  join_method:']),
    problems: [
      "tokens.yaml:9:3: spec.allow: belongs to the ec2 and iam join methods and is ignored for kubernetes: put the rules in spec.kubernetes.allow",
    ],
  },
  {
    name: "no allow rules",
    text: edit(TOKEN, [ALL_RULES, "    allow: []\n"]),
    problems: ["tokens.yaml:14:5: spec.kubernetes.allow: at least one rule must be set"],
  },
  {
    name: "allow missing",
    text: edit(TOKEN, [ALL_RULES, ""]),
    problems: ["tokens.yaml:10:3: spec.kubernetes.allow: at least one rule must be set"],
  },
  {
    name: "a typo (alow) never silently drops the rules",
    text: edit(TOKEN, ["    allow:", "    alow:"]),
    problems: [
      "tokens.yaml:10:3: spec.kubernetes.allow: at least one rule must be set",
      'tokens.yaml:14:5: spec.kubernetes.alow: unknown field (did you mean "allow"?); known fields here: type, allow, static_jwks, oidc',
    ],
  },
  {
    name: 'service_account "ns:" (no name)',
    text: edit(TOKEN, ["default:tbot", '"default:"']),
    problems: [`tokens.yaml:15:9: spec.kubernetes.allow[0].service_account: ${BAD_SA} "default:"`],
  },
  {
    name: 'service_account ":sa" (no namespace)',
    text: edit(TOKEN, ["default:tbot", '":tbot"']),
    problems: [`tokens.yaml:15:9: spec.kubernetes.allow[0].service_account: ${BAD_SA} ":tbot"`],
  },
  {
    name: 'service_account "a:b:c" (two colons)',
    text: edit(TOKEN, ["default:tbot", "a:b:c"]),
    problems: [`tokens.yaml:15:9: spec.kubernetes.allow[0].service_account: ${BAD_SA} "a:b:c"`],
  },
  {
    name: "service_account without a colon",
    text: edit(TOKEN, ["default:tbot", "tbot"]),
    problems: [`tokens.yaml:15:9: spec.kubernetes.allow[0].service_account: ${BAD_SA} "tbot"`],
  },
  {
    name: "service_account empty",
    text: edit(TOKEN, ["default:tbot", '""']),
    problems: [
      'tokens.yaml:15:9: spec.kubernetes.allow[0].service_account: must be "namespace:name", got an empty value',
    ],
  },
  {
    name: "a namespace that can never match (uppercase)",
    text: edit(TOKEN, ["default:tbot", "Default:tbot"]),
    problems: [
      'tokens.yaml:15:9: spec.kubernetes.allow[0].service_account: namespace "Default" can never match: a Kubernetes namespace is a lowercase DNS label ([a-z0-9-], at most 63 characters)',
    ],
  },
  {
    name: "a glob name that can never match",
    text: edit(TOKEN, ["runner-?", "Runner_*"]),
    problems: [
      'tokens.yaml:17:9: spec.kubernetes.allow[1].service_account_name: service account name "Runner_*" can never match: a Kubernetes service account name is a lowercase DNS subdomain ([a-z0-9.-], at most 253 characters), plus the globs "*" and "?"',
    ],
  },
  {
    name: "a rule with both forms",
    text: edit(TOKEN, [
      "      - service_account: default:tbot\n",
      "      - service_account: default:tbot\n        service_account_name: tbot\n",
    ]),
    problems: [
      "tokens.yaml:15:9: spec.kubernetes.allow[0]: set either service_account or service_account_namespace with service_account_name, not both",
    ],
  },
  {
    name: "a rule with neither form",
    text: edit(TOKEN, ["      - service_account: default:tbot\n", "      - {}\n"]),
    problems: [
      'tokens.yaml:15:9: spec.kubernetes.allow[0]: must set service_account ("namespace:name") or both service_account_namespace and service_account_name',
    ],
  },
  {
    name: "a glob rule without its name",
    text: edit(TOKEN, ["        service_account_name: runner-?\n", ""]),
    problems: [
      'tokens.yaml:16:9: spec.kubernetes.allow[1].service_account_name: must be set together with service_account_namespace (use "*" to allow any)',
    ],
  },
  {
    name: "an unknown field in a rule",
    text: edit(TOKEN, ["service_account: default:tbot", "serviceaccount: default:tbot"]),
    problems: [
      'tokens.yaml:15:9: spec.kubernetes.allow[0].serviceaccount: unknown field (did you mean "service_account"?); known fields here: service_account, service_account_namespace, service_account_name',
      'tokens.yaml:15:9: spec.kubernetes.allow[0]: must set service_account ("namespace:name") or both service_account_namespace and service_account_name',
    ],
  },
  {
    name: "type missing (Teleport's in_cluster default)",
    text: edit(TOKEN, ["    type: static_jwks\n", ""]),
    problems: [
      `tokens.yaml:10:3: spec.kubernetes.type: must be set: Teleport treats an empty type as "in_cluster", which ${NO_API_SERVER}`,
    ],
  },
  {
    name: "type empty",
    text: edit(TOKEN, ["type: static_jwks", 'type: ""']),
    problems: [
      `tokens.yaml:11:5: spec.kubernetes.type: must be set: Teleport treats an empty type as "in_cluster", which ${NO_API_SERVER}`,
    ],
  },
  {
    name: "type in_cluster",
    text: edit(TOKEN, ["type: static_jwks", "type: in_cluster"]),
    problems: [
      `tokens.yaml:11:5: spec.kubernetes.type: "in_cluster" is not supported: it ${NO_API_SERVER}`,
    ],
  },
  {
    name: "unknown type",
    text: edit(TOKEN, ["type: static_jwks", "type: jwks"]),
    problems: [
      'tokens.yaml:11:5: spec.kubernetes.type: must be one of "static_jwks", "oidc", got "jwks"',
    ],
  },
  {
    name: "static_jwks missing",
    text: edit(TOKEN, [`    static_jwks:\n      jwks: '${JWKS}'\n`, ""]),
    problems: [
      'tokens.yaml:10:3: spec.kubernetes.static_jwks: must be set when type is "static_jwks"',
    ],
  },
  {
    name: "static_jwks.jwks empty",
    text: edit(TOKEN, [`'${JWKS}'`, "''"]),
    problems: [
      'tokens.yaml:13:7: spec.kubernetes.static_jwks.jwks: must be set when type is "static_jwks"',
    ],
  },
  {
    name: "JWKS that is not JSON",
    text: edit(TOKEN, [`'${JWKS}'`, `'{"keys": ['`]),
    problems: [/^tokens\.yaml:13:7: spec\.kubernetes\.static_jwks\.jwks: not valid JSON \(.+\)\.$/],
  },
  {
    name: "JWKS holding a private key",
    text: edit(TOKEN, [JWKS, JSON.stringify({ keys: [privateJwk("key-p")] })]),
    problems: [
      "tokens.yaml:13:7: spec.kubernetes.static_jwks.jwks: keys[0]: contains private key material (d): publish only public keys",
    ],
  },
  {
    name: "JWKS with a duplicate kid",
    text: edit(TOKEN, [JWKS, JSON.stringify({ keys: [KEY_A, { ...KEY_B, kid: "key-a" }] })]),
    problems: [
      'tokens.yaml:13:7: spec.kubernetes.static_jwks.jwks: keys[1].kid: duplicate kid "key-a" (also keys[0])',
    ],
  },
  {
    name: "JWKS with a symmetric key",
    text: edit(TOKEN, [JWKS, JSON.stringify({ keys: [{ kty: "oct", kid: "h", k: "c2VjcmV0" }] })]),
    problems: [
      "tokens.yaml:13:7: spec.kubernetes.static_jwks.jwks: keys[0]: contains private key material (k): publish only public keys",
    ],
  },
  {
    name: "JWKS without keys",
    text: edit(TOKEN, [JWKS, '{"keys": []}']),
    problems: [
      "tokens.yaml:13:7: spec.kubernetes.static_jwks.jwks: holds no usable asymmetric public signing key",
    ],
  },
  {
    name: "an oidc block on a static_jwks token",
    text: edit(TOKEN, ["    allow:", "    oidc: {issuer: https://x.example.com}\n    allow:"]),
    problems: [
      'tokens.yaml:14:5: spec.kubernetes.oidc: must not be set when type is "static_jwks"',
    ],
  },
  {
    name: "oidc block missing",
    text: edit(OIDC_TOKEN, ["    oidc:\n      issuer: https://issuer.example.com/id/1\n", ""]),
    problems: ['tokens.yaml:10:3: spec.kubernetes.oidc: must be set when type is "oidc"'],
  },
  {
    name: "oidc issuer missing",
    text: edit(OIDC_TOKEN, [
      "    oidc:\n      issuer: https://issuer.example.com/id/1\n",
      "    oidc: {}\n",
    ]),
    problems: ['tokens.yaml:12:5: spec.kubernetes.oidc.issuer: must be set when type is "oidc"'],
  },
  {
    name: "oidc issuer over http without insecure_allow_http_issuer",
    text: edit(OIDC_TOKEN, ["https://issuer", "http://issuer"]),
    problems: [
      "tokens.yaml:13:7: spec.kubernetes.oidc.issuer: oidc.issuer must be https:// unless insecure_allow_http_issuer is set (keys fetched over plain HTTP can be replaced by anyone on the path)",
    ],
  },
  {
    name: "oidc issuer over http with insecure_allow_http_issuer: false",
    text: edit(OIDC_TOKEN, [
      "      issuer: https://issuer.example.com/id/1\n",
      "      issuer: http://issuer.example.com\n      insecure_allow_http_issuer: false\n",
    ]),
    problems: [
      "tokens.yaml:13:7: spec.kubernetes.oidc.issuer: oidc.issuer must be https:// unless insecure_allow_http_issuer is set (keys fetched over plain HTTP can be replaced by anyone on the path)",
    ],
  },
  {
    name: "oidc issuer with another scheme",
    text: edit(OIDC_TOKEN, ["https://issuer", "ftp://issuer"]),
    problems: [
      'tokens.yaml:13:7: spec.kubernetes.oidc.issuer: oidc.issuer must be https:// unless insecure_allow_http_issuer is set, which allows http:// but never scheme "ftp"',
    ],
  },
  {
    name: "oidc issuer that is not a URL",
    text: edit(OIDC_TOKEN, ["https://issuer.example.com/id/1", "issuer.example.com"]),
    problems: [
      'tokens.yaml:13:7: spec.kubernetes.oidc.issuer: oidc.issuer must be a valid URL: expected an https:// URL, such as "https://oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE", got "issuer.example.com"',
    ],
  },
  {
    name: "oidc issuer with a query",
    text: edit(OIDC_TOKEN, ["/id/1", "/id/1?x=1"]),
    problems: [
      "tokens.yaml:13:7: spec.kubernetes.oidc.issuer: must not contain user info, a query or a fragment (an OIDC issuer never does)",
    ],
  },
  {
    name: "insecure_allow_http_issuer not a boolean",
    text: edit(OIDC_TOKEN, [
      "      issuer: https://issuer.example.com/id/1\n",
      "      issuer: https://issuer.example.com/id/1\n      insecure_allow_http_issuer: yes\n",
    ]),
    problems: [
      "tokens.yaml:14:7: spec.kubernetes.oidc.insecure_allow_http_issuer: must be true or false, got a string",
    ],
  },
  {
    name: "a static_jwks block on an oidc token",
    text: edit(OIDC_TOKEN, ["    allow:", "    static_jwks: {jwks: '{}'}\n    allow:"]),
    problems: [
      'tokens.yaml:14:5: spec.kubernetes.static_jwks: must not be set when type is "oidc"',
    ],
  },
  {
    name: "expires on a day that does not exist",
    text: edit(TOKEN, ["2030-01-31T15:04:05Z", "2030-02-30T00:00:00Z"]),
    problems: [
      'tokens.yaml:5:3: metadata.expires: must be an RFC 3339 timestamp such as "2030-01-31T15:04:05Z", got "2030-02-30T00:00:00Z"',
    ],
  },
  {
    name: "expires without a time",
    text: edit(TOKEN, ['"2030-01-31T15:04:05Z"', "2030-01-31"]),
    problems: [
      'tokens.yaml:5:3: metadata.expires: must be an RFC 3339 timestamp such as "2030-01-31T15:04:05Z", got "2030-01-31"',
    ],
  },
  {
    name: "expires without a zone",
    text: edit(TOKEN, ["15:04:05Z", "15:04:05"]),
    problems: [
      'tokens.yaml:5:3: metadata.expires: must be an RFC 3339 timestamp such as "2030-01-31T15:04:05Z", got "2030-01-31T15:04:05"',
    ],
  },
  {
    name: "metadata.name missing",
    text: edit(TOKEN, ["  name: kube-bot\n", ""]),
    problems: ["tokens.yaml:3:1: metadata.name: must be set"],
  },
  {
    name: "token name with a space",
    text: edit(TOKEN, ["name: kube-bot", 'name: "kube bot"']),
    problems: [
      "tokens.yaml:4:3: metadata.name: a token name must be 1 to 256 printable ASCII characters without spaces",
    ],
  },
  {
    name: "unknown metadata field",
    text: edit(TOKEN, ["  name: kube-bot\n", "  name: kube-bot\n  labelz: {}\n"]),
    problems: [
      'tokens.yaml:5:3: metadata.labelz: unknown field (did you mean "labels"?); known fields here: name, description, labels, namespace, revision, expires',
    ],
  },
  {
    name: "unknown top-level field",
    text: `${TOKEN}status: {}\n`,
    problems: [
      "tokens.yaml:18:1: status: unknown field; known fields here: kind, version, metadata, spec",
    ],
  },
  {
    name: "wrong version",
    text: edit(TOKEN, ["version: v2", "version: v1"]),
    problems: ['tokens.yaml:2:1: version: must be "v2" for kind token, got "v1"'],
  },
  {
    name: "kind missing",
    text: edit(TOKEN, ["kind: token\n", ""]),
    problems: ['tokens.yaml:1:1: kind: must be set ("bot", "token" or "lock")'],
  },
  {
    name: "kind in the wrong case",
    text: edit(TOKEN, ["kind: token", "kind: Token"]),
    problems: ['tokens.yaml:1:1: kind: must be "token" (lowercase), got "Token"'],
  },
  {
    name: "roles not a list",
    text: edit(TOKEN, ["roles: [Bot]", "roles: Bot"]),
    problems: ["tokens.yaml:7:3: spec.roles: must be a list, got a string"],
  },
  {
    name: "a document that is not a mapping",
    text: "- kind: token\n",
    problems: [
      "tokens.yaml:1:1: a resource must be a mapping with kind, version, metadata and spec, got a list",
    ],
  },
  {
    name: "duplicate token names",
    text: `${TOKEN}---\n${TOKEN}`,
    problems: [
      'tokens.yaml:22:3: metadata.name: duplicate token name "kube-bot": already defined at tokens.yaml:4:3',
    ],
  },
  {
    name: "YAML syntax error (a key given twice)",
    text: edit(TOKEN, ["  roles: [Bot]\n", "  roles: [Bot]\n  roles: [Node]\n"]),
    problems: ["tokens.yaml:8:3: YAML syntax: Map keys must be unique"],
  },
];

test("every token rule reports its problem at file:line:col", async (t) => {
  for (const c of TOKEN_CASES) {
    await t.test(c.name, () => {
      const problems = problemsOf([
        { file: "bots.yaml", text: BOTS },
        { file: "tokens.yaml", text: c.text },
      ]);
      assert.equal(problems.length, c.problems.length, problems.join("\n"));
      c.problems.forEach((want, i) => {
        if (typeof want === "string") assert.equal(problems[i], want);
        else assert.match(problems[i] ?? "", want);
      });
    });
  }
});

const BOT_CASES: { name: string; text: string; problems: string[] }[] = [
  {
    name: "bot name with unsafe characters",
    text: edit(BOTS, ["name: robot", 'name: "ro bot"']),
    problems: [
      'bots.yaml:4:3: metadata.name: bot name "ro bot" is not allowed: use 1 to 128 characters from [A-Za-z0-9._-], starting with a letter or digit (bot names go into certificates)',
    ],
  },
  {
    name: "bot name too long",
    text: edit(BOTS, ["name: robot", `name: ${"r".repeat(129)}`]),
    problems: [
      `bots.yaml:4:3: metadata.name: bot name "${"r".repeat(129)}" is not allowed: use 1 to 128 characters from [A-Za-z0-9._-], starting with a letter or digit (bot names go into certificates)`,
    ],
  },
  {
    name: "bot name missing",
    text: edit(BOTS, ["  name: robot\n", "  description: x\n"]),
    problems: ["bots.yaml:3:1: metadata.name: must be set"],
  },
  {
    name: "max_session_ttl not a duration",
    text: edit(BOTS, ["max_session_ttl: 1h", "max_session_ttl: 1 hour"]),
    problems: [
      'bots.yaml:10:3: spec.max_session_ttl: invalid duration "1 hour": use a number with a unit, e.g. "12h", "30m", "1h30m", "90s" or "500ms"',
    ],
  },
  {
    name: "max_session_ttl too short",
    text: edit(BOTS, ["max_session_ttl: 1h", "max_session_ttl: 30s"]),
    problems: ["bots.yaml:10:3: spec.max_session_ttl: must be between 1m and 168h, got 30s"],
  },
  {
    name: "max_session_ttl too long",
    text: edit(BOTS, ["max_session_ttl: 1h", "max_session_ttl: 169h"]),
    problems: ["bots.yaml:10:3: spec.max_session_ttl: must be between 1m and 168h, got 169h"],
  },
  {
    name: "max_session_ttl as a number (the config's wording for a duration)",
    text: edit(BOTS, ["max_session_ttl: 1h", "max_session_ttl: 3600"]),
    problems: [
      'bots.yaml:10:3: spec.max_session_ttl: must be a duration such as "1h" or "90s", got a number',
    ],
  },
  {
    name: "metadata.expires on a bot",
    text: edit(BOTS, ["  name: robot\n", '  name: robot\n  expires: "2030-01-01T00:00:00Z"\n']),
    problems: [
      "bots.yaml:5:3: metadata.expires: kube-join does not expire bots: remove it (expire the bot's join token instead)",
    ],
  },
  {
    name: "duplicate trait",
    text: edit(BOTS, [
      "  max_session_ttl",
      "    - name: logins\n      values: [admin]\n  max_session_ttl",
    ]),
    problems: [
      'bots.yaml:10:7: spec.traits[1].name: duplicate trait "logins": list its values once',
    ],
  },
  {
    name: "a login with a space",
    text: edit(BOTS, ["[root, ubuntu]", '[root, "bad login"]']),
    problems: [
      "bots.yaml:9:22: spec.traits[0].values[1]: a login must not contain whitespace, control characters or commas (logins become SSH principals)",
    ],
  },
  {
    name: "a trait without a name",
    text: edit(BOTS, ["    - name: logins\n", "    - nam: logins\n"]),
    problems: [
      'bots.yaml:8:7: spec.traits[0].nam: unknown field (did you mean "name"?); known fields here: name, values',
      "bots.yaml:8:7: spec.traits[0].name: must be set",
    ],
  },
  {
    name: "unknown spec field",
    text: edit(BOTS, ["  roles: [access]", "  role: [access]"]),
    problems: [
      'bots.yaml:6:3: spec.role: unknown field (did you mean "roles"?); known fields here: roles, traits, max_session_ttl',
    ],
  },
  {
    name: "wrong version",
    text: edit(BOTS, ["version: v1", "version: v2"]),
    problems: ['bots.yaml:2:1: version: must be "v1" for kind bot, got "v2"'],
  },
];

test("every bot rule reports its problem at file:line:col", async (t) => {
  for (const c of BOT_CASES) {
    await t.test(c.name, () => {
      assert.deepEqual(problemsOf([{ file: "bots.yaml", text: c.text }]), c.problems);
    });
  }
});

test("a bot without max_session_ttl gets 12h, and the guide's empty roles are fine", () => {
  const set = parseResources([
    { file: "bots.yaml", text: edit(BOTS, ["  max_session_ttl: 1h\n", ""], ["[access]", "[]"]) },
  ]);
  assert.equal(set.bots.get("robot")?.maxSessionTtlMs, 12 * 3_600_000);
  assert.deepEqual(set.bots.get("robot")?.roles, []);
});

test("duplicate bot names across files are reported at the second one", () => {
  const problems = problemsOf([
    { file: "a.yaml", text: BOTS },
    { file: "b.yaml", text: BOTS },
  ]);
  assert.deepEqual(problems, [
    'b.yaml:4:3: metadata.name: duplicate bot name "robot": already defined at a.yaml:4:3',
  ]);
});

test("every problem of every file is reported together, in file and line order", () => {
  const brokenToken = edit(
    TOKEN,
    ["roles: [Bot]", "roles: []"],
    ["type: static_jwks", "type: in_cluster"],
    ["    allow:", "    alow:"],
    ["2030-01-31T15:04:05Z", "never"],
  );
  const problems = problemsOf([
    { file: "bots.yaml", text: edit(BOTS, ["max_session_ttl: 1h", "max_session_ttl: forever"]) },
    { file: "tokens.yaml", text: brokenToken },
    { file: "syntax.yaml", text: "kind: [bot\n" },
  ]);
  assert.deepEqual(
    problems.map((p) => p.split(": ").slice(0, 2).join(": ")),
    [
      "bots.yaml:10:3: spec.max_session_ttl",
      "tokens.yaml:5:3: metadata.expires",
      "tokens.yaml:7:3: spec.roles",
      "tokens.yaml:10:3: spec.kubernetes.allow",
      "tokens.yaml:11:5: spec.kubernetes.type",
      "tokens.yaml:14:5: spec.kubernetes.alow",
      "syntax.yaml:2:1: YAML syntax",
    ],
  );
});

const GUIDE = new URL("../fixtures/guide/", import.meta.url).pathname;

test("the Teleport guide's bot.yaml and bot-token.yaml load unchanged with a real JWKS", async () => {
  const set = await loadResources([join(GUIDE, "bot.yaml"), join(GUIDE, "bot-token.yaml")]);
  assert.deepEqual(set.warnings, []);
  const bot = set.bots.get("example");
  assert.deepEqual(bot?.roles, []);
  assert.equal(bot?.maxSessionTtlMs, 12 * 3_600_000);
  const token = set.tokens.get("example-bot");
  assert.equal(token?.botName, "example");
  assert.deepEqual(token?.roles, ["Bot"]);
  const k = kubernetesSpecOf(token?.join);
  assert.ok(k?.type === "static_jwks");
  assert.deepEqual(k.allow, [{ kind: "exact", namespace: "default", name: "tbot" }]);
  // The minikube key, whose kid is the SPKI hash as kube-apiserver >= 1.16 sets it.
  const [key] = k.keySet.keys;
  assert.equal(key?.kid, "BPlcMy7AywKBfLhl67WEfBoRklvuovLWXk-y79NbOxc");
  assert.equal(key?.kid, key?.spkiSha256);
});

test("the guide's template with its # line left in the jwks block says it is not a YAML comment", async () => {
  const file = join(GUIDE, "bot-token-template.yaml");
  await assert.rejects(loadResources([join(GUIDE, "bot.yaml"), file]), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.problems.length, 1);
    const problem = err.problems[0] ?? "";
    assert.ok(
      problem.startsWith(`${file}:16:7: spec.kubernetes.static_jwks.jwks: not valid JSON (`),
    );
    assert.ok(
      problem.endsWith(
        "A line starting with '#' inside the jwks block is part of the JSON text, not a YAML comment: remove it.",
      ),
      problem,
    );
    return true;
  });
});

const REAL = new URL("../fixtures/resources/", import.meta.url).pathname;

test("a directory loads its YAML files in name order; a real 13-key EKS JWKS is kept whole", async () => {
  const set = await loadResources([join(REAL, "valid")]);
  assert.deepEqual(set.files, [
    join(REAL, "valid", "bots.yaml"),
    join(REAL, "valid", "tokens.yaml"),
  ]);
  assert.deepEqual([...set.bots.keys()], ["deployer", "ci-runner"]);
  assert.deepEqual([...set.tokens.keys()], ["eks-deployer", "ci-oidc", "github-ci"]);
  const k = kubernetesSpecOf(set.tokens.get("eks-deployer")?.join);
  assert.ok(k?.type === "static_jwks");
  assert.equal(k.keySet.keys.length, 13);
  assert.ok(k.keySet.hasKid("06d30cabe6da1effbec89224c2bdf6129357bf7c"));
});

const scratch = await mkdtemp(join(tmpdir(), "kube-join-resources-"));
after(() => rm(scratch, { recursive: true, force: true }));

test("directory rules: *.yaml and *.yml only, no dotfiles, no recursion; a path named twice is read once", async () => {
  const dir = join(scratch, "dir");
  await mkdir(join(dir, "nested"), { recursive: true });
  await writeFile(join(dir, "b-tokens.yml"), TOKEN);
  await writeFile(join(dir, "a-bots.yaml"), BOTS);
  await writeFile(join(dir, ".hidden.yaml"), "not: [valid");
  await writeFile(join(dir, "notes.txt"), "not: [valid");
  await writeFile(join(dir, "nested", "more.yaml"), "not: [valid");
  const set = await loadResources([dir, join(dir, "a-bots.yaml")]);
  assert.deepEqual(set.files, [join(dir, "a-bots.yaml"), join(dir, "b-tokens.yml")]);
  assert.equal(set.tokens.size, 1);
});

test("unreadable paths and empty directories are problems, reported with the rest", async () => {
  const empty = join(scratch, "empty");
  await mkdir(empty, { recursive: true });
  const missing = join(scratch, "missing.yaml");
  const bad = join(scratch, "bad.yaml");
  await writeFile(bad, edit(BOTS, ["version: v1", "version: v9"]));
  await assert.rejects(loadResources([missing, empty, bad]), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.problems, [
      `${missing}: cannot read: no such file or directory`,
      `${empty}: directory holds no *.yaml or *.yml file`,
      `${bad}:2:1: version: must be "v1" for kind bot, got "v9"`,
    ]);
    return true;
  });
});

test("yaml-source: positions of keys, items and missing fields; field paths", () => {
  const { documents, problems } = parseYamlDocuments(
    "c.yaml",
    "a: 1\nlist:\n  - x: 1\n    y: [10, 20]\n---\nb: 2\n",
  );
  assert.deepEqual(problems, []);
  const [first, second] = documents;
  assert.ok(first && second);
  assert.deepEqual(first.value, { a: 1, list: [{ x: 1, y: [10, 20] }] });
  assert.deepEqual(first.positionOf(["list", 0, "y", 1]), { file: "c.yaml", line: 4, col: 13 });
  assert.deepEqual(first.positionOf(["list", 0, "y"]), { file: "c.yaml", line: 4, col: 5 });
  assert.deepEqual(first.positionOf(["list", 0, "missing"]), { file: "c.yaml", line: 3, col: 5 });
  assert.deepEqual(first.positionOf([]), { file: "c.yaml", line: 1, col: 1 });
  assert.equal(second.index, 1);
  assert.equal(second.problem(["b"], "bad"), "c.yaml:6:1: b: bad");
  assert.equal(second.problem([], "bad"), "c.yaml:6:1: bad");
  assert.equal(
    formatFieldPath(["spec", "allow", 0, "service_account"]),
    "spec.allow[0].service_account",
  );
  assert.equal(
    formatFieldPath(["labels", "app.kubernetes.io/name"]),
    'labels["app.kubernetes.io/name"]',
  );
});

test("yaml-source: parseYamlDocument takes one document and throws ConfigError otherwise", () => {
  assert.deepEqual(parseYamlDocument("k.yaml", "listen: 1\n").value, { listen: 1 });
  assert.equal(parseYamlDocument("k.yaml", "").value, null);
  assert.throws(
    () => parseYamlDocument("k.yaml", "a: 1\n---\nb: 2\n"),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.problems[0] === "k.yaml:3:1: only one YAML document is allowed here",
  );
  assert.throws(
    () => parseYamlDocument("k.yaml", "a: 1\na: 2\n"),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.problems[0] === "k.yaml:2:1: YAML syntax: Map keys must be unique",
  );
});

test("yaml-source: alias bombs are refused", () => {
  const bomb = [
    "a: &a [x, x, x, x, x, x, x, x, x, x]",
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]",
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]",
    "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]",
  ].join("\n");
  const { documents, problems } = parseYamlDocuments("bomb.yaml", bomb);
  assert.equal(documents.length, 0);
  assert.match(problems[0] ?? "", /^bomb\.yaml:1:1: YAML: /);
});
