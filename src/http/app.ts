/**
 * The join listener: `POST /v1/join` and `GET /v1/ca`. A factory that never calls `listen`, so
 * tests drive it in-process with supertest and `serve` mounts it on HTTP or HTTPS.
 *
 * Every request passes the same named steps: shutdown check -> rate limit -> route. `POST
 * /v1/join` then runs on plain node:http (media type -> body -> JSON -> shape -> join), because
 * express's router and body parser cost as much CPU per request as the join's signatures (bench,
 * docs/architecture.md); everything else (`GET /v1/ca`, wrong methods, unknown paths) goes to an
 * express app. Every failure on either side ends in `sendError`, the one place an error code
 * becomes an HTTP status; anything that is not a `JoinError` is answered with a generic `internal`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import express, { type NextFunction, type Request, type Response } from "express";
import { INTERNAL_MESSAGE, JoinError } from "../errors.ts";
import type { JoinRequest, JoinResult } from "../join/join.ts";
import type { JoinRequestWire, JoinResponseWire } from "../lib/join-wire.ts";
import { parseRfc3339 } from "../lib/rfc3339.ts";
import { JSON_CONTENT_TYPE, sendError } from "./error-response.ts";
import { parseJsonObject, readBody, requireJsonBody } from "../lib/json-body.ts";
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

/** The join listener, for `http.createServer`, `https.createServer` or supertest. */
export type JoinApp = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Creates the join listener.
 *
 * @example
 * const app = createJoinApp({ joins, trusted: () => ca?.trusted() });
 * await request(app).get("/v1/ca").expect(200);
 */
export function createJoinApp(deps: JoinAppDeps): JoinApp {
  const others = createOtherRoutesApp(deps);
  const trustProxy = deps.trustProxy === true;
  return function joinListener(req: IncomingMessage, res: ServerResponse): void {
    if (deps.isShuttingDown?.() === true) res.setHeader("Connection", "close");
    const remoteAddr = clientAddress(req, trustProxy);
    if (deps.rateLimiter !== undefined) {
      const decision = deps.rateLimiter.take(remoteAddr);
      if (!decision.allowed) {
        deps.onRateLimited?.();
        res.setHeader("Retry-After", String(decision.retryAfterSeconds));
        sendError(
          res,
          "rate_limited",
          `too many requests from this address; retry after ${decision.retryAfterSeconds} s`,
        );
        return;
      }
    }
    if (req.method === "POST" && isJoinPath(req.url)) {
      void serveJoin(deps, req, res, remoteAddr);
      return;
    }
    others(req, res);
  };
}

/** `/v1/join`, with any query string (which is ignored). */
function isJoinPath(url: string | undefined): boolean {
  return url === "/v1/join" || (url !== undefined && url.startsWith("/v1/join?"));
}

/** `POST /v1/join`: never rejects; every outcome is a response. */
async function serveJoin(
  deps: JoinAppDeps,
  req: IncomingMessage,
  res: ServerResponse,
  remoteAddr: string,
): Promise<void> {
  let body: Record<string, unknown> | undefined;
  let request: JoinRequest;
  try {
    requireJsonBody(req.headers);
    body = parseJsonObject(await readBody(req, MAX_BODY_BYTES));
    request = readJoinRequest(body, remoteAddr);
  } catch (err) {
    const joinError = asJoinError(deps, err);
    // Refused before the join pipeline saw it (shape, size, media type): still an attempt.
    deps.joins.reportRefused?.({ remoteAddr, tokenName: tokenNameOf(body), error: joinError });
    closeIfShuttingDown(deps, res);
    sendError(res, joinError.code, joinError.message);
    return;
  }
  try {
    const result = await deps.joins.join(request);
    const json = JSON.stringify(joinResponse(result));
    closeIfShuttingDown(deps, res);
    res.writeHead(200, {
      "Content-Type": JSON_CONTENT_TYPE,
      "Content-Length": Buffer.byteLength(json),
      "Cache-Control": "no-store",
    });
    res.end(json);
  } catch (err) {
    const joinError = asJoinError(deps, err);
    closeIfShuttingDown(deps, res);
    if (joinError.code === "audit_unavailable") {
      res.setHeader("Retry-After", String(AUDIT_RETRY_AFTER_SECONDS));
    }
    sendError(res, joinError.code, joinError.message);
  }
}

