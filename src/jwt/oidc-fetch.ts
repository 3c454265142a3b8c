import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { request as httpRequest, type ClientRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest, type RequestOptions as HttpsRequestOptions } from "node:https";
import {
  createSecureContext,
  rootCertificates,
  type ConnectionOptions,
  type SecureContext,
} from "node:tls";
import { ConfigError } from "../errors.ts";

/**
 * Why fetching an issuer's keys failed, in words safe to return to a caller. Everything more
 * specific (URLs, status codes, TLS error codes, parser messages) stays in `OidcFetchError.detail`,
 * which goes only to the operator's log and metrics.
 */
export type OidcFailureReason =
  "issuer unreachable" | "invalid discovery document" | "invalid key set";

/** A failed fetch: `reason` may be shown to callers, `message` (the detail) only to operators. */
export class OidcFetchError extends Error {
  override readonly name = "OidcFetchError";
  readonly reason: OidcFailureReason;

  constructor(reason: OidcFailureReason, detail: string) {
    super(detail);
    this.reason = reason;
  }
}

/** Limits every fetch from an issuer obeys. */
export interface FetchLimits {
  /**
   * Trusts Node's bundled roots plus the operator's extra CA file (`issuerTlsContext`); built
   * once, since parsing ~150 root certificates per request would dominate a fetch.
   */
  readonly tls: SecureContext;
  /** Largest body accepted, checked against Content-Length and while streaming. */
  readonly maxBytes: number;
  /** Total time for the request, including redirects and a body that stalls half way. */
  readonly timeoutMs: number;
  /** Redirects followed before giving up. */
  readonly maxRedirects: number;
  /** Whether `http://` URLs (the first one and redirect targets) may be fetched. */
  readonly allowHttp: boolean;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The CA list for issuer TLS: Node's bundled roots plus every certificate in `extraCaFile` (a PEM
 * bundle for a private issuer). Passing `ca` to node:https replaces the defaults, so both are
 * listed. Throws `ConfigError` when the file cannot be read or holds no valid certificate.
 */
