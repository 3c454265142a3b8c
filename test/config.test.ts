import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  CONFIG_DEFAULTS,
  isLoopbackHost,
  loadConfig,
  parseConfig,
  parseListenAddress,
} from "../src/config/config.ts";
import { ConfigError } from "../src/errors.ts";
import { parseResources } from "../src/resources/load.ts";

const BASE = "/etc/kube-join";

function problemsOf(text: string): readonly string[] {
  try {
    parseConfig("kube-join.yaml", text, BASE);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail("expected the config to be rejected");
}

test("a minimal config gets every default, with paths resolved against the config file", () => {
  const config = parseConfig(
    "/etc/kube-join/kube-join.yaml",
    "cluster_name: example.teleport.sh\nresources: [resources, /abs/bots.yaml]\n",
    BASE,
  );
  assert.equal(config.file, "/etc/kube-join/kube-join.yaml");
  assert.equal(config.clusterName, "example.teleport.sh");
  assert.deepEqual(config.listenAddr, { host: "127.0.0.1", port: 3025 });
  assert.deepEqual(config.diagAddr, { host: "127.0.0.1", port: 3000 });
  assert.equal(config.tls, undefined);
  assert.equal(config.trustProxy, false);
  assert.deepEqual(config.resources, ["/etc/kube-join/resources", "/abs/bots.yaml"]);
  assert.equal(config.dataDir, "/etc/kube-join/data");
  assert.deepEqual(config.ca, {
    tlsKeyType: "ecdsa-p256",
    files: undefined,
    extraTrusted: { tlsCertFiles: [], sshPublicKeyFiles: [] },
  });
  assert.deepEqual(config.certs, { defaultTtlMs: 3_600_000, maxTtlMs: 86_400_000 });
  assert.deepEqual(config.rateLimit, { average: 120, periodMs: 60_000, burst: 480 });
  assert.deepEqual(config.cache, { maxEntries: 100_000 });
  assert.deepEqual(config.audit, { file: undefined, onFailure: "refuse" });
  assert.equal(config.logLevel, "info");
  assert.equal(config.shutdownTimeoutMs, 10_000);
  assert.equal(config.maxConnections, 512);
  assert.equal(config.headersTimeoutMs, 10_000);
  assert.equal(config.requestTimeoutMs, 30_000);
  assert.equal(config.maxKeysWithoutKid, 4);
});

test("every key is read", () => {
  const config = parseConfig(
    "kube-join.yaml",
    `cluster_name: teleport.example.com
listen_addr: "[::]:443"
diag_addr: 0.0.0.0:9090
tls: {cert_file: tls/server.crt, key_file: /secrets/server.key}
trust_proxy: true
resources: [/etc/kube-join/resources]
data_dir: /var/lib/kube-join
ca:
  tls_key_type: rsa-2048
  tls_key_file: ca/tls.key
  tls_cert_file: ca/tls.crt
  ssh_key_file: ca/ssh.key
  extra_trusted:
    tls_cert_files: [old/tls.crt]
    ssh_public_key_files: [old/ssh.pub]
certs: {default_ttl: 30m, max_ttl: 12h}
rate_limit: {average: 60, period: 30s, burst: 100}
cache: {max_entries: 5000}
audit: {file: audit.log}
log_level: debug
shutdown_timeout: 2s
`,
    BASE,
  );
  assert.deepEqual(config.listenAddr, { host: "::", port: 443 });
  assert.deepEqual(config.diagAddr, { host: "0.0.0.0", port: 9090 });
  assert.deepEqual(config.tls, {
    certFile: "/etc/kube-join/tls/server.crt",
    keyFile: "/secrets/server.key",
  });
  assert.equal(config.trustProxy, true);
  assert.equal(config.dataDir, "/var/lib/kube-join");
  assert.deepEqual(config.ca, {
    tlsKeyType: "rsa-2048",
    files: {
      tlsKeyFile: "/etc/kube-join/ca/tls.key",
      tlsCertFile: "/etc/kube-join/ca/tls.crt",
      sshKeyFile: "/etc/kube-join/ca/ssh.key",
    },
    extraTrusted: {
      tlsCertFiles: ["/etc/kube-join/old/tls.crt"],
      sshPublicKeyFiles: ["/etc/kube-join/old/ssh.pub"],
    },
  });
  assert.deepEqual(config.certs, { defaultTtlMs: 1_800_000, maxTtlMs: 43_200_000 });
  assert.deepEqual(config.rateLimit, { average: 60, periodMs: 30_000, burst: 100 });
  assert.deepEqual(config.cache, { maxEntries: 5000 });
  assert.deepEqual(config.audit, { file: "/etc/kube-join/audit.log", onFailure: "refuse" });
  assert.equal(config.logLevel, "debug");
  assert.equal(config.shutdownTimeoutMs, 2000);
});

const OK = "cluster_name: c.example.com\nresources: [r]\n";

test("bad configs stop start-up with file:line:col and the key path", async (t) => {
  const cases: ReadonlyArray<{ name: string; text: string; expected: readonly string[] }> = [
    {
      name: "unknown top-level key (a typo must not fall back to a default)",
      text: `${OK}lisen_addr: 0.0.0.0:3025\n`,
      expected: [
        'kube-join.yaml:3:1: lisen_addr: unknown field (did you mean "listen_addr"?); known fields here: cluster_name, listen_addr,',
      ],
    },
    {
      name: "unknown nested key",
      text: `${OK}tls:\n  cert_file: a.crt\n  key_fil: a.key\n`,
      expected: [
        "kube-join.yaml:3:1: tls.key_file: must be set",
        'kube-join.yaml:5:3: tls.key_fil: unknown field (did you mean "key_file"?); known fields here: cert_file, key_file',
      ],
    },
    {
      name: "unknown key in a block, close to a known one",
      text: `${OK}rate_limit: {avrage: 5}\n`,
      expected: [
        'kube-join.yaml:3:14: rate_limit.avrage: unknown field (did you mean "average"?); known fields here: average, period, burst',
      ],
    },
    {
      name: "unknown key far from every known one: the known keys, no hint",
      text: `${OK}cache: {size: 5}\n`,
      expected: ["kube-join.yaml:3:9: cache.size: unknown field; known fields here: max_entries"],
    },
    {
      name: "a value close to a known one",
      text: `${OK}log_level: inof\nca: {tls_key_type: ecdsa-p265}\n`,
      expected: [
        'kube-join.yaml:3:1: log_level: must be one of: trace, debug, info, warn, error, fatal, silent, got "inof" (did you mean "info"?)',
        'kube-join.yaml:4:6: ca.tls_key_type: must be one of: ecdsa-p256, rsa-2048, got "ecdsa-p265" (did you mean "ecdsa-p256"?)',
      ],
    },
    {
      name: "listen address not a string",
      text: `${OK}listen_addr: 3025\n`,
      expected: ['kube-join.yaml:3:1: listen_addr: must be "host:port", got a number'],
    },
    {
      name: "a required path left empty",
      text: `${OK}tls: {cert_file: "", key_file: k.pem}\n`,
      expected: ["kube-join.yaml:3:7: tls.cert_file: must be set"],
    },
    {
      name: "a resource path that is not a string",
      text: "cluster_name: c\nresources: [r, 5]\n",
      expected: ["kube-join.yaml:2:16: resources[1]: must be a string, got a number"],
    },
    {
      name: "problems of several blocks, all at once, top to bottom",
      text: "shutdown_timeout: 1000h\ncerts: {max_ttl: 1m}\ncluster_name: 'a b'\nresources: []\n",
      expected: [
        "kube-join.yaml:1:1: shutdown_timeout: must be at most 10m",
        "kube-join.yaml:2:9: certs.max_ttl: must not be shorter than certs.default_ttl",
        "kube-join.yaml:3:1: cluster_name: must be letters, digits",
        "kube-join.yaml:4:1: resources: must list at least one resource file or directory",
      ],
    },
    {
      name: "missing cluster_name and resources",
      text: "log_level: info\n",
      expected: [
        "kube-join.yaml:1:1: cluster_name: must be set (the JWT audience and the CA's name)",
        "kube-join.yaml:1:1: resources: must list at least one resource file or directory",
      ],
    },
    {
      name: "cluster name that cannot name a CA or a SPIFFE trust domain",
      text: "cluster_name: my cluster/x\nresources: [r]\n",
      expected: ["kube-join.yaml:1:1: cluster_name: must be letters, digits, '.', '-' or '_'"],
    },
    {
      name: "shutdown timeout beyond what a timer can wait",
      text: `${OK}shutdown_timeout: 1000h\n`,
      expected: ["kube-join.yaml:3:1: shutdown_timeout: must be at most 10m"],
    },
    {
      name: "bad duration",
      text: `${OK}certs: {default_ttl: 1d}\n`,
      expected: ['kube-join.yaml:3:9: certs.default_ttl: invalid duration "1d"'],
    },
    {
      name: "duration as a number",
      text: `${OK}shutdown_timeout: 10\n`,
      expected: [
        'kube-join.yaml:3:1: shutdown_timeout: must be a duration such as "1h" or "90s", got a number',
      ],
    },
    {
      name: "default_ttl under a minute and max_ttl under default_ttl",
      text: `${OK}certs:\n  default_ttl: 30s\n  max_ttl: 10s\n`,
      expected: [
        "kube-join.yaml:4:3: certs.default_ttl: must be at least 1m",
        "kube-join.yaml:5:3: certs.max_ttl: must not be shorter than certs.default_ttl",
      ],
    },
    {
      name: "listen address without a port",
      text: `${OK}listen_addr: 0.0.0.0\n`,
      expected: ['kube-join.yaml:3:1: listen_addr: must be "host:port"'],
    },
    {
      name: "port out of range",
      text: `${OK}diag_addr: 127.0.0.1:70000\n`,
      expected: ["kube-join.yaml:3:1: diag_addr: port 70000 is out of range (0-65535)"],
    },
    {
      name: "log level",
      text: `${OK}log_level: verbose\n`,
      expected: [
        'kube-join.yaml:3:1: log_level: must be one of: trace, debug, info, warn, error, fatal, silent, got "verbose"',
      ],
    },
    {
      name: "trust_proxy as a string",
      text: `${OK}trust_proxy: "yes"\n`,
      expected: ["kube-join.yaml:3:1: trust_proxy: must be true or false, got a string"],
    },
    {
      name: "rate limit numbers",
      text: `${OK}rate_limit: {average: 0, burst: 1.5, period: 0s}\n`,
      expected: [
        "kube-join.yaml:3:14: rate_limit.average: must be a whole number of at least 1, got 0",
        "kube-join.yaml:3:26: rate_limit.burst: must be a whole number of at least 1, got 1.5",
        "kube-join.yaml:3:38: rate_limit.period: must be longer than 0",
      ],
    },
    {
      name: "burst below average",
      text: `${OK}rate_limit: {average: 100, burst: 10}\n`,
      expected: ["kube-join.yaml:3:28: rate_limit.burst: must be at least rate_limit.average"],
    },
    {
      name: "cache size",
      text: `${OK}cache: {max_entries: many}\n`,
      expected: [
        "kube-join.yaml:3:9: cache.max_entries: must be a whole number of at least 1, got a string",
      ],
    },
    {
      name: "CA files given only in part",
      text: `${OK}ca: {tls_key_file: k.pem}\n`,
      expected: [
        "kube-join.yaml:3:1: ca: tls_key_file, tls_cert_file and ssh_key_file go together: give all three or none",
      ],
    },
    {
      name: "connection limits",
      text: `${OK}headers_timeout: 500ms\nmax_connections: 0\n`,
      expected: [
        "kube-join.yaml:3:1: headers_timeout: must be at least 1s",
        "kube-join.yaml:4:1: max_connections: must be a whole number of at least 1",
      ],
    },
    {
      name: "too many keys tried without a kid",
      text: `${OK}max_keys_without_kid: 51\n`,
      expected: ["kube-join.yaml:3:1: max_keys_without_kid: must be at most 50"],
    },
    {
      name: "request timeout shorter than the headers timeout",
      text: `${OK}headers_timeout: 20s\nrequest_timeout: 10s\n`,
      expected: ["kube-join.yaml:4:1: request_timeout: must not be shorter than headers_timeout"],
    },
    {
      name: "audit failure policy",
      text: `${OK}audit: {on_failure: ignore}\n`,
      expected: ["kube-join.yaml:3:9: audit.on_failure: must be one of: refuse, continue"],
    },
    {
      name: "CA key type",
      text: `${OK}ca: {tls_key_type: dsa}\n`,
      expected: [
        'kube-join.yaml:3:6: ca.tls_key_type: must be one of: ecdsa-p256, rsa-2048, got "dsa"',
      ],
    },
    {
      name: "resources not a list, path not a string",
      text: "cluster_name: c\nresources: r\naudit: {file: 5}\n",
      expected: [
        "kube-join.yaml:2:1: resources: must be a list, got a string",
        "kube-join.yaml:3:9: audit.file: must be a string, got a number",
      ],
    },
    {
      name: "a block that is not a mapping",
      text: `${OK}certs: [1h]\n`,
      expected: ["kube-join.yaml:3:1: certs: must be a mapping, got a list"],
    },
    {
      name: "the whole file not a mapping",
      text: "- cluster_name\n",
      expected: ["kube-join.yaml:1:1: the config file must be a mapping, got a list"],
    },
    {
      name: "empty file",
      text: "",
      expected: [
        "kube-join.yaml:1:1: the config file is empty: it must be a mapping with at least cluster_name and resources",
      ],
    },
    {
      name: "YAML syntax error",
      text: "cluster_name: [unclosed\n",
      expected: ["kube-join.yaml:"],
    },
    {
      name: "duplicate key",
      text: `${OK}cluster_name: again\n`,
      expected: ["kube-join.yaml:3:1: YAML syntax:"],
    },
  ];
  for (const c of cases) {
    await t.test(c.name, () => {
      const problems = problemsOf(c.text);
      assert.equal(
        problems.length,
        c.expected.length,
        `problems: ${JSON.stringify(problems, null, 1)}`,
      );
      c.expected.forEach((prefix, i) => {
        assert.ok(
          problems[i]?.startsWith(prefix),
          `problem ${i}: ${JSON.stringify(problems[i])} should start with ${JSON.stringify(prefix)}`,
        );
      });
    });
  }
});

test('an empty value (null or "") means the default, as in resources', () => {
  const config = parseConfig(
    "kube-join.yaml",
    `${OK}listen_addr:\nlog_level: ""\ncerts: {default_ttl: null}\naudit: {file: ""}\nrate_limit:\n`,
    BASE,
  );
  assert.deepEqual(config.listenAddr, { host: "127.0.0.1", port: 3025 });
  assert.equal(config.logLevel, "info");
  assert.equal(config.certs.defaultTtlMs, 3_600_000);
  assert.deepEqual(config.audit, { file: undefined, onFailure: "refuse" });
  assert.deepEqual(config.rateLimit, { average: 120, periodMs: 60_000, burst: 480 });
});

test("each default is declared once, checked like a given value, and docs/service.md quotes it", () => {
  // A config that writes every default out reads the same as one that leaves them all unset.
  const byBlock = new Map<string, string[]>();
  for (const [key, value] of Object.entries(CONFIG_DEFAULTS)) {
    const [block = "", field] = key.split(".");
    const lines = byBlock.get(block) ?? [];
    lines.push(field === undefined ? `${block}: ${String(value)}` : `  ${field}: ${String(value)}`);
    byBlock.set(block, lines);
  }
  const text = [...byBlock].map(([block, lines]) =>
    lines[0]?.startsWith(" ") === true ? `${block}:\n${lines.join("\n")}` : lines.join("\n"),
  );
  assert.deepEqual(
    parseConfig("kube-join.yaml", `${OK}${text.join("\n")}\n`, BASE),
    parseConfig("kube-join.yaml", OK, BASE),
  );

  const docs = readFileSync(new URL("../docs/service.md", import.meta.url), "utf8");
  const reference = docs.split("\n## Configuration reference\n")[1]?.split("\n## ")[0] ?? "";
  const rows = new Map<string, string>();
  for (const line of reference.split("\n")) {
    const cells = /^\| (`[^|]+`)\s*\| ([^|]+?)\s*\|/.exec(line);
    if (cells === null) continue;
    for (const key of cells[1]?.match(/`[^`]+`/g) ?? []) rows.set(key.slice(1, -1), cells[2] ?? "");
  }
  for (const [key, value] of Object.entries(CONFIG_DEFAULTS)) {
    assert.equal(rows.get(key), `\`${String(value)}\``, `docs/service.md default of ${key}`);
  }
  // And the docs claim no default the code does not declare (lists default to empty).
  for (const [key, cell] of rows) {
    if (/^`[^`]*`$/.test(cell) && cell !== "`[]`") {
      assert.ok(key in CONFIG_DEFAULTS, `docs/service.md gives ${key} a default ${cell}`);
    }
  }
  assert.ok(rows.size >= Object.keys(CONFIG_DEFAULTS).length, "the reference table was found");
});

test("the config and the resources speak one dialect: the same typo, the same message", () => {
  const [configProblem] = problemsOf(`${OK}lisen_addr: 0.0.0.0:3025\n`);
  let resourceProblem: string | undefined;
  try {
    parseResources([
      { file: "bot.yaml", text: "kind: bot\nversion: v1\nmetadata: {name: b}\nspce: {}\n" },
    ]);
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    resourceProblem = err.problems[0];
  }
  const shape = /^[^:]+:\d+:\d+: \w+: unknown field \(did you mean "\w+"\?\); known fields here: /;
  assert.match(configProblem ?? "", shape);
  assert.match(resourceProblem ?? "", shape);
  assert.match(resourceProblem ?? "", /spce: unknown field \(did you mean "spec"\?\)/);
});

test("importing the config loader does not load the CA (no global Reflect.getMetadata)", () => {
  // A fresh process, since this one may have loaded the CA through another test file.
  const module = new URL("../src/config/config.ts", import.meta.url).href;
  const out = execFileSync(
    process.execPath,
    [
      "--import",
      "tsx",
      "--input-type=module",
      "-e",
      `await import(${JSON.stringify(module)}); console.log(typeof Reflect.getMetadata);`,
    ],
    { encoding: "utf8", cwd: fileURLToPath(new URL("..", import.meta.url)) },
  );
  assert.equal(out, "undefined\n");
});

test("loadConfig resolves relative paths against the config file's directory", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-config-"));
  const file = join(dir, "config.yaml");
  writeFileSync(file, "cluster_name: c.example.com\nresources: [./resources]\n");
  const config = await loadConfig(file);
  assert.equal(config.file, file);
  assert.deepEqual(config.resources, [join(dir, "resources")]);
  assert.equal(config.dataDir, join(dir, "data"));
});

test("loadConfig of a missing file names the file, not a stack", async () => {
  await assert.rejects(loadConfig("/nonexistent/kube-join.yaml"), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.deepEqual(err.problems, [
      "/nonexistent/kube-join.yaml: cannot read config file (ENOENT)",
    ]);
    return true;
  });
});

test("listen addresses", () => {
  const cases: ReadonlyArray<[string, ReturnType<typeof parseListenAddress>]> = [
    ["127.0.0.1:3025", { host: "127.0.0.1", port: 3025 }],
    ["localhost:0", { host: "localhost", port: 0 }],
    ["[::1]:3000", { host: "::1", port: 3000 }],
    ["kube-join.svc:443", { host: "kube-join.svc", port: 443 }],
  ];
  for (const [text, expected] of cases) assert.deepEqual(parseListenAddress(text), expected);
  for (const bad of [":3025", "::1:3000", "host:", "host:port", "a b:1", ""]) {
    assert.equal(typeof parseListenAddress(bad), "string", bad);
  }
  assert.equal(isLoopbackHost("127.0.0.1"), true);
  assert.equal(isLoopbackHost("127.1.2.3"), true);
  assert.equal(isLoopbackHost("::1"), true);
  assert.equal(isLoopbackHost("localhost"), true);
  assert.equal(isLoopbackHost("0.0.0.0"), false);
  assert.equal(isLoopbackHost("::"), false);
  assert.equal(isLoopbackHost("10.0.0.1"), false);
});

test("store: SQLite in data_dir by default; postgres and memory when asked", () => {
  const min = "cluster_name: example.teleport.sh\nresources: [r]\n";
  const config = parseConfig("/etc/kube-join/kube-join.yaml", min, BASE);
  assert.deepEqual(config.store, {
    backend: { engine: "sqlite", path: "/etc/kube-join/data/kube-join.db" },
    instanceRetentionMs: 24 * 3_600_000,
    lockPollIntervalMs: 2_000,
  });
  const pg = parseConfig(
    "/etc/kube-join/kube-join.yaml",
    `${min}store:\n  engine: postgres\n  postgres:\n    url_file: store/url\n    password_file: /run/pw\n  lock_poll_interval: 500ms\n`,
    BASE,
  );
  assert.deepEqual(pg.store.backend, {
    engine: "postgres",
    url: undefined,
    urlFile: "/etc/kube-join/store/url",
    passwordFile: "/run/pw",
    poolSize: 10,
  });
  assert.equal(pg.store.lockPollIntervalMs, 500);
  const memory = parseConfig("k.yaml", `${min}store: {engine: memory}\n`, BASE);
  assert.deepEqual(memory.store.backend, { engine: "memory" });
});

test("store: every mistake is named, and a password in the URL is refused without echoing it", () => {
  const min = "cluster_name: example.teleport.sh\nresources: [r]\n";
  const problems = problemsOf(
    `${min}store:\n  engine: postgres\n  sqlite: {path: x.db}\n  postgres:\n    url: postgres://kube_join:hunter2@db:5432/kj\n    pool_size: 500\n  lock_poll_interval: 10s\n`,
  );
  assert.deepEqual(problems, [
    "kube-join.yaml:5:3: store.sqlite: is set, but store.engine is postgres",
    "kube-join.yaml:7:5: store.postgres.url: must not hold a password in the config: use password_file, url_file (a Secret) or PGPASSWORD",
    "kube-join.yaml:8:5: store.postgres.pool_size: must be at most 100",
    "kube-join.yaml:9:3: store.lock_poll_interval: must be between 100ms and 5s (a new lock must be enforced within 5 s)",
  ]);
  assert.ok(!problems.join("\n").includes("hunter2"));
  assert.match(
    problemsOf(`${min}store: {engine: mysql}\n`)[0] ?? "",
    /store\.engine: must be one of: sqlite, postgres, memory/,
  );
  assert.match(
    problemsOf(
      `${min}store: {engine: postgres, postgres: {url: "postgres://db/kj", url_file: u}}\n`,
    )[0] ?? "",
    /store\.postgres\.url_file: give url or url_file, not both/,
  );
  assert.match(
    problemsOf(`${min}store: {engine: postgres, postgres: {url: "mysql://db/kj"}}\n`)[0] ?? "",
    /store\.postgres\.url: must start with postgres:\/\/ or postgresql:\/\//,
  );
});
