/**
 * The status page in a real browser: Debian's Chromium, driven by playwright-core (which never
 * downloads a browser of its own), loads `GET /` from the diag listener of a real `kube-join
 * serve`. It checks the content after a join and after a broken reload, that the
 * Content-Security-Policy holds (markup injected through a problem message shows as text and runs
 * nothing; a script or style added to the DOM is refused), and saves screenshots in the test's
 * temporary directory. With `STATUS_PAGE_SCREENSHOT=docs/status-page.png` the healthy page's
 * screenshot is also written there (how the one in docs/ was made).
 */
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { STATUS_PAGE_CSP } from "../src/http/status-page.ts";
import { joinRequestBody, newBotPublicKeys, postJoin } from "./support/join-request.ts";
import {
  DEMO_CLUSTER,
  DEMO_RESOURCES,
  REPO_ROOT,
  runCli,
  startService,
  type ServiceProcess,
} from "./support/service.ts";
import { systemTool } from "./support/system-tools.ts";

// The browser globals the page functions below use (they run in Chromium; the project's TypeScript
// has no DOM library, so these few are declared here, for this file only).
interface DomElement {
  textContent: string | null;
  setAttribute(name: string, value: string): void;
  append(...nodes: DomElement[]): void;
}
declare const document: {
  readonly body: DomElement;
  readonly head: DomElement;
  createElement(tag: string): DomElement;
  addEventListener(
    type: "securitypolicyviolation",
    listener: (event: { readonly violatedDirective: string }) => void,
  ): void;
};
declare const window: Record<string, unknown>;
declare function getComputedStyle(element: DomElement): {
  readonly color: string;
  readonly backgroundColor: string;
};

const browserTool = systemTool("chromium", "chromium");
const sshKeygen = systemTool("ssh-keygen", "openssh-client");

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** A token in a file of the service's own, so the test can break and fix it. */
function extraTokenYaml(botName: string): string {
  return `kind: token
version: v2
metadata:
  name: ci-runner
  expires: "2099-01-01T00:00:00Z"
spec:
  roles: [Bot]
  bot_name: ${botName}
  join_method: kubernetes
  kubernetes:
    type: oidc
    oidc:
      issuer: https://oidc.eks.example.com/id/STATUS
    allow:
      - service_account_namespace: "ci-*"
        service_account_name: runner
`;
}

/** A bot name carrying markup: it reaches the page inside the reload's problem message. */
const INJECTED = `<script>window.__kubeJoinInjected = 1</script><img src=x onerror=window.__kubeJoinImg=1>`;

let service: ServiceProcess | undefined;
let context: BrowserContext | undefined;
let page: Page | undefined;
let tmp = "";
const violations: string[] = [];

before(
  async () => {
    if (browserTool.skip) return;
    tmp = mkdtempSync(join(tmpdir(), "kube-join-status-browser-"));
    service = await startService({
      configYaml: `cluster_name: ${DEMO_CLUSTER}
listen_addr: 127.0.0.1:0
diag_addr: 127.0.0.1:0
resources: [${JSON.stringify(DEMO_RESOURCES)}, ./ci-token.yaml]
data_dir: ./data
shutdown_timeout: 5s
`,
      extraFiles: { "ci-token.yaml": extraTokenYaml("example") },
    });
    context = await chromium.launchPersistentContext(join(tmp, "profile"), {
      executablePath: browserTool.path,
      args: CHROMIUM_ARGS,
      viewport: { width: 1280, height: 900 },
    });
    page = await context.newPage();
    page.on("console", (message) => {
      if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
    });
  },
  { timeout: 60_000 },
);

after(async () => {
  await context?.close();
  await service?.stop();
  if (tmp !== "") rmSync(tmp, { recursive: true, force: true });
});

const count = (msg: string): number => service!.logs().filter((l) => l["msg"] === msg).length;
const RELOAD_FAILED = "resource reload failed; the previous resources keep serving";

async function open(): Promise<string> {
  const response = await page!.goto(`${service!.diagUrl}/`);
  assert.ok(response !== null);
  assert.equal(response.status(), 200);
  assert.equal(response.headers()["content-security-policy"], STATUS_PAGE_CSP);
  return page!.innerText("body");
}

function section(id: string): Promise<string> {
  return page!.innerText(`section#${id}`);
}

