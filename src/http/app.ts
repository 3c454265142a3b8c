/**
 * The join listener's express app: `POST /v1/join` and `GET /v1/ca`. A factory that never calls
 * `listen`, so tests drive it in-process with supertest and `serve` mounts it on HTTP or HTTPS.
 *
 * Every request passes the same named steps: rate limit -> route -> (content type -> JSON body ->
 * shape) -> join. Every failure ends in `sendError`, the one place an error code becomes an HTTP
 * status; anything that is not a `JoinError` is answered with a generic `internal`.
 */
import express, { type NextFunction, type Request, type Response } from "express";
import { JoinError } from "../errors.ts";
import type { JoinRequest, JoinResult } from "../join/join.ts";
import { parseRfc3339 } from "../rfc3339.ts";
import { INTERNAL_MESSAGE, sendError } from "./error-response.ts";
import type { RateLimiter } from "./rate-limit.ts";

/** The largest request body accepted. */
export const MAX_BODY_BYTES = 64 * 1024;

export interface JoinAppDeps {
  /** Runs a join (a `JoinService`), and hears of attempts refused before they reached it. */
  readonly joins: {
    join(request: JoinRequest): Promise<JoinResult>;
    reportRefused?(attempt: {
      readonly remoteAddr: string;
      readonly tokenName: string | undefined;
      readonly error: JoinError;
    }): void;
  };
  /** The CAs to trust now; undefined until the CA is loaded (`not_ready`). */
  readonly trusted: () =>
    { readonly tlsCaCerts: readonly string[]; readonly sshCaKeys: readonly string[] } | undefined;
  /** Per-client limiter; none means unlimited (tests). */
  readonly rateLimiter?: RateLimiter;
  /** Take the client address from `X-Forwarded-For`. Only behind a proxy that sets it. */
  readonly trustProxy?: boolean;
  readonly onRateLimited?: () => void;
  /** Receives unexpected errors for the log; the caller only ever sees `internal`. */
  readonly onInternalError?: (err: unknown, context: { readonly stage: string }) => void;
  /** True once shutdown began: responses then close their connection. */
  readonly isShuttingDown?: () => boolean;
}

/**
 * Creates the join app.
 *
 * @example
 * const app = createJoinApp({ joins, trusted: () => ca?.trusted() });
 * await request(app).get("/v1/ca").expect(200);
 */
export function createJoinApp(deps: JoinAppDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");
  // One hop: the address the proxy in front of us appended (the right-most X-Forwarded-For
  // entry). Entries further left are written by the client and would let it pick its own
  // rate-limit bucket and audit address.
  app.set("trust proxy", deps.trustProxy === true ? 1 : false);

  app.use(function closeWhenShuttingDown(_req: Request, res: Response, next: NextFunction) {
    if (deps.isShuttingDown?.() === true) res.setHeader("Connection", "close");
    next();
  });
  if (deps.rateLimiter !== undefined) app.use(rateLimit(deps.rateLimiter, deps.onRateLimited));

  app.post(
    "/v1/join",
    requireJsonContentType,
    express.json({ limit: MAX_BODY_BYTES, strict: true, type: () => true }),
    async function join(req: Request, res: Response) {
      const request = readJoinRequest(req.body, clientAddress(req));
      res.locals["joinStarted"] = true;
      const result = await deps.joins.join(request);
      res.setHeader("Cache-Control", "no-store");
      res.status(200).json(joinResponse(result));
    },
  );
  app.all("/v1/join", methodNotAllowed("POST"));

  app.get("/v1/ca", function exportCa(_req: Request, res: Response) {
    const trusted = deps.trusted();
    if (trusted === undefined) {
      throw new JoinError("not_ready", "the certificate authority is not loaded yet");
    }
    res.status(200).json({ tls_ca_certs: trusted.tlsCaCerts, ssh_ca_keys: trusted.sshCaKeys });
  });
  app.all("/v1/ca", methodNotAllowed("GET, HEAD"));

  app.use(function notFound() {
    throw new JoinError(
      "not_found",
      "no such endpoint: kube-join serves POST /v1/join and GET /v1/ca",
    );
  });
  app.use(function errorOut(err: unknown, req: Request, res: Response, _next: NextFunction) {
    let joinError = toJoinError(err);
    if (joinError === undefined) {
      deps.onInternalError?.(err, { stage: "http" });
      joinError = new JoinError("internal", INTERNAL_MESSAGE);
    }
    if (
      req.method === "POST" &&
      req.route?.path === "/v1/join" &&
      res.locals["joinStarted"] !== true
    ) {
      // Refused before the join pipeline saw it (shape, size, media type): still an attempt.
      deps.joins.reportRefused?.({
        remoteAddr: clientAddress(req),
        tokenName: tokenNameOf(req.body),
        error: joinError,
      });
    }
    sendError(res, joinError.code, joinError.message);
  });
  return app;
}

