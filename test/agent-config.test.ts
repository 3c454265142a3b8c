/**
 * `kube-join agent -c tbot.yaml`: tbot's version v2 config, read with the project's YAML reader.
 * One test per rule, each asserting the `file:line:col: path: message` the admin sees.
 */
import { strict as assert } from "node:assert";
import { describe, test } from "node:test";
import { readAgentConfig } from "../src/agent/config-file.ts";
import type { AgentFileConfig, FlagsProvided } from "../src/agent/config-file.ts";
import {
  DEFAULT_TOKEN_PATH,
  TBOT_DEFAULT_STORAGE_DIR,
  TBOT_DEFAULT_TOKEN_PATH,
  parseAgentFlags,
  resolveAgentOptions,
} from "../src/agent/options.ts";
import type { AgentFlags } from "../src/agent/options.ts";
import { ConfigError } from "../src/errors.ts";

const NO_FLAGS: FlagsProvided = { server: false, token: false, caFile: false };
const PIN = `sha256:${"ab".repeat(32)}`;

/** The guide's step-4 tbot.yaml with step 5's output, kube-join's address and CA file. */
const GUIDE = `version: v2
onboarding:
  join_method: kubernetes
  token: example-bot
  ca_path: /etc/kube-join-server-ca/ca.crt
storage:
  type: memory
proxy_server: kube-join.kube-join.svc:3025
outputs:
  - type: identity
    destination:
      type: kubernetes_secret
      name: identity-output
`;

const tokenFiles: Record<string, string> = {
  "/run/token-name": "example-bot\n",
  "/run/empty": "  \n",
};
function readTokenFile(path: string): string {
  const text = tokenFiles[path];
  if (text === undefined) throw Object.assign(new Error("no such file"), { code: "ENOENT" });
  return text;
}

function read(text: string, provided: FlagsProvided = NO_FLAGS): AgentFileConfig {
  return readAgentConfig("tbot.yaml", text, readTokenFile, provided);
}