export function trustedCas(extraCaFile: string | undefined): readonly string[] {
  if (extraCaFile === undefined) return rootCertificates;
  let text: string;
  try {
    text = readFileSync(extraCaFile, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "unreadable";
    throw new ConfigError([
      `${extraCaFile}: cannot read the extra CA file for OIDC issuers (${code})`,
    ]);
  }
  const pems = text.match(PEM_CERTIFICATE) ?? [];
  const problems: string[] = [];
  pems.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch (err) {
      problems.push(
        `${extraCaFile}: certificate ${i + 1}: not a valid X.509 certificate (${(err as Error).message})`,
      );
    }
  });
  if (pems.length === 0) {
    problems.push(`${extraCaFile}: holds no PEM certificate ("-----BEGIN CERTIFICATE-----")`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return [...rootCertificates, ...pems];
}

/** The TLS context for issuer connections: certificates verified against `ca`, always. */
export function issuerTlsContext(ca: readonly string[]): SecureContext {
  return createSecureContext({ ca: [...ca] });
}

/**
 * Checks that a URL may be fetched under the scheme rules: https always, http only when allowed,
 * nothing else, and no credentials in the URL.
 */
export function checkFetchableUrl(url: URL, allowHttp: boolean): string | undefined {
  if (url.protocol === "http:" && !allowHttp) {
    return `${url.href}: http:// is not allowed (the issuer is not marked insecure_allow_http_issuer)`;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    return `${url.href}: scheme ${url.protocol} is not fetchable (https only)`;
  }
  if (url.username !== "" || url.password !== "") {
    return `${url.origin}: URLs with credentials are refused`;
  }
  return undefined;
}

/**
 * GETs `url` and returns its body as text, under `limits`: only status 200 is a success, at most
 * `maxRedirects` redirects (each target obeying the same scheme rules), never more than `maxBytes`,
 * never longer than `timeoutMs` in total. Every failure is an `OidcFetchError` with
 * reason "issuer unreachable" and a detail for the operator.
 */
export async function fetchText(url: URL, limits: FetchLimits): Promise<string> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), limits.timeoutMs);
  try {
    let current = url;
    for (let hop = 0; ; hop++) {
      const refused = checkFetchableUrl(current, limits.allowHttp);
      if (refused !== undefined) throw new OidcFetchError("issuer unreachable", refused);
      const result = await getOnce(current, limits, controller.signal);
      if (result.kind === "body") return result.text;
      if (hop >= limits.maxRedirects) {
        throw new OidcFetchError(
          "issuer unreachable",
          `${url.href}: more than ${limits.maxRedirects} redirects`,
        );
      }
      if (result.location === undefined) {
        throw new OidcFetchError(
          "issuer unreachable",
          `${current.href}: redirect without Location`,
        );
      }
      try {
        current = new URL(result.location, current);
      } catch {
        throw new OidcFetchError(
          "issuer unreachable",
          `${current.href}: redirect to an invalid URL`,
        );
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

type Hop = { kind: "body"; text: string } | { kind: "redirect"; location: string | undefined };

function getOnce(url: URL, limits: FetchLimits, signal: AbortSignal): Promise<Hop> {
  return new Promise<Hop>((resolve, reject) => {
    let settled = false;
    const fail = (detail: string): void => {
      if (settled) return;
      settled = true;
      req.destroy();
      reject(new OidcFetchError("issuer unreachable", `${url.href}: ${detail}`));
    };
    const failFromError = (err: Error): void => {
      if (signal.aborted) fail(`no complete response within ${limits.timeoutMs} ms`);
      else fail(describeNetworkError(err));
    };
    const options = {
      method: "GET",
      headers: { accept: "application/json" },
      signal,
      // A fresh connection per fetch: fetches are rare, and pooled sockets would outlive a
      // server that went away.
      agent: false as const,
    };
    // tls.connect takes `secureContext`; https.RequestOptions passes it through but does not type it.
    const tlsOptions: HttpsRequestOptions & Pick<ConnectionOptions, "secureContext"> = {
      ...options,
      secureContext: limits.tls,
    };
    const req: ClientRequest =
      url.protocol === "https:" ? httpsRequest(url, tlsOptions) : httpRequest(url, options);
    req.on("error", failFromError);
    req.on("response", (res: IncomingMessage) => {
      const status = res.statusCode ?? 0;
      if (REDIRECT_STATUSES.has(status)) {
        settled = true;
        // Drop the redirect's body with its connection: draining it (res.resume) would go on
        // reading whatever the server sends after this function returned, with no size or time
        // limit. The next hop opens its own connection anyway (agent: false).
        res.on("error", () => {});
        res.destroy();
        req.destroy();
        resolve({ kind: "redirect", location: res.headers.location });
        return;
      }
      if (status !== 200) {
        fail(`HTTP status ${status}`);
        return;
      }
      const declared = Number(res.headers["content-length"]);
      if (Number.isFinite(declared) && declared > limits.maxBytes) {
        fail(`response of ${declared} bytes exceeds the limit of ${limits.maxBytes}`);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > limits.maxBytes) {
          fail(`response exceeds the limit of ${limits.maxBytes} bytes`);
          return;
        }
        chunks.push(chunk);
      });
      res.on("error", failFromError);
      res.on("close", () => {
        if (!res.complete) failFromError(new Error("connection closed before the response ended"));
      });
      res.on("end", () => {
        if (settled) return;
        settled = true;
        resolve({ kind: "body", text: Buffer.concat(chunks).toString("utf8") });
      });
    });
    req.end();
  });
}

/** A short description of a network or TLS failure, with Node's error code when there is one. */
function describeNetworkError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === undefined ? err.message : `${err.message} (${code})`;
}