function rateLimit(limiter: RateLimiter, onRateLimited: (() => void) | undefined) {
  return function rateLimitPerClient(req: Request, res: Response, next: NextFunction): void {
    const decision = limiter.take(clientAddress(req));
    if (decision.allowed) {
      next();
      return;
    }
    onRateLimited?.();
    res.setHeader("Retry-After", String(decision.retryAfterSeconds));
    sendError(
      res,
      "rate_limited",
      `too many requests from this address; retry after ${decision.retryAfterSeconds} s`,
    );
  };
}

function requireJsonContentType(req: Request, _res: Response, next: NextFunction): void {
  if (req.is("application/json") !== "application/json") {
    throw new JoinError("unsupported_media_type", "the request body must be application/json");
  }
  next();
}

function methodNotAllowed(allow: string) {
  return function wrongMethod(_req: Request, res: Response): void {
    res.setHeader("Allow", allow);
    sendError(res, "method_not_allowed", `this endpoint only accepts ${allow}`);
  };
}

/** Maps errors of ours and of the body parser to a JoinError; undefined for anything else. */
function toJoinError(err: unknown): JoinError | undefined {
  if (err instanceof JoinError) return err;
  const type = (err as { type?: unknown } | null)?.type;
  switch (type) {
    case "entity.too.large":
      return new JoinError(
        "payload_too_large",
        `the request body is larger than ${MAX_BODY_BYTES} bytes`,
      );
    case "entity.parse.failed":
      return new JoinError(
        "bad_request",
        "the request body is not valid JSON (or not a JSON object)",
      );
    case "encoding.unsupported":
    case "charset.unsupported":
      return new JoinError(
        "unsupported_media_type",
        "the request body must be UTF-8 application/json",
      );
    case "request.aborted":
    case "request.size.invalid":
      return new JoinError("bad_request", "the request body is incomplete");
    default:
      return undefined;
  }
}

/** The `token` field of a body that may be anything, for the audit of a refused attempt. */
function tokenNameOf(body: unknown): string | undefined {
  if (typeof body !== "object" || body === null || !Object.hasOwn(body, "token")) return undefined;
  const token = (body as Record<string, unknown>)["token"];
  return typeof token === "string" && token !== "" ? token : undefined;
}

function clientAddress(req: Request): string {
  return req.ip ?? req.socket.remoteAddress ?? "unknown";
}

/** Checks the shape of a join body. Unknown fields (Teleport clients send more) are ignored. */
export function readJoinRequest(body: unknown, remoteAddr: string): JoinRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new JoinError("bad_request", "the request body must be a JSON object");
  }
  const fields = body as Record<string, unknown>;
  const read = (name: string, required: boolean): string | undefined => {
    if (!Object.hasOwn(fields, name) || fields[name] === undefined) {
      if (required) throw new JoinError("bad_request", `the field "${name}" is required`);
      return undefined;
    }
    const value = fields[name];
    if (typeof value !== "string") {
      throw new JoinError("bad_request", `the field "${name}" must be a string`);
    }
    if (value === "") throw new JoinError("bad_request", `the field "${name}" must not be empty`);
    return value;
  };
  const tokenName = read("token", true) as string;
  const role = read("role", false) ?? "Bot";
  const idToken = read("id_token", true) as string;
  const publicTlsKey = read("public_tls_key", true) as string;
  const publicSshKey = read("public_ssh_key", true) as string;
  const expires = read("expires", false);
  let expiresAtMs: number | undefined;
  if (expires !== undefined) {
    expiresAtMs = parseRfc3339(expires);
    if (expiresAtMs === undefined) {
      throw new JoinError(
        "bad_request",
        'the field "expires" must be an RFC 3339 time such as "2026-01-02T15:04:05Z"',
      );
    }
  }
  return { tokenName, role, idToken, publicTlsKey, publicSshKey, expiresAtMs, remoteAddr };
}

/** The 200 body of `POST /v1/join`, shaped like Teleport's certificates response. */
export function joinResponse(result: JoinResult): Record<string, unknown> {
  return {
    bot_name: result.botName,
    user: result.user,
    expires: result.expires.toISOString(),
    tls_cert: result.tlsCert,
    ssh_cert: result.sshCert,
    tls_ca_certs: result.tlsCaCerts,
    ssh_ca_keys: result.sshCaKeys,
    join_attrs: {
      kubernetes: {
        subject: result.kubernetes.subject,
        namespace: result.kubernetes.namespace,
        service_account: result.kubernetes.serviceAccount,
        pod: result.kubernetes.pod,
      },
    },
  };
}
