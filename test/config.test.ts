import { strict as assert } from "node:assert";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  isLoopbackHost,
  loadConfig,
  parseConfig,
  parseListenAddress,
} from "../src/config/config.ts";
import { ConfigError } from "../src/errors.ts";

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
      expected: ["kube-join.yaml:3:1: lisen_addr: unknown key (expected one of: cluster_name,"],
    },
    {
      name: "unknown nested key",
      text: `${OK}tls:\n  cert_file: a.crt\n  key_fil: a.key\n`,
      expected: [
        "kube-join.yaml:5:3: tls.key_fil: unknown key (expected one of: cert_file, key_file)",
        "kube-join.yaml:3:1: tls.key_file: is required",
      ],
    },
    {
      name: "missing cluster_name and resources",
      text: "log_level: info\n",
      expected: [
        "kube-join.yaml:1:1: cluster_name: is required",
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
      expected: ["kube-join.yaml:3:1: shutdown_timeout: must be a duration string"],
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
      expected: ["kube-join.yaml:3:1: log_level: must be one of: trace, debug, info"],
    },
    {
      name: "trust_proxy as a string",
      text: `${OK}trust_proxy: "yes"\n`,
      expected: ["kube-join.yaml:3:1: trust_proxy: must be true or false"],
    },
    {
      name: "rate limit numbers",
      text: `${OK}rate_limit: {average: 0, burst: 1.5, period: 0s}\n`,
      expected: [
        "kube-join.yaml:3:14: rate_limit.average: must be a whole number of at least 1",
        "kube-join.yaml:3:26: rate_limit.burst: must be a whole number of at least 1",
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
      expected: ["kube-join.yaml:3:9: cache.max_entries: must be a whole number of at least 1"],
    },
    {
      name: "CA files given only in part",
      text: `${OK}ca: {tls_key_file: k.pem}\n`,
      expected: [
        "kube-join.yaml:3:1: ca: tls_key_file, tls_cert_file and ssh_key_file go together",
      ],
    },
    {
      name: "connection limits",
      text: `${OK}headers_timeout: 500ms\nmax_connections: 0\n`,
      expected: [
        "kube-join.yaml:4:1: max_connections: must be a whole number of at least 1",
        "kube-join.yaml:3:1: headers_timeout: must be at least 1s",
      ],
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
      expected: ["kube-join.yaml:3:6: ca.tls_key_type: must be one of: ecdsa-p256, rsa-2048"],
    },
    {
      name: "resources not a list, path not a string",
      text: "cluster_name: c\nresources: r\naudit: {file: 5}\n",
      expected: [
        "kube-join.yaml:2:1: resources: must be a list of paths",
        "kube-join.yaml:3:9: audit.file: must be a non-empty string",
      ],
    },
    {
      name: "a block that is not a mapping",
      text: `${OK}certs: [1h]\n`,
      expected: ["kube-join.yaml:3:1: certs: must be a mapping"],
    },
    {
      name: "the whole file not a mapping",
      text: "- cluster_name\n",
      expected: ["kube-join.yaml:1:1: the config file must be a mapping"],
    },
    {
      name: "empty file",
      text: "",
      expected: ["kube-join.yaml:1:1: the config file is empty"],
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