test(
  "the page shows a ready service, its bots, tokens and CAs, and counts a join and a refusal",
  { skip: browserTool.skip, timeout: 60_000 },
  async () => {
    assert.ok(service !== undefined && page !== undefined);
    const minted = await runCli(["demo-token"], { timeoutMs: 20_000 });
    assert.equal(minted.code, 0, minted.stderr);
    const jwt = minted.stdout.trim();
    const keys = await newBotPublicKeys("tbot");
    const ok = await postJoin(
      service.baseUrl,
      joinRequestBody({ token: "example-bot", role: "Bot", idToken: jwt, keys }),
    );
    assert.equal(ok.status, 200);
    const refused = await postJoin(
      service.baseUrl,
      joinRequestBody({ token: "no-such-token", role: "Bot", idToken: jwt, keys }),
    );
    assert.equal(refused.status, 403);

    const text = await open();
    assert.match(await section("readiness"), /ready\s+joins are served/);
    assert.match(await section("reload"), /succeeded at \S+Z .*cause: start-up/);
    const joins = await section("joins");
    assert.match(joins, /success\s+ok\s+1/);
    assert.match(joins, /refused\s+token_not_found\s+1/);
    assert.match(joins, /total\s+2/);

    const resources = await section("resources");
    assert.match(resources, /Bots \(1\) and tokens \(2\)/);
    assert.match(resources, /example\s+access\s+root/);
    assert.match(
      resources,
      /example-bot\s+example\s+Bot\s+join_method: kubernetes, type: static_jwks\s+key: nfp-Efj8ZiyIA48WtTtxnTZleEsECW0RwX29akLACic \(RSA, RS256\)\s+allow: default:tbot/,
    );
    assert.match(
      resources,
      /ci-runner\s+example\s+Bot\s+join_method: kubernetes, type: oidc\s+issuer: https:\/\/oidc\.eks\.example\.com\/id\/STATUS\s+allow: namespace ci-\*, name runner \(glob\)/,
    );
    assert.match(resources, /2099-01-01T00:00:00Z \(in \d+ d\)/);
    assert.doesNotMatch(resources, /OIDC issuer/, "no issuer's keys were fetched yet");

    // The CA as the join listener publishes it: same fingerprint and expiry on the page.
    const ca = (await (await fetch(`${service.baseUrl}/v1/ca`)).json()) as Record<string, unknown>;
    const pem = JSON.stringify(ca).match(
      /-----BEGIN CERTIFICATE-----[^"]+-----END CERTIFICATE-----/,
    )?.[0];
    assert.ok(pem !== undefined, "GET /v1/ca carries the CA certificate");
    const cert = new X509Certificate(pem.replaceAll("\\n", "\n"));
    const cas = await section("ca");
    assert.ok(cas.includes(cert.fingerprint256), "TLS CA fingerprint");
    assert.ok(cas.includes(new Date(cert.validTo).toISOString().slice(0, 10)), "TLS CA expiry");
    if (!sshKeygen.skip) {
      const sshLine = JSON.stringify(ca).match(/ssh-ed25519 [A-Za-z0-9+/=]+/)?.[0];
      assert.ok(sshLine !== undefined);
      const keyFile = join(tmp, "ssh-ca.pub");
      writeFileSync(keyFile, `${sshLine}\n`);
      const printed = spawnSync(sshKeygen.path, ["-l", "-f", keyFile], { encoding: "utf8" });
      const fingerprint = printed.stdout.split(" ")[1] ?? "";
      assert.ok(fingerprint.startsWith("SHA256:"), printed.stdout + printed.stderr);
      assert.ok(cas.includes(fingerprint), `ssh-keygen's ${fingerprint} is on the page`);
    }

    // Nothing secret: not the JWT, not the CA's private key.
    const source = await page.content();
    assert.ok(!source.includes(jwt) && !text.includes(jwt.slice(0, 40)), "no JWT");
    const caKey = readFileSync(join(service.dir, "data/tls-ca.key"), "utf8");
    const keyBody = caKey
      .split("\n")
      .filter((l) => l !== "" && !l.startsWith("-----"))
      .join("");
    assert.ok(!source.includes(keyBody.slice(0, 32)) && !source.includes("PRIVATE KEY"), "no key");

    // The page's own style applies: its hash in the CSP matches.
    const header = await page.$eval(
      "header",
      (el) => getComputedStyle(el as unknown as DomElement).backgroundColor,
    );
    assert.equal(header, "rgb(29, 36, 48)");
    assert.deepEqual(violations, [], "loading the page breaks no CSP rule");

    const shot = join(tmp, "status-page.png");
    await page.screenshot({ path: shot, fullPage: true });
    assert.deepEqual([...readFileSync(shot).subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
    const docsCopy = process.env["STATUS_PAGE_SCREENSHOT"];
    if (docsCopy !== undefined && docsCopy !== "") copyFileSync(shot, resolve(REPO_ROOT, docsCopy));
  },
);

test(
  "after a broken reload the page shows the failure and its problems, with the old resources still serving",
  { skip: browserTool.skip, timeout: 60_000 },
  async () => {
    assert.ok(service !== undefined && page !== undefined);
    const before = count(RELOAD_FAILED);
    writeFileSync(join(service.dir, "ci-token.yaml"), extraTokenYaml("exmaple"));
    await service.waitForLog(() => count(RELOAD_FAILED) > before, 15_000);

    await open();
    const reload = await section("reload");
    assert.match(reload, /failed\s+the previous resources keep serving/);
    assert.match(reload, /cause: file change: ci-token\.yaml/);
    assert.match(reload, /Last good load: \S+Z .*start-up/);
    assert.match(reload, /ci-token\.yaml:8:\d+: spec\.bot_name: names no loaded bot "exmaple"/);
    assert.match(
      await section("resources"),
      /ci-runner\s+example\s+Bot\s+join_method: kubernetes, type: oidc/,
    );
    assert.match(await section("readiness"), /ready/);
    await page.screenshot({ path: join(tmp, "status-page-reload-failed.png"), fullPage: true });
  },
);

test(
  "markup injected through a problem message shows as text and runs nothing; the CSP refuses scripts and styles",
  { skip: browserTool.skip, timeout: 60_000 },
  async () => {
    assert.ok(service !== undefined && page !== undefined);
    const before = count(RELOAD_FAILED);
    writeFileSync(join(service.dir, "ci-token.yaml"), extraTokenYaml(JSON.stringify(INJECTED)));
    await service.waitForLog(() => count(RELOAD_FAILED) > before, 15_000);

    await open();
    // Verbatim as text, never as elements.
    assert.ok((await section("reload")).includes(INJECTED), "the problem shows the markup as text");
    assert.equal(await page.locator("script").count(), 0);
    assert.equal(await page.locator("main img").count(), 0);
    const ran = await page.evaluate(() => {
      return [window["__kubeJoinInjected"], window["__kubeJoinImg"]];
    });
    assert.deepEqual(ran, [undefined, undefined]);

    // The CSP on its own: a script and a style added to the live DOM are refused.
    const outcome = await page.evaluate(async () => {
      const seen: string[] = [];
      document.addEventListener("securitypolicyviolation", (e) => seen.push(e.violatedDirective));
      const script = document.createElement("script");
      script.textContent = "window.__kubeJoinDomScript = 1";
      document.body.append(script);
      const style = document.createElement("style");
      style.textContent = "body { color: rgb(1, 2, 3) !important }";
      document.head.append(style);
      const styled = document.createElement("p");
      styled.setAttribute("style", "color: rgb(4, 5, 6)");
      document.body.append(styled);
      await new Promise((r) => setTimeout(r, 200));
      return {
        ran: window["__kubeJoinDomScript"],
        bodyColor: getComputedStyle(document.body).color,
        attrColor: getComputedStyle(styled).color,
        seen,
      };
    });
    assert.equal(outcome.ran, undefined, "an inline script added to the page did not run");
    assert.notEqual(outcome.bodyColor, "rgb(1, 2, 3)", "an injected style element was refused");
    assert.notEqual(outcome.attrColor, "rgb(4, 5, 6)", "an injected style attribute was refused");
    assert.ok(
      outcome.seen.some((d) => d.startsWith("script-src")),
      JSON.stringify(outcome.seen),
    );
    assert.ok(
      outcome.seen.some((d) => d.startsWith("style-src")),
      JSON.stringify(outcome.seen),
    );
    await page.screenshot({ path: join(tmp, "status-page-injection.png"), fullPage: true });
  },
);
