/**
 * The status page in-process: escaping, the sections' content, the CSP header and its style hash,
 * and the diag routes. test/status-page-browser.test.ts loads it in a real Chromium.
 */
import { strict as assert } from "node:assert";
import { createHash, generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import request from "supertest";
import { createDiagApp } from "../src/http/diag.ts";
import type { SafeHtml } from "../src/http/status-page.ts";
import {
  caSection,
  escapeHtml,
  html,
  instancesSection,
  joinCountsSection,
  locksSection,
  readinessSection,
  reloadSection,
  renderStatusPage,
  resourcesSection,
  sshKeyFingerprint,
  STATUS_PAGE_CSP,
  type StatusPage,
} from "../src/http/status-page.ts";
import { loadOrCreateAuthority } from "../src/ca/authority.ts";
import { MemoryBotInstanceStore } from "../src/join/bot-instance-store.ts";
import { join as instanceJoin } from "./support/bot-instance-store-contract.ts";
import { createMetrics } from "../src/metrics/metrics.ts";
import { parseResources } from "../src/resources/load.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateClusterKey, jwksOf } from "./support/jwt.ts";

const NOW = new Date("2026-01-02T03:04:05.000Z");
/** The markup with whitespace between tags dropped and runs of whitespace made one space. */
const flat = (text: string): string => text.replace(/\s+/g, " ").replace(/>\s+</g, "><").trim();
const HOSTILE = `<script>alert(1)</script><img src=x onerror="alert(2)">'&`;

test("html escapes every interpolated value unless it is SafeHtml", () => {
  assert.equal(
    escapeHtml(`<a href="x">'&'</a>`),
    "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;",
  );
  const cases: [SafeHtml, string][] = [
    [html`<td>${HOSTILE}</td>`, `<td>${escapeHtml(HOSTILE)}</td>`],
    [html`<p>${html`<b>${"<i>"}</b>`}</p>`, "<p><b>&lt;i&gt;</b></p>"],
    [
      html`<ul>
        ${["<a>", html`<li>x</li>`]}
      </ul>`,
      "<ul> &lt;a&gt;<li>x</li></ul>",
    ],
    [html`${undefined}${null}${false}${0}`, "0"],
    [html`<a title="${'" onmouseover="x'}"></a>`, '<a title="&quot; onmouseover=&quot;x"></a>'],
  ];
  for (const [got, want] of cases) assert.equal(flat(got.toString()), want);
});

const key = generateClusterKey("RS256", { kid: "kid-static-1" });
const resources = parseResources([
  {
    file: "/etc/kube-join/resources.yaml",
    text: `kind: bot
version: v1
metadata:
  name: example
spec:
  roles: [access]
  traits:
    - name: logins
      values: [root, ubuntu]
---
kind: token
version: v2
metadata:
  name: example-bot
  expires: "2026-03-01T00:00:00Z"
spec:
  roles: [Bot]
  bot_name: example
  join_method: kubernetes
  kubernetes:
    type: static_jwks
    static_jwks:
      jwks: '${jwksOf(key)}'
    allow:
      - service_account: "default:tbot"
---
kind: token
version: v2
metadata:
  name: eks-bot
  expires: "2025-01-01T00:00:00Z"
spec:
  roles: [Bot]
  bot_name: example
  join_method: kubernetes
  kubernetes:
    type: oidc
    oidc:
      issuer: https://oidc.eks.example.com/id/ABC
    allow:
      - service_account_namespace: "ci-*"
        service_account_name: "runner-?"
`,
  },
]);

async function page(): Promise<{ page: StatusPage; text: string; caKeyPem: string }> {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-status-"));
  try {
    const authority = await loadOrCreateAuthority(
      { clusterName: "example.com", dataDir: dir },
      NOW.getTime(),
    );
    const metrics = createMetrics();
    metrics.onJoin({
      time: NOW,
      remoteAddr: "127.0.0.1",
      tokenName: "example-bot",
      botName: "example",
      joinMethod: "kubernetes",
      attrs: undefined,
      cache: "miss",
      durationSeconds: 0.002,
      outcome: { ok: false, code: "token_not_found", message: "no" },
    });
    const status: StatusPage = {
      title: "example.com",
      now: NOW,
      sections: [
        readinessSection(
          { ready: true, reasons: [], startedAt: new Date(NOW.getTime() - 3_600_000) },
          NOW,
        ),
        reloadSection(
          {
            at: NOW,
            ok: false,
            reason: "SIGHUP",
            problems: [
              `/etc/kube-join/bot.yaml:7:3: spec.bot_name: names no loaded bot "${HOSTILE}"`,
            ],
          },
          { at: new Date(NOW.getTime() - 60_000), ok: true, reason: "start-up", problems: [] },
          NOW,
        ),
        joinCountsSection(await metrics.attemptCounts(), NOW),
        resourcesSection(resources, NOW),
        caSection(authority.trusted(), NOW),
      ],
    };
    const { readFileSync } = await import("node:fs");
    return {
      page: status,
      text: renderStatusPage(status),
      caKeyPem: readFileSync(join(dir, "tls-ca.key"), "utf8"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("the page shows readiness, the reload and its problems, joins, bots, tokens and CAs", async () => {
  const text = flat((await page()).text);
  const expected = [
    '<span class="badge ok">ready</span>',
    '<span class="badge bad">failed</span>',
    "cause: SIGHUP",
    "Last good load: 2026-01-02T03:03:05Z",
    `/etc/kube-join/bot.yaml:7:3: spec.bot_name: names no loaded bot &quot;${escapeHtml(HOSTILE).replaceAll("&quot;", "&quot;")}`,
    "<code>token_not_found</code></td><td>1</td>",
    "<td>example</td><td>access</td><td>root, ubuntu</td><td>12 h</td>",
    "<td>example-bot</td><td>example</td><td>Bot</td>",
    "<code>join_method: kubernetes, type: static_jwks</code>",
    "<code>key: kid-static-1 (RSA, RS256)</code>",
    "<code>allow: default:tbot</code>",
    "<code>join_method: kubernetes, type: oidc</code>",
    "<code>issuer: https://oidc.eks.example.com/id/ABC</code>",
    "<code>allow: namespace ci-*, name runner-? (glob)</code>",
    "2026-03-01T00:00:00Z (in 58 d)",
    '<span class="badge bad">expired</span> 2025-01-01T00:00:00Z',
    "<code>/etc/kube-join/resources.yaml:14</code>",
    "signs bot certificates",
    "CN=example.com",
    "<code>ssh-ed25519</code>",
  ];
  for (const fragment of expected) assert.ok(text.includes(fragment), `missing: ${fragment}`);
  assert.ok(!text.includes("<script"), "no markup from a problem message survives");
  assert.ok(!text.includes("<img"), "no markup from a problem message survives");
});

test("the key sets fetched from OIDC issuers are listed with their age", () => {
  const issuer = "https://oidc.eks.example.com/id/ABC";
  const section = resourcesSection(resources, NOW, new Map([[issuer, 180]]));
  assert.ok(
    flat(section.body.toString()).includes(`<td><code>${issuer}</code></td><td>3 min ago</td>`),
  );
});

test("the CA section gives fingerprints that match the certificate and the SSH key", async () => {
  const dir = mkdtempSync(join(tmpdir(), "kube-join-status-"));
  try {
    const authority = await loadOrCreateAuthority(
      { clusterName: "example.com", dataDir: dir },
      NOW.getTime(),
    );
    const { tlsCaCerts, sshCaKeys } = authority.trusted();
    const { X509Certificate } = await import("node:crypto");
    const cert = new X509Certificate(tlsCaCerts[0] ?? "");
    const text = renderStatusPage({
      title: "t",
      now: NOW,
      sections: [caSection(authority.trusted(), NOW)],
    });
    assert.ok(text.includes(cert.fingerprint256));
    assert.ok(text.includes(sshKeyFingerprint(sshCaKeys[0] ?? "")));
    assert.ok(text.includes("2036-01-0"), "the CA's ten-year expiry");
    // Close to expiry: flagged.
    const late = new Date(cert.validTo);
    late.setUTCDate(late.getUTCDate() - 10);
    const soon = caSection(authority.trusted(), late);
    assert.equal(soon.status, "warn");
    assert.ok(soon.body.toString().includes("expires soon"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sshKeyFingerprint is OpenSSH's SHA256 fingerprint", () => {
  const { publicKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  const blob = Buffer.concat([
    Buffer.from([0, 0, 0, 11]),
    Buffer.from("ssh-ed25519"),
    Buffer.from([0, 0, 0, 32]),
    raw,
  ]);
  const line = `ssh-ed25519 ${blob.toString("base64")} comment`;
  const want = `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
  assert.equal(sshKeyFingerprint(line), want);
});

test("the page never carries a private key, a JWT or a JWK's key material", async () => {
  const { text, caKeyPem } = await page();
  assert.ok(!text.includes("PRIVATE KEY"));
  const body = caKeyPem
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("-----"))
    .join("");
  assert.ok(!text.includes(body.slice(0, 40)), "the CA key's base64 body");
  assert.ok(!text.includes(String(key.jwk["n"]).slice(0, 40)), "the JWK's modulus");
  assert.ok(!/eyJ[\w-]{10,}\./.test(text), "nothing shaped like a JWT");
});

test("GET / and /status serve the page under a CSP whose style hash is the page's style", async (t) => {
  const { page: status } = await page();
  const app = createDiagApp({
    metrics: createMetrics(),
    isReady: () => true,
    status: async () => status,
  });
  for (const path of ["/", "/status"]) {
    await t.test(path, async () => {
      const res = await request(app).get(path);
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-type"], "text/html; charset=utf-8");
      assert.equal(res.headers["content-security-policy"], STATUS_PAGE_CSP);
      assert.equal(res.headers["x-content-type-options"], "nosniff");
      assert.equal(res.headers["x-frame-options"], "DENY");
      assert.equal(res.headers["cache-control"], "no-store");
      const style = /<style>([\s\S]*?)<\/style>/.exec(res.text)?.[1];
      assert.ok(style !== undefined);
      const hash = createHash("sha256").update(style).digest("base64");
      assert.ok(STATUS_PAGE_CSP.includes(`style-src 'sha256-${hash}'`));
      assert.match(STATUS_PAGE_CSP, /^default-src 'none'; /);
      assert.doesNotMatch(STATUS_PAGE_CSP, /script-src|unsafe-inline|unsafe-eval/);
      assert.equal((res.text.match(/<style>/g) ?? []).length, 1, "one style element");
      assert.doesNotMatch(
        res.text,
        /<script|<[^>]*\s(on\w+|style)=/i,
        "no script, handler or inline style",
      );
    });
  }
  const head = await request(app).head("/");
  assert.equal(head.status, 200);
  const post = await request(app).post("/").send("x");
  assert.equal(post.status, 405);
  assert.equal(post.headers["allow"], "GET, HEAD");
});

test("without a status source, / is not_found as before; a failing one is a generic internal", async () => {
  const none = createDiagApp({ metrics: createMetrics(), isReady: () => true });
  assert.equal((await request(none).get("/")).status, 404);
  const logged: unknown[] = [];
  const failing = createDiagApp({
    metrics: createMetrics(),
    isReady: () => true,
    logger: { error: (d) => logged.push(d.err) },
    status: async () => {
      throw new Error("secret detail /var/lib/kube-join");
    },
  });
  const res = await request(failing).get("/status");
  assert.equal(res.status, 500);
  assert.equal(res.body.error.code, "internal");
  assert.ok(!res.text.includes("secret detail"));
  assert.equal(logged.length, 1);
});

test("hostile requests to the status routes: nothing reflected, the usual errors", async (t) => {
  const { page: status } = await page();
  const app = createDiagApp({
    metrics: createMetrics(),
    isReady: () => true,
    status: async () => status,
  });
  const cases: { name: string; path: string; method?: "put" | "delete"; status: number }[] = [
    { name: "markup in the query string", path: `/?q=${encodeURIComponent(HOSTILE)}`, status: 200 },
    { name: "markup in a fragment-like query", path: "/status?%3Cscript%3E=1", status: 200 },
    { name: "a path below the page", path: "/status/%3Cscript%3E", status: 404 },
    { name: "a traversal attempt", path: "/%2e%2e/%2e%2e/etc/passwd", status: 404 },
    { name: "PUT", path: "/status", method: "put", status: 405 },
    { name: "DELETE", path: "/", method: "delete", status: 405 },
  ];
  for (const c of cases) {
    await t.test(c.name, async () => {
      const req = request(app);
      const res = await (c.method === undefined ? req.get(c.path) : req[c.method](c.path));
      assert.equal(res.status, c.status);
      assert.ok(!res.text.includes("<script"), "nothing from the request is reflected as markup");
      assert.ok(!res.text.includes("%3Cscript"), "nothing from the request is reflected");
      if (c.status !== 200) assert.match(res.headers["content-type"] ?? "", /^application\/json/);
    });
  }
});

test("bot instances: newest join first, escaped; an unreadable store is said so", async () => {
  const store = new MemoryBotInstanceStore();
  await store.recordJoin(
    instanceJoin({ podUid: "a", podName: HOSTILE, atMs: NOW.getTime() - 60_000 }),
  );
  await store.recordJoin(instanceJoin({ podUid: "b", podName: "tbot-b", atMs: NOW.getTime() }));
  const section = instancesSection(await store.list(), NOW);
  const body = flat(section.body.toString());
  assert.equal(section.title, "Bot instances (2)");
  assert.ok(body.indexOf("tbot-b") < body.indexOf(escapeHtml(HOSTILE)), body);
  assert.ok(!body.includes("<script>"), body);
  assert.match(body, /default:tbot/);
  const down = instancesSection("unavailable", NOW);
  assert.equal(down.status, "bad");
  assert.match(down.body.toString(), /store_unavailable/);
  assert.match(instancesSection(undefined, NOW).body.toString(), /No store/);
});

test("locks: target, admin message escaped, expiry and origin; a passed lock is not in force", () => {
  const section = locksSection(
    [
      {
        name: "lock-1",
        target: { user: "bot-example" },
        message: HOSTILE,
        expiresAtMs: undefined,
        createdAtMs: NOW.getTime(),
        origin: "store",
      },
      {
        name: "lock-2",
        target: { kubernetes_namespace: "ci" },
        message: undefined,
        expiresAtMs: NOW.getTime() - 1,
        createdAtMs: undefined,
        origin: "/etc/kube-join/locks.yaml:1",
      },
    ],
    NOW,
  );
  const body = flat(section.body.toString());
  assert.equal(section.title, "Locks (1 in force)");
  assert.equal(section.status, "warn");
  assert.ok(!body.includes("<script>"), body);
  assert.ok(body.includes(escapeHtml(HOSTILE)), body);
  assert.match(body, /until deleted/);
  assert.match(body, /passed: not in force/);
  assert.match(body, /locks\.yaml:1/);
  assert.equal(locksSection([], NOW).status, "ok");
});
