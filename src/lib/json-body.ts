/**
 * Reading the JSON body of `POST /v1/join` on plain node:http: media type, size limit and parse,
 * each failure a `JoinError` with its own code. This replaces express.json() on the one endpoint
 * where the service's throughput is decided (bench: express's router and body parser cost about
 * 0.2 ms of CPU per request on this machine, as much as the join's own signatures).
 *
 * Deliberately narrower than body-parser: UTF-8 JSON only, no `Content-Encoding` (a join body is
 * a few KiB; compression would only add a decompression-bomb surface).
 */
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { JoinError } from "../errors.ts";

/**
 * Checks `Content-Type` (`application/json`, charset UTF-8 if one is named) and
 * `Content-Encoding` (none), before any of the body is read.
 */
export function requireJsonBody(headers: IncomingHttpHeaders): void {
  const type = headers["content-type"];
  if (type === undefined) {
    throw new JoinError("unsupported_media_type", "the request body must be application/json");
  }
  const [mediaType = "", ...parameters] = type.split(";");
  if (mediaType.trim().toLowerCase() !== "application/json") {
    throw new JoinError("unsupported_media_type", "the request body must be application/json");
  }
  for (const parameter of parameters) {
    const equals = parameter.indexOf("=");
    if (parameter.slice(0, equals).trim().toLowerCase() !== "charset") continue;
    const charset = parameter
      .slice(equals + 1)
      .trim()
      .replace(/^"(.*)"$/, "$1")
      .toLowerCase();
    if (charset !== "utf-8") {
      throw new JoinError(
        "unsupported_media_type",
        "the request body must be UTF-8 application/json",
      );
    }
  }
  const encoding = headers["content-encoding"];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== "identity") {
    throw new JoinError(
      "unsupported_media_type",
      "the request body must not be compressed (Content-Encoding is not supported)",
    );
  }
}

/**
 * Reads the whole body, at most `limit` bytes. A `Content-Length` over the limit is refused before
 * reading; a body that grows past it while streaming is refused at that point (node:http drains
 * the rest after the response). A connection closed mid-body is `bad_request`.
 */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () =>
      new JoinError("payload_too_large", `the request body is larger than ${limit} bytes`);
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > limit) {
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const settle = (error: JoinError | undefined) => {
      if (settled) return;
      settled = true;
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onClose);
      req.off("close", onClose);
      if (error !== undefined) reject(error);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) settle(tooLarge());
      else chunks.push(chunk);
    };
    const onEnd = () => settle(undefined);
    const onClose = () => {
      if (!req.complete) settle(new JoinError("bad_request", "the request body is incomplete"));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onClose);
    req.on("close", onClose);
  });
}

/** Parses a UTF-8 body that must be a JSON object (a leading byte-order mark is allowed). */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let text = body.toString("utf8");
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new JoinError("bad_request", "the request body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new JoinError("bad_request", "the request body must be a JSON object");
  }
  return value as Record<string, unknown>;
}
