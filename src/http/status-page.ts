/**
 * The status page of the diagnostics listener (`GET /` and `GET /status`): one server-rendered
 * HTML document an operator opens in a browser to see, before reading any log, whether the
 * service is ready, how its last reload went, what it serves and how joins are going.
 *
 * The page is a list of sections, each built by a small function from the data it shows, so a new
 * subsystem adds its section to the list without touching the others.
 *
 * Safety, by construction:
 * - every interpolated value goes through `html`, which HTML-escapes anything that is not already
 *   `SafeHtml` (a resource name, a problem message or a file path cannot become markup);
 * - no script at all, and a Content-Security-Policy (`STATUS_PAGE_CSP`) of `default-src 'none'`
 *   that allows only the page's own inline style, by hash; so even markup that slipped past the
 *   escaping could neither run a script nor load anything;
 * - the sections show names, rules, key ids, fingerprints and dates: never a JWT, a key, or
 *   anything from a certificate beyond its public description.
 */
import { createHash, X509Certificate } from "node:crypto";
import type { BotInstanceRecord } from "../join/bot-instance-store.ts";
import { formatTarget, type Lock } from "../locks/lock.ts";
import type { AttemptCount } from "../metrics/metrics.ts";
import type { Bot, JoinToken, ResourceSet } from "../resources/types.ts";

/** A fragment of markup that is safe to insert as is (built by `html`). */
export class SafeHtml {
  readonly #markup: string;
  constructor(markup: string) {
    this.#markup = markup;
  }
  toString(): string {
    return this.#markup;
  }
}

const ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for HTML element content and (quoted) attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/**
 * A template tag: the literal parts are markup, every `${value}` is escaped text, except values
 * that are `SafeHtml` (from another `html` call). Arrays are joined; `undefined`, `null` and
 * `false` render as nothing.
 *
 * @example html`<td>${token.name}</td>` // a name "<b>" renders as the text "<b>"
 */
export function html(strings: TemplateStringsArray, ...values: readonly unknown[]): SafeHtml {
  let out = strings[0] ?? "";
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? "");
  });
  return new SafeHtml(out);
}

function render(value: unknown): string {
  if (value === undefined || value === null || value === false) return "";
  if (value instanceof SafeHtml) return value.toString();
  if (Array.isArray(value)) return value.map(render).join("");
  return escapeHtml(String(value));
}

/** One titled part of the page. `status` colours its heading: ok, warn or bad. */
export interface StatusSection {
  /** A stable `id` attribute (letters, digits, `-`), for links and tests. */
  readonly id: string;
  readonly title: string;
  readonly status?: "ok" | "warn" | "bad";
  readonly body: SafeHtml;
}

