/**
 * The diagnostics listener (`diag_addr`): Prometheus metrics, the health probes Kubernetes
 * calls, and a status page for people (`src/http/status-page.ts`). Kept apart from the join listener so it can stay on a private address and so a flood of
 * joins (rate-limited) never hides the service's own numbers.
 */
import express from "express";
import type { NextFunction, Request, Response } from "express";
import type { Metrics } from "../metrics/metrics.ts";
import { INTERNAL_MESSAGE } from "../errors.ts";
import { sendError } from "./error-response.ts";
import { renderStatusPage, STATUS_PAGE_HEADERS, type StatusPage } from "./status-page.ts";

export interface DiagDeps {
  readonly metrics: Metrics;
  /** True once resources and the CA are loaded; a failed reload keeps it true. */
  readonly isReady: () => boolean;
  /** Why the service is not ready, for the 503 body. */
  readonly notReadyMessage?: () => string;
  /** Receives unexpected errors (pino fits). Default: a JSON line on stderr. */
  readonly logger?: { error(details: { err: unknown }, message: string): void };
  /** Builds the status page's content; without it, `/` and `/status` are `not_found`. */
  readonly status?: () => Promise<StatusPage>;
}

/** Paths this app serves, each GET only (HEAD comes with GET). */
const ROUTES = ["/metrics", "/healthz", "/readyz"];
const STATUS_ROUTES = ["/", "/status"];

/**
 * Builds the diagnostics app; the caller listens on it.
 *
 * - `GET /metrics`: the exposition text of `deps.metrics`.
 * - `GET /healthz`: 200 `{"status":"ok"}` while the process runs.
 * - `GET /readyz`: 200 `{"status":"ready"}` once `isReady()`, else 503 `not_ready`.
 * - `GET /` and `GET /status` (with `deps.status`): the HTML status page, under a strict CSP.
 * - anything else: `not_found` (404) or `method_not_allowed` (405), in the registry's shape.
 */
export function createDiagApp(deps: DiagDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);

  app.get("/metrics", async (_req, res, next) => {
    try {
      const text = await deps.metrics.render();
      res.set("Cache-Control", "no-store").type(deps.metrics.contentType).send(text);
    } catch (err) {
      next(err);
    }
  });

  app.get("/healthz", (_req, res) => {
    res.set("Cache-Control", "no-store").json({ status: "ok" });
  });

  app.get("/readyz", (_req, res) => {
    res.set("Cache-Control", "no-store");
    if (deps.isReady()) {
      res.json({ status: "ready" });
    } else {
      sendError(
        res,
        "not_ready",
        deps.notReadyMessage?.() ?? "Resources or the certificate authority are not loaded yet.",
      );
    }
  });

  const status = deps.status;
  if (status !== undefined) {
    app.get(STATUS_ROUTES, async (_req, res, next) => {
      try {
        const page = renderStatusPage(await status());
        res.set(STATUS_PAGE_HEADERS).type("text/html; charset=utf-8").send(page);
      } catch (err) {
        next(err);
      }
    });
  }

  app.use((req, res) => {
    if (ROUTES.includes(req.path) || (status !== undefined && STATUS_ROUTES.includes(req.path))) {
      res.set("Allow", "GET, HEAD");
      sendError(res, "method_not_allowed", `${req.method} is not allowed here; use GET.`);
    } else {
      sendError(res, "not_found", "No such endpoint.");
    }
  });

  // Express needs all four parameters to know this is the error handler.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    if (deps.logger === undefined) {
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(
        `${JSON.stringify({ level: "error", msg: "diag request failed", err: message })}\n`,
      );
    } else {
      deps.logger.error({ err }, "diag request failed");
    }
    sendError(res, "internal", INTERNAL_MESSAGE);
  });

  return app;
}