/** A full disk is rarely freed in less: the audit trail probes itself every second meanwhile. */
export const AUDIT_RETRY_AFTER_SECONDS = 5;

/**
 * A request that arrived before the drain began is answered during it: its answer must say
 * `Connection: close` too, or the client sends its next request on a socket about to close.
 */
function closeIfShuttingDown(deps: JoinAppDeps, res: ServerResponse): void {
  if (deps.isShuttingDown?.() === true) res.setHeader("Connection", "close");
}

function asJoinError(deps: JoinAppDeps, err: unknown): JoinError {
  if (err instanceof JoinError) return err;
  deps.onInternalError?.(err, { stage: "http" });
  return new JoinError("internal", INTERNAL_MESSAGE);
}

/** Everything but `POST /v1/join`: the CA export and the answers for wrong methods and paths. */
function createOtherRoutesApp(deps: JoinAppDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.disable("etag");
  // `/v1/join/` or `/V1/JOIN` must not reach the wrong-method answer for `/v1/join`.
  app.enable("strict routing");
  app.enable("case sensitive routing");

  // Only an absolute-form target (`POST http://host/v1/join`) reaches here with POST: the join
  // listener routes on the origin form that clients send.
  app.post("/v1/join", function absoluteFormJoin() {
    throw new JoinError("bad_request", "send POST /v1/join with the path alone as the target");
  });
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
  app.use(function errorOut(err: unknown, _req: Request, res: Response, _next: NextFunction) {
    const joinError = asJoinError(deps, err);
    sendError(res, joinError.code, joinError.message);
  });
  return app;
}

function methodNotAllowed(allow: string) {
  return function wrongMethod(_req: Request, res: Response): void {
    res.setHeader("Allow", allow);
    sendError(res, "method_not_allowed", `this endpoint only accepts ${allow}`);
  };
}

/** The `token` field of a body that may be anything, for the audit of a refused attempt. */
function tokenNameOf(body: Record<string, unknown> | undefined): string | undefined {
  if (body === undefined || !Object.hasOwn(body, "token")) return undefined;
  const token = body["token"];
  return typeof token === "string" && token !== "" ? token : undefined;
}

/**
 * The client's address: the socket's peer, or with `trustProxy` the address the one proxy in front
 * of us appended (the right-most `X-Forwarded-For` entry). Entries further left are written by the
 * client and would let it pick its own rate-limit bucket and audit address.
 */
function clientAddress(req: IncomingMessage, trustProxy: boolean): string {
  const peer = req.socket.remoteAddress ?? "unknown";
  if (!trustProxy) return peer;
  const header = req.headers["x-forwarded-for"];
  // Node joins repeated X-Forwarded-For lines with ", "; the array form is only in the types.
  const forwarded = Array.isArray(header) ? header.join(",") : header;
  if (forwarded === undefined) return peer;
  const last = forwarded.slice(forwarded.lastIndexOf(",") + 1).trim();
  return last === "" ? peer : last;
}

/** Checks the shape of a join body. Unknown fields (Teleport clients send more) are ignored. */
export function readJoinRequest(body: unknown, remoteAddr: string): JoinRequest {
  if (typeof body !== "object" || body === null || Array.isArray(body)) {
    throw new JoinError("bad_request", "the request body must be a JSON object");
  }
  const fields = body as Record<string, unknown>;
  // Field names come from the wire contract the agent sends with, so neither side can drift.
  const read = (name: keyof JoinRequestWire, required: boolean): string | undefined => {
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
export function joinResponse(result: JoinResult): JoinResponseWire {
  return {
    bot_name: result.botName,
    user: result.user,
    expires: result.expires.toISOString(),
    tls_cert: result.tlsCert,
    ssh_cert: result.sshCert,
    tls_ca_certs: result.tlsCaCerts,
    ssh_ca_keys: result.sshCaKeys,
    join_attrs: result.attributes.response,
    ...(result.botInstance === undefined
      ? {}
      : { bot_instance_id: result.botInstance.id, generation: result.botInstance.generation }),
  };
}