/** The page's only style. Its hash is in the CSP; nothing else may style or script the page. */
const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2430;background:#f4f6f9}
header{background:#1d2430;color:#fff;padding:12px 24px}
header h1{font-size:18px;margin:0}
header p{margin:2px 0 0;color:#b8c2d1;font-size:12px}
header a{color:#9cc3ff;margin-right:10px}
main{padding:16px 24px;display:grid;gap:16px;max-width:1200px}
section{background:#fff;border:1px solid #d6dce5;border-radius:6px;padding:12px 16px}
h2{font-size:15px;margin:0 0 8px;padding-left:8px;border-left:4px solid #8a94a6}
h2.ok{border-color:#2e9d53}h2.warn{border-color:#d99a00}h2.bad{border-color:#d23c3c}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e6eaf0;vertical-align:top}
th{color:#5b6576;font-weight:600}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;overflow-wrap:anywhere}
td ul{list-style:none;padding-left:0;margin:0}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12px}
.ok .badge,.badge.ok{background:#dff3e6;color:#1d6b39}
.badge.warn{background:#fdf0cc;color:#7a5600}
.badge.bad{background:#fbe0e0;color:#8f2222}
ul{margin:4px 0;padding-left:20px}
.muted{color:#5b6576}
`;

const STYLE_HASH = createHash("sha256").update(STYLE).digest("base64");
/** Built outside any template, so no formatter can add whitespace inside it and break the hash. */
const STYLE_ELEMENT = new SafeHtml(`<style>${STYLE}</style>`);

/**
 * The page's Content-Security-Policy: nothing may load or run, except the page's own `<style>`
 * (allowed by its hash). No script source at all, so no injected script can run.
 */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `style-src 'sha256-${STYLE_HASH}'`,
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers the status page is sent with (besides Content-Type). */
export const STATUS_PAGE_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy": STATUS_PAGE_CSP,
  "Cache-Control": "no-store",
  "X-Content-Type-Options": "nosniff",
  "X-Frame-Options": "DENY",
  "Referrer-Policy": "no-referrer",
  "Cross-Origin-Resource-Policy": "same-origin",
};

export interface StatusPage {
  /** Shown in the header, e.g. the cluster name. */
  readonly title: string;
  /** When the page was built (shown, and the reference for "in 3 days"). */
  readonly now: Date;
  readonly sections: readonly StatusSection[];
}

/** The whole HTML document. */
export function renderStatusPage(page: StatusPage): string {
  const nav = page.sections.map((s) => html`<a href="#${s.id}">${s.title}</a> `);
  const body = html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width,initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>kube-join status: ${page.title}</title>
        ${STYLE_ELEMENT}
      </head>
      <body>
        <header>
          <h1>kube-join: ${page.title}</h1>
          <p>as of ${rfc3339(page.now)} · ${nav}</p>
        </header>
        <main>
          ${page.sections.map(
            (s) =>
              html`<section id="${s.id}">
                <h2 class="${s.status ?? ""}">${s.title}</h2>
                ${s.body}
              </section> `,
          )}
        </main>
      </body>
    </html> `;
  return body.toString();
}

// --- Sections -----------------------------------------------------------------------------------

export interface Readiness {
  readonly ready: boolean;
  /** Why not, one line each (empty when ready). */
  readonly reasons: readonly string[];
  readonly startedAt: Date;
}

export function readinessSection(readiness: Readiness, now: Date): StatusSection {
  const state = readiness.ready
    ? html`<span class="badge ok">ready</span> joins are served`
    : html`<span class="badge bad">not ready</span> joins are refused with <code>not_ready</code>`;
  return {
    id: "readiness",
    title: "Readiness",
    status: readiness.ready ? "ok" : "bad",
    body: html`<p>${state}</p>
      ${
        readiness.reasons.length > 0
          ? html`<ul>
              ${readiness.reasons.map((r) => html`<li>${r}</li>`)}
            </ul>`
          : ""
      }
      <p class="muted">
        Started ${rfc3339(readiness.startedAt)} (${ago(readiness.startedAt, now)}).
      </p>`,
  };
}

/** One load or reload of the resource files. */
export interface ReloadRecord {
  readonly at: Date;
  readonly ok: boolean;
  /** What caused it: `start-up`, `SIGHUP`, `file change: bot.yaml`. */
  readonly reason: string;
  /** `file:line:col: field.path: message` for each problem of a failed one. */
  readonly problems: readonly string[];
}

export function reloadSection(
  last: ReloadRecord | undefined,
  lastGood: ReloadRecord | undefined,
  now: Date,
): StatusSection {
  if (last === undefined) {
    return {
      id: "reload",
      title: "Last reload",
      status: "warn",
      body: html`<p>The resources have not been loaded yet.</p>`,
    };
  }
  const result = last.ok
    ? html`<span class="badge ok">succeeded</span>`
    : html`<span class="badge bad">failed</span> the previous resources keep serving`;
  const good =
    !last.ok && lastGood !== undefined
      ? html`<p class="muted">
          Last good load: ${rfc3339(lastGood.at)} (${ago(lastGood.at, now)}), ${lastGood.reason}.
        </p>`
      : "";
  const problems =
    last.problems.length > 0
      ? html`<table>
          <thead>
            <tr>
              <th>Problem (file:line:col: field: message)</th>
            </tr>
          </thead>
          <tbody>
            ${last.problems.map(
              (p) =>
                html`<tr>
                  <td><code>${p}</code></td>
                </tr>`,
            )}
          </tbody>
        </table>`
      : "";
  return {
    id: "reload",
    title: "Last reload",
    status: last.ok ? "ok" : "bad",
    body: html`<p>${result} at ${rfc3339(last.at)} (${ago(last.at, now)}), cause: ${last.reason}</p>
      ${good}${problems}`,
  };
}

/**
 * Bots and tokens. A token's join settings are the lines its join method writes for `kube-join
 * check` (`PreparedJoin.describe()`: type, key ids, issuer, allow rules; never a key), so the page
 * names no method. `oidcKeyAges`: seconds since the key set of each OIDC issuer was fetched, as
 * `OidcKeySource.keySetAges()` gives them; issuers never fetched are absent.
 */
export function resourcesSection(
  resources: ResourceSet | undefined,
  now: Date,
  oidcKeyAges: ReadonlyMap<string, number> = new Map(),
): StatusSection {
  if (resources === undefined) {
    return {
      id: "resources",
      title: "Bots and tokens",
      status: "warn",
      body: html`<p>No resources loaded.</p>`,
    };
  }
  const bots = [...resources.bots.values()].sort(byName);
  const tokens = [...resources.tokens.values()].sort(byName);
  const expired = tokens.filter((t) => t.expiresAt !== undefined && t.expiresAt <= now.getTime());
  const keyAges = [...oidcKeyAges].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    id: "resources",
    title: `Bots (${bots.length}) and tokens (${tokens.length})`,
    status: expired.length > 0 ? "warn" : "ok",
    body: html`<table>
        <thead>
          <tr>
            <th>Bot</th>
            <th>Roles</th>
            <th>Logins</th>
            <th>Max session TTL</th>
            <th>Defined at</th>
          </tr>
        </thead>
        <tbody>
          ${bots.map(botRow)}
        </tbody>
      </table>
      <table>
        <thead>
          <tr>
            <th>Token</th>
            <th>Bot</th>
            <th>Roles</th>
            <th>Join settings (method, type, key ids, issuer, allow rules)</th>
            <th>Expires</th>
            <th>Defined at</th>
          </tr>
        </thead>
        <tbody>
          ${tokens.map((t) => tokenRow(t, now))}
        </tbody>
      </table>
      ${
        keyAges.length > 0
          ? html`<table>
              <thead>
                <tr>
                  <th>OIDC issuer</th>
                  <th>Key set fetched</th>
                </tr>
              </thead>
              <tbody>
                ${keyAges.map(
                  ([issuer, age]) =>
                    html`<tr>
                      <td><code>${issuer}</code></td>
                      <td>${duration(age * 1000)} ago</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
          : ""
      }
      ${
        resources.warnings.length > 0
          ? html`<p>Warnings:</p>
              <ul>
                ${resources.warnings.map((w) => html`<li><code>${w}</code></li>`)}
              </ul>`
          : ""
      }`,
  };
}

function botRow(bot: Bot): SafeHtml {
  return html`<tr>
    <td>${bot.name}</td>
    <td>${bot.roles.join(", ")}</td>
    <td>${(bot.traits.get("logins") ?? []).join(", ")}</td>
    <td>${duration(bot.maxSessionTtlMs)}</td>
    <td><code>${bot.source.file}:${bot.source.line}</code></td>
  </tr> `;
}

function tokenRow(token: JoinToken, now: Date): SafeHtml {
  const settings =
    token.join === undefined
      ? [`join_method: ${token.joinMethod} (not served here: joins get join_method_mismatch)`]
      : token.join.describe();
  let expires: SafeHtml | string = "never";
  if (token.expiresAt !== undefined) {
    const at = new Date(token.expiresAt);
    expires =
      token.expiresAt <= now.getTime()
        ? html`<span class="badge bad">expired</span> ${rfc3339(at)}`
        : html`${rfc3339(at)} (${until(at, now)})`;
  }
  return html`<tr>
    <td>${token.name}</td>
    <td>${token.botName ?? ""}</td>
    <td>${token.roles.join(", ")}</td>
    <td>
      <ul>
        ${settings.map((line) => html`<li><code>${line}</code></li>`)}
      </ul>
    </td>
    <td>${expires}</td>
    <td><code>${token.source.file}:${token.source.line}</code></td>
  </tr> `;
}

/** What relying parties trust, as `CertificateAuthority.trusted()` returns it: active CA first. */
export interface TrustedCas {
  readonly tlsCaCerts: readonly string[];
  readonly sshCaKeys: readonly string[];
}

/** The public description of one TLS CA certificate. */
export interface CaCertificateInfo {
  readonly subject: string;
  readonly serial: string;
  readonly sha256: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** Reads a PEM CA certificate's public description (never its key: there is none in it). */
export function describeCaCertificate(pem: string): CaCertificateInfo {
  const cert = new X509Certificate(pem);
  return {
    subject: cert.subject.replace(/\n/g, ", "),
    serial: cert.serialNumber,
    sha256: cert.fingerprint256,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

/** `SHA256:...` of an authorized_keys line, as `ssh-keygen -l` prints it. */
export function sshKeyFingerprint(line: string): string {
  const blob = Buffer.from(line.trim().split(/\s+/)[1] ?? "", "base64");
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** Within this long of its expiry a CA certificate is flagged (the alert's threshold too). */
const CA_EXPIRY_WARNING_MS = 30 * 24 * 3600 * 1000;

export function caSection(trusted: TrustedCas | undefined, now: Date): StatusSection {
  if (trusted === undefined) {
    return {
      id: "ca",
      title: "Certificate authorities",
      status: "bad",
      body: html`<p>The certificate authority is not loaded yet.</p>`,
    };
  }
  let status: "ok" | "warn" | "bad" = "ok";
  const tlsRows = trusted.tlsCaCerts.map((pem, i) => {
    const info = describeCaCertificate(pem);
    const left = info.notAfter.getTime() - now.getTime();
    let badge = html`<span class="badge ok">valid</span>`;
    if (left <= 0) {
      badge = html`<span class="badge bad">expired</span>`;
      if (i === 0) status = "bad";
    } else if (left <= CA_EXPIRY_WARNING_MS) {
      badge = html`<span class="badge warn">expires soon</span>`;
      if (i === 0 && status === "ok") status = "warn";
    }
    return html`<tr>
      <td>${i === 0 ? "signs bot certificates" : "trusted (rotation)"}</td>
      <td>${info.subject}</td>
      <td><code>${info.sha256}</code></td>
      <td><code>${info.serial}</code></td>
      <td>${rfc3339(info.notAfter)} (${until(info.notAfter, now)}) ${badge}</td>
    </tr> `;
  });
  const sshRows = trusted.sshCaKeys.map(
    (line, i) =>
      html`<tr>
        <td>${i === 0 ? "signs bot certificates" : "trusted (rotation)"}</td>
        <td><code>${line.split(/\s+/)[0] ?? ""}</code></td>
        <td><code>${sshKeyFingerprint(line)}</code></td>
      </tr> `,
  );
  return {
    id: "ca",
    title: "Certificate authorities",
    status,
    body: html`<table>
        <thead>
          <tr>
            <th>TLS CA</th>
            <th>Subject</th>
            <th>SHA-256 fingerprint</th>
            <th>Serial</th>
            <th>Expires</th>
          </tr>
        </thead>
        <tbody>
          ${tlsRows}
        </tbody>
      </table>
      <table>
        <thead>
          <tr>
            <th>SSH CA</th>
            <th>Key type</th>
            <th>Fingerprint</th>
          </tr>
        </thead>
        <tbody>
          ${sshRows}
        </tbody>
      </table>`,
  };
}

export function joinCountsSection(counts: readonly AttemptCount[], since: Date): StatusSection {
  const total = counts.reduce((n, c) => n + c.count, 0);
  const ok = counts.filter((c) => c.result === "success").reduce((n, c) => n + c.count, 0);
  const refused = [...counts.filter((c) => c.result === "failure")].sort(
    (a, b) => b.count - a.count || a.code.localeCompare(b.code),
  );
  return {
    id: "joins",
    title: "Joins since start",
    status: refused.some((c) => c.code === "internal") ? "bad" : "ok",
    body: html`<p class="muted">
        Counted since ${rfc3339(since)}; the same numbers as <code>kube_join_attempts_total</code>.
      </p>
      <table>
        <thead>
          <tr>
            <th>Result</th>
            <th>Code</th>
            <th>Attempts</th>
          </tr>
        </thead>
        <tbody>
          <tr>
            <td>success</td>
            <td><code>ok</code></td>
            <td>${ok}</td>
          </tr>
          ${refused.map(
            (c) =>
              html`<tr>
                <td>refused</td>
                <td><code>${c.code}</code></td>
                <td>${c.count}</td>
              </tr>`,
          )}
          <tr>
            <th>total</th>
            <th></th>
            <th>${total}</th>
          </tr>
        </tbody>
      </table>`,
  };
}

/** At most this many instances are listed (the newest joins first); `kube-join instances list` has all. */
export const STATUS_INSTANCES_SHOWN = 50;

/**
 * Bot instances: one row per pod of a bot, newest join first. `unavailable` when the store could
 * not be read (the page still renders; the store's own metrics say why).
 */
export function instancesSection(
  instances: readonly BotInstanceRecord[] | "unavailable" | undefined,
  now: Date,
): StatusSection {
  if (instances === undefined) {
    return {
      id: "instances",
      title: "Bot instances",
      body: html`<p class="muted">No store is open yet.</p>`,
    };
  }
  if (instances === "unavailable") {
    return {
      id: "instances",
      title: "Bot instances",
      status: "bad",
      body: html`<p>
        The store could not be read: joins get <code>store_unavailable</code> until it is back.
      </p>`,
    };
  }
  const newest = [...instances]
    .sort((a, b) => b.lastJoinMs - a.lastJoinMs)
    .slice(0, STATUS_INSTANCES_SHOWN);
  return {
    id: "instances",
    title: `Bot instances (${instances.length})`,
    body: html`${
        instances.length > newest.length
          ? html`<p class="muted">
              The ${newest.length} most recent joins; <code>kube-join instances list</code> shows
              all.
            </p>`
          : ""
      }
      <table>
        <thead>
          <tr>
            <th>Bot</th>
            <th>Instance</th>
            <th>Pod</th>
            <th>Service account</th>
            <th>Node</th>
            <th>Generation</th>
            <th>Last join</th>
            <th>Certificates expire</th>
          </tr>
        </thead>
        <tbody>
          ${newest.map(
            (i) =>
              html`<tr>
                <td>${i.botName}</td>
                <td><code>${i.botInstanceId}</code></td>
                <td>${i.podName}</td>
                <td>${i.namespace}:${i.serviceAccount}</td>
                <td>${i.nodeName ?? "-"}</td>
                <td>${i.generation}</td>
                <td>${rfc3339(new Date(i.lastJoinMs))}</td>
                <td>
                  ${rfc3339(new Date(i.expiresAtMs))}${
                    i.expiresAtMs <= now.getTime() ? " (expired)" : ""
                  }
                </td>
              </tr>`,
          )}
        </tbody>
      </table>`,
  };
}

/** Locks, from the resources and the store: target, message, expiry and where each came from. */
export function locksSection(locks: readonly Lock[], now: Date): StatusSection {
  const inForce = locks.filter((l) => l.expiresAtMs === undefined || l.expiresAtMs > now.getTime());
  return {
    id: "locks",
    title: `Locks (${inForce.length} in force)`,
    status: inForce.length > 0 ? "warn" : "ok",
    body:
      locks.length === 0
        ? html`<p class="muted">No locks.</p>`
        : html`<table>
            <thead>
              <tr>
                <th>Name</th>
                <th>Target</th>
                <th>Message</th>
                <th>Expires</th>
                <th>From</th>
              </tr>
            </thead>
            <tbody>
              ${[...locks].sort(byName).map(
                (l) =>
                  html`<tr>
                    <td><code>${l.name}</code></td>
                    <td><code>${formatTarget(l.target)}</code></td>
                    <td>${l.message ?? ""}</td>
                    <td>
                      ${
                        l.expiresAtMs === undefined
                          ? "until deleted"
                          : rfc3339(new Date(l.expiresAtMs))
                      }${
                        l.expiresAtMs !== undefined && l.expiresAtMs <= now.getTime()
                          ? " (passed: not in force)"
                          : ""
                      }
                    </td>
                    <td>${l.origin}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`,
  };
}

// --- Formatting ---------------------------------------------------------------------------------

function byName(a: { readonly name: string }, b: { readonly name: string }): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

function rfc3339(date: Date): string {
  return Number.isNaN(date.getTime())
    ? "(invalid date)"
    : date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

function ago(date: Date, now: Date): string {
  return `${duration(now.getTime() - date.getTime())} ago`;
}

function until(date: Date, now: Date): string {
  const ms = date.getTime() - now.getTime();
  return ms < 0 ? `${duration(-ms)} ago` : `in ${duration(ms)}`;
}

/** A short human duration: `45 s`, `12 min`, `3 h`, `120 d`. */
function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 120) return `${s} s`;
  if (s < 2 * 3600) return `${Math.round(s / 60)} min`;
  if (s < 2 * 86400) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}