function problemsOf(text: string, provided: FlagsProvided = NO_FLAGS): readonly string[] {
  try {
    read(text, provided);
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail("expected a ConfigError");
}

function flags(argv: string[] = []): AgentFlags {
  const parsed = parseAgentFlags(argv);
  assert.notEqual(parsed, "help");
  return parsed as AgentFlags;
}

describe("tbot.yaml: what a valid file means", () => {
  test("the guide's file: memory storage, one identity output to a Secret", () => {
    const config = read(GUIDE);
    assert.equal(config.server?.href, "https://kube-join.kube-join.svc:3025/");
    assert.equal(config.tokenName, "example-bot");
    assert.equal(config.caPath, "/etc/kube-join-server-ca/ca.crt");
    assert.deepEqual(config.storage, { type: "memory" });
    assert.deepEqual(config.outputs, [
      {
        type: "identity",
        destination: {
          type: "kubernetes_secret",
          name: "identity-output",
          namespace: undefined,
          labels: {},
        },
      },
    ]);
    const options = resolveAgentOptions(flags(), config, {});
    assert.equal(options.ttlMs, 3_600_000, "credential_ttl default 60m");
    assert.equal(options.renewEveryMs, 20 * 60_000, "renewal_interval default 20m");
    assert.equal(options.tokenPath, TBOT_DEFAULT_TOKEN_PATH);
    assert.equal(options.oneshot, false);
  });

  test("step 4 alone: outputs: [] is valid, the identity stays in storage", () => {
    const config = read(GUIDE.replace(/outputs:[\s\S]*$/, "outputs: []\n"));
    assert.deepEqual(config.outputs, []);
  });

  test("every other key: auth_server, insecure to loopback, ttl, renewal, oneshot, diag_addr, pins", () => {
    const config = read(`version: v2
onboarding:
  join_method: kubernetes
  token: /run/token-name
  ca_pins: ["${PIN.toUpperCase().replace("SHA256", "sha256")}"]
  kubernetes:
    token_path: /var/run/secrets/tokens/join-sa-token
storage:
  type: directory
  path: /var/lib/bot
auth_server: 127.0.0.1:3025
insecure: true
certificate_ttl: 30m
renewal_interval: 10m
oneshot: true
diag_addr: 127.0.0.1:3001
services:
  - type: identity
    destination:
      type: memory
`);
    assert.equal(config.server?.href, "http://127.0.0.1:3025/");
    assert.equal(config.tokenName, "example-bot", "read from the absolute path, trimmed");
    assert.deepEqual(config.caPins, [PIN]);
    assert.equal(config.tokenPath, "/var/run/secrets/tokens/join-sa-token");
    assert.deepEqual(config.storage, { type: "directory", path: "/var/lib/bot" });
    assert.deepEqual(
      [config.ttlMs, config.renewEveryMs, config.oneshot],
      [30 * 60_000, 10 * 60_000, true],
    );
    assert.deepEqual(config.diagAddr, { host: "127.0.0.1", port: 3001 });
    assert.deepEqual(config.outputs, [{ type: "identity", destination: { type: "memory" } }]);
  });

  test("credential_ttl (tbot 17+) and certificate_ttl (tbot 16) mean the same", () => {
    const a = read(`${GUIDE}credential_ttl: 45m\n`);
    const b = read(`${GUIDE}certificate_ttl: 45m\n`);
    assert.equal(a.ttlMs, 45 * 60_000);
    assert.equal(b.ttlMs, 45 * 60_000);
  });

  test("outputs and services are one list, outputs first", () => {
    const config = read(`${GUIDE}services:
  - type: identity
    destination: { type: directory, path: /out }
`);
    assert.deepEqual(
      config.outputs.map((o) => o.destination.type),
      ["kubernetes_secret", "directory"],
    );
  });

  test("the service-account token: token_path, else KUBERNETES_TOKEN_PATH, else tbot's default", () => {
    const withPath = read(
      GUIDE.replace("  ca_path:", "  kubernetes: { token_path: /a }\n  ca_path:"),
    );
    const env = { KUBERNETES_TOKEN_PATH: "/b" };
    assert.equal(resolveAgentOptions(flags(), withPath, env).tokenPath, "/a");
    assert.equal(resolveAgentOptions(flags(), read(GUIDE), env).tokenPath, "/b");
    assert.equal(resolveAgentOptions(flags(), read(GUIDE), {}).tokenPath, TBOT_DEFAULT_TOKEN_PATH);
    // Without a config file the flags' default stays the guide's projected path, as before.
    assert.equal(
      resolveAgentOptions(
        flags(["--server", "https://k:1", "--token", "t", "--ca-file", "/c", "--output", "/o"]),
        undefined,
        {},
      ).tokenPath,
      DEFAULT_TOKEN_PATH,
    );
  });

  test("a flag overrides the file; the file fills in the rest", () => {
    const config = read(GUIDE);
    const options = resolveAgentOptions(
      flags([
        "--server",
        "https://other.example:443",
        "--token",
        "other-bot",
        "--ca-file",
        "/other-ca.pem",
        "--output",
        "/out",
        "--ttl",
        "2h",
        "--oneshot",
      ]),
      config,
      {},
    );
    assert.equal(options.server.href, "https://other.example/");
    assert.equal(options.tokenName, "other-bot");
    assert.equal(options.caFile, "/other-ca.pem");
    assert.deepEqual(options.storage, { type: "directory", path: "/out" });
    assert.equal(options.ttlMs, 2 * 3_600_000);
    assert.equal(options.oneshot, true);
    assert.equal(options.outputs.length, 1, "the file's outputs stay");
  });

  test("the flags supply what the file leaves out: no proxy_server or token needed then", () => {
    const text = "version: v2\nonboarding:\n  join_method: kubernetes\n";
    const provided = { server: true, token: true, caFile: true };
    const options = resolveAgentOptions(
      flags(["--server", "https://k:3025", "--token", "t", "--ca-file", "/c"]),
      read(text, provided),
      {},
    );
    assert.equal(options.tokenName, "t");
    assert.deepEqual(options.storage, { type: "directory", path: TBOT_DEFAULT_STORAGE_DIR });
  });
});

describe("tbot.yaml: every mistake, with its position", () => {
  const cases: Array<[string, string, RegExp[]]> = [
    ["unparsable YAML", "version: v2\nonboarding: [\n", [/^tbot\.yaml:\d+:\d+: YAML syntax: /]],
    ["not a mapping", "- version: v2\n", [/^tbot\.yaml:1:1: must be a mapping, got a list$/]],
    ["no version", GUIDE.replace("version: v2\n", ""), [/^tbot\.yaml:1:1: version: must be "v2"$/]],
    [
      "another version",
      GUIDE.replace("version: v2", "version: v1"),
      [/^tbot\.yaml:1:1: version: "v1" is not supported: kube-join reads tbot's version "v2"/],
    ],
    [
      "a misspelt key",
      GUIDE.replace("proxy_server", "proxy_sever"),
      [
        /^tbot\.yaml:1:1: proxy_server \(or auth_server\) must be set/,
        /^tbot\.yaml:8:1: proxy_sever: unknown field \(did you mean "proxy_server"\?\); known fields here: version, /,
      ],
    ],
    [
      "a misspelt onboarding key",
      GUIDE.replace("  token:", "  tokn:"),
      [
        /^tbot\.yaml:2:1: onboarding\.token: must be set: the join token's name$/,
        /^tbot\.yaml:4:3: onboarding\.tokn: unknown field \(did you mean "token"\?\)/,
      ],
    ],
    [
      "no onboarding",
      "version: v2\nproxy_server: k:1\nstorage: { type: memory }\n",
      [
        /^tbot\.yaml:1:1: onboarding must be set: join_method: kubernetes and the join token's/,
        /^tbot\.yaml:1:1: onboarding: ca_path or ca_pins is required to trust k:1 over HTTPS/,
      ],
    ],
    [
      "another join method",
      GUIDE.replace("join_method: kubernetes", "join_method: token"),
      [
        /^tbot\.yaml:3:3: onboarding\.join_method: "token" is not supported: kube-join agents join with "kubernetes" only$/,
      ],
    ],
    [
      "no join method",
      GUIDE.replace("  join_method: kubernetes\n", ""),
      [
        /^tbot\.yaml:2:1: onboarding\.join_method: must be set: kube-join agents join with "kubernetes"$/,
      ],
    ],
    [
      "a token file that does not exist",
      GUIDE.replace("token: example-bot", "token: /run/missing"),
      [/^tbot\.yaml:4:3: onboarding\.token: cannot read the token file \/run\/missing: ENOENT$/],
    ],
    [
      "an empty token file",
      GUIDE.replace("token: example-bot", "token: /run/empty"),
      [/^tbot\.yaml:4:3: onboarding\.token: the token file \/run\/empty is empty$/],
    ],
    [
      "a CA pin that is not sha256:<hex>",
      GUIDE.replace("  ca_path: /etc/kube-join-server-ca/ca.crt", "  ca_pins: [md5:1234]"),
      [
        /^tbot\.yaml:2:1: onboarding: ca_path or ca_pins is required/,
        /^tbot\.yaml:5:13: onboarding\.ca_pins\[0\]: must be sha256:<64 hex digits>, the SHA-256 of a CA certificate's SubjectPublicKeyInfo$/,
      ],
    ],
    [
      "HTTPS with neither ca_path nor ca_pins",
      GUIDE.replace("  ca_path: /etc/kube-join-server-ca/ca.crt\n", ""),
      [
        /^tbot\.yaml:2:1: onboarding: ca_path or ca_pins is required to trust kube-join\.kube-join\.svc:3025 over HTTPS \(the system's CAs are never used\)$/,
      ],
    ],
    [
      "both proxy_server and auth_server",
      `${GUIDE}auth_server: kube-join:3025\n`,
      [/^tbot\.yaml:\d+:1: auth_server: set proxy_server or auth_server, not both$/],
    ],
    [
      "no server address",
      GUIDE.replace("proxy_server: kube-join.kube-join.svc:3025\n", ""),
      [
        /^tbot\.yaml:1:1: proxy_server \(or auth_server\) must be set: kube-join's join listener, host:port$/,
      ],
    ],
    [
      "an address that is not host:port",
      GUIDE.replace("kube-join.kube-join.svc:3025", "https://kube-join:3025"),
      [
        /^tbot\.yaml:8:1: proxy_server: must be host:port, e\.g\. kube-join\.example:3025 \(got "https:\/\/kube-join:3025"\)$/,
      ],
    ],
    [
      "a port out of range",
      GUIDE.replace("svc:3025", "svc:70000"),
      [/^tbot\.yaml:8:1: proxy_server: must be host:port/],
    ],
    [
      "insecure to an address that is not loopback",
      `${GUIDE}insecure: true\n`,
      [
        /^tbot\.yaml:\d+:1: insecure: plain HTTP is allowed only to a loopback address \(127\.0\.0\.0\/8, ::1, localhost\), not kube-join\.kube-join\.svc: the join token would travel unencrypted$/,
      ],
    ],
    [
      "insecure that is not a boolean",
      GUIDE.replace(
        "proxy_server: kube-join.kube-join.svc:3025",
        "proxy_server: 127.0.0.1:3025\ninsecure: yes",
      ),
      [/^tbot\.yaml:9:1: insecure: must be true or false, got a string$/],
    ],
    [
      "an unknown storage type",
      GUIDE.replace("type: memory", "type: s3"),
      [
        /^tbot\.yaml:7:3: storage\.type: destination type "s3" is not supported: use directory, memory, kubernetes_secret$/,
      ],
    ],
    [
      "a near-miss type: did you mean",
      GUIDE.replace("type: memory", "type: memroy").replace(
        "join_method: kubernetes",
        "join_method: kubernets",
      ),
      [
        /^tbot\.yaml:3:3: onboarding\.join_method: "kubernets" is not supported: kube-join agents join with "kubernetes" only \(did you mean "kubernetes"\?\)$/,
        /^tbot\.yaml:7:3: storage\.type: destination type "memroy" is not supported: use directory, memory, kubernetes_secret \(did you mean "memory"\?\)$/,
      ],
    ],
    [
      "a destination written as a bare word",
      GUIDE.replace("storage:\n  # a memory", "storage: memory\n  # a memory").replace(
        "storage:\n  type: memory",
        "storage: memory",
      ),
      [/^tbot\.yaml:6:1: storage: must be a mapping such as \{ type: memory \}, got a string$/],
    ],
    [
      "a directory storage without a path",
      GUIDE.replace("type: memory", "type: directory"),
      [/^tbot\.yaml:6:1: storage\.path: must be set$/],
    ],
    [
      "a storage key the type does not have",
      GUIDE.replace("type: memory", "type: directory\n  path: /d\n  symlinks: secure"),
      [/^tbot\.yaml:9:3: storage\.symlinks: unknown field; known fields here: type, path$/],
    ],
    [
      "another output type",
      GUIDE.replace("- type: identity", "- type: application"),
      [
        /^tbot\.yaml:10:5: outputs\[0\]\.type: output type "application" is not supported: kube-join writes "identity"$/,
      ],
    ],
    [
      "an output key kube-join does not support",
      GUIDE.replace("  - type: identity\n", "  - type: identity\n    roles: [editor]\n"),
      [
        /^tbot\.yaml:11:5: outputs\[0\]\.roles: unknown field; known fields here: type, destination$/,
      ],
    ],
    [
      "an output without a destination",
      GUIDE.replace(/ {4}destination:[\s\S]*$/, ""),
      [
        /^tbot\.yaml:10:5: outputs\[0\]: destination must be set \(type: directory, memory or kubernetes_secret\)$/,
      ],
    ],
    [
      "an unknown destination type",
      GUIDE.replace("type: kubernetes_secret", "type: vault"),
      [
        /^tbot\.yaml:12:7: outputs\[0\]\.destination\.type: destination type "vault" is not supported/,
      ],
    ],
    [
      "a kubernetes_secret without a name",
      GUIDE.replace("      name: identity-output\n", ""),
      [/^tbot\.yaml:11:5: outputs\[0\]\.destination\.name: must be set: the Secret's name$/],
    ],
    [
      "labels that are not a mapping",
      `${GUIDE}      labels: [a]\n`,
      [
        /^tbot\.yaml:14:7: outputs\[0\]\.destination\.labels: must be a mapping of label names to values$/,
      ],
    ],
    [
      "outputs that are not a list",
      GUIDE.replace(/outputs:[\s\S]*$/, "outputs: identity\n"),
      [/^tbot\.yaml:9:1: outputs: must be a list, got a string$/],
    ],
    [
      "two destinations writing one place",
      `${GUIDE}  - type: identity
    destination: { type: kubernetes_secret, name: identity-output }
  - type: identity
    destination: { type: directory, path: /out }
services:
  - type: identity
    destination: { type: directory, path: /out/../out }
`,
      [
        /^tbot\.yaml:15:5: outputs\[1\]\.destination: writes where outputs\[0\]\.destination writes: each destination needs a place of its own$/,
        /^tbot\.yaml:20:5: services\[0\]\.destination: writes where outputs\[2\]\.destination writes/,
      ],
    ],
    [
      "both certificate_ttl and credential_ttl",
      `${GUIDE}certificate_ttl: 1h\ncredential_ttl: 1h\n`,
      [
        /^tbot\.yaml:14:1: certificate_ttl: set credential_ttl or its older name certificate_ttl, not both$/,
      ],
    ],
    [
      "a duration without a unit",
      `${GUIDE}credential_ttl: "60"\n`,
      [
        /^tbot\.yaml:14:1: credential_ttl: not a positive duration: "60" \(use e\.g\. 30s, 20m, 1h\)$/,
      ],
    ],
    [
      "a lifetime under 2m",
      `${GUIDE}credential_ttl: 1m\n`,
      [/^tbot\.yaml:14:1: credential_ttl: must be at least 2m/],
    ],
    [
      "a renewal interval not shorter than the lifetime",
      `${GUIDE}credential_ttl: 20m\nrenewal_interval: 20m\n`,
      [/^tbot\.yaml:15:1: renewal_interval: must be shorter than the credential_ttl$/],
    ],
    [
      "oneshot that is not a boolean",
      `${GUIDE}oneshot: 1\n`,
      [/^tbot\.yaml:14:1: oneshot: must be true or false, got a number$/],
    ],
    [
      "a diag_addr that is not host:port",
      `${GUIDE}diag_addr: 3000\n`,
      [/^tbot\.yaml:14:1: diag_addr: must be a string, got a number$/],
    ],
    [
      "a diag_addr without a port",
      `${GUIDE}diag_addr: localhost\n`,
      [
        /^tbot\.yaml:14:1: diag_addr: must be host:port, e\.g\. 127\.0\.0\.1:3000 \(got "localhost"\)$/,
      ],
    ],
  ];
  for (const [name, text, expected] of cases) {
    test(name, () => {
      const problems = problemsOf(text);
      assert.equal(problems.length, expected.length, problems.join("\n"));
      expected.forEach((pattern, i) => assert.match(problems[i]!, pattern));
    });
  }

  test("all mistakes at once, top to bottom, none hiding another", () => {
    const problems = problemsOf(`version: v3
onboarding:
  join_method: iam
  token: example-bot
  ca_pins: [nope]
proxy_server: kube-join:3025
storage: { type: memroy }
outputs:
  - type: application
    destination: { type: memory }
credential_ttl: 5
`);
    assert.deepEqual(
      problems.map((p) => p.replace(/: .*$/, "")),
      [
        "tbot.yaml:1:1", // version
        "tbot.yaml:2:1", // no trust anchor is left, once the pin is refused
        "tbot.yaml:3:3", // join_method
        "tbot.yaml:5:13", // the pin
        "tbot.yaml:7:12", // storage type
        "tbot.yaml:9:5", // output type
        "tbot.yaml:11:1", // credential_ttl
      ],
      problems.join("\n"),
    );
  });
});

describe("flags and file together: what neither supplies", () => {
  test("an https server from --server needs --ca-file, or the file's ca_path or ca_pins", () => {
    const text = "version: v2\nonboarding:\n  join_method: kubernetes\n  token: t\n";
    const provided = { server: true, token: false, caFile: false };
    assert.throws(
      () => resolveAgentOptions(flags(["--server", "https://k:1"]), read(text, provided), {}),
      /--ca-file \(or onboarding\.ca_path or ca_pins\) is required for an https:\/\/ server/,
    );
    const pinned = read(`${text}  ca_pins: ["${PIN}"]\n`, provided);
    const options = resolveAgentOptions(flags(["--server", "https://k:1"]), pinned, {});
    assert.deepEqual(options.caPins, [PIN]);
    assert.equal(options.caFile, undefined);
  });

  test("--renew-every against the file's credential_ttl", () => {
    assert.throws(
      () =>
        resolveAgentOptions(
          flags(["--renew-every", "1h"]),
          read(`${GUIDE}credential_ttl: 30m\n`),
          {},
        ),
      /--renew-every \(renewal_interval\): must be shorter than --ttl \(credential_ttl\)/,
    );
  });

  test("--output where an output of the file writes is a usage error", () => {
    const text = GUIDE.replace(
      "type: kubernetes_secret\n      name: identity-output",
      "type: directory\n      path: /out",
    );
    assert.throws(
      () => resolveAgentOptions(flags(["--output", "/out/"]), read(text), {}),
      /--output: an output of the config file writes there too/,
    );
  });

  test("-c with an empty file name is a usage error", () => {
    assert.throws(() => parseAgentFlags(["-c", ""]), /--config: a file name is required/);
  });
});
