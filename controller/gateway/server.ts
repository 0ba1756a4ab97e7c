/**
 * The gateway's HTTP handlers. Public: catalogs, the storefront, health, and the routes of
 * ready offers; everything else is 404 (fail closed). Internal (a separate port): the routes
 * report the controller reads for PaymentGateReady.
 */
import type * as http from "node:http";
import { REGISTRATION_PATH, X402_DISCOVERY_PATH } from "../../api/contract";
import { drainPhase } from "../../api/drain";
import { exactJson } from "../../api/exactJson";
import { SIGNED_IN_ADDRESS_HEADER, SignInGate } from "../payments/signIn";
import { sendJson } from "../shared/http";
import { errorMessage, type LogFn, REQUEST_ID_HEADER, requestIdFrom } from "../shared/log";
import { INTERNAL_ROUTES_PATH } from "../shared/routesReport";
import { FAVICON_ICO } from "./catalog/favicon";
import { buildCatalog, type Catalog } from "./catalog/model";
import { renderOpenApi } from "./catalog/openapi";
import { renderRegistration } from "./catalog/registration";
import { renderServicesJson } from "./catalog/servicesJson";
import { renderSkillMd } from "./catalog/skillMd";
import { renderStorefront } from "./catalog/storefront";
import { renderX402Discovery } from "./catalog/wellKnownX402";
import { OfferLimiter } from "./limits";
import type { GatedRoute, PaymentGate, ProxyFn } from "./paymentGate";
import { type ForwardContext, proxyRequest } from "./proxy";
import { decideRoute, type HeldOffer, matchOfferByHost, matchOfferByPath } from "./routing";
import type { RouteState } from "./state";

export interface GatewayOptions {
  readonly state: RouteState;
  readonly gate: PaymentGate;
  /** The public origin for catalogs; derived from the Host header when absent. */
  readonly publicBaseUrl?: string | undefined;
  readonly upstreamTimeoutMs?: number;
  readonly log: LogFn;
  /** Prometheus metrics, served on the internal port only. */
  readonly metrics?: { readonly contentType: string; render(): Promise<string> };
  /** Enforces offers' `spec.limits`; one per gateway process (limits are per replica). */
  readonly limiter?: OfferLimiter;
  /** Sign-in routes (`gate: auth`); one per gateway process (it remembers used nonces). */
  readonly signIn?: SignInGate;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const HOST_RE = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9a-fA-F:.]+\](:\d{1,5})?$/;

function requestProto(req: http.IncomingMessage): "http" | "https" {
  const [forwarded = ""] = String(req.headers["x-forwarded-proto"] ?? "").split(",");
  return forwarded.trim() === "https" ? "https" : "http";
}

/** PUBLIC_BASE_URL if set, else `<proto>://<Host>` from the request (a malformed Host is ignored). */
export function publicBase(req: http.IncomingMessage, configured: string | undefined): string {
  if (configured) return configured.replace(/\/+$/, "");
  const host = req.headers.host && HOST_RE.test(req.headers.host) ? req.headers.host : "localhost";
  return `${requestProto(req)}://${host}`;
}

function send(
  res: http.ServerResponse,
  status: number,
  type: string,
  body: string | Buffer,
  head: boolean,
  extra: Record<string, string> = {},
): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": String(Buffer.byteLength(body)),
    "x-content-type-options": "nosniff",
    ...extra,
  });
  res.end(head ? undefined : body);
}

const CATALOG_HEADERS = { "access-control-allow-origin": "*", "cache-control": "no-cache" };

function notFound(res: http.ServerResponse): void {
  sendJson(res, 404, {
    error: "not_found",
    message: "no such service or page; see /api/services.json for what is offered",
  });
}

export function createPublicHandler(options: GatewayOptions): Handler {
  const opts: GatewayOptions = {
    ...options,
    limiter: options.limiter ?? new OfferLimiter(),
    signIn: options.signIn ?? new SignInGate(),
  };
  const catalogFor = (req: http.IncomingMessage): Catalog =>
    buildCatalog(opts.state.publicOffers(), publicBase(req, opts.publicBaseUrl), opts.state.identity());

  const pages: Record<string, (req: http.IncomingMessage, res: http.ServerResponse, head: boolean) => void> =
    {
      "/": (req, res, head) =>
        send(res, 200, "text/html; charset=utf-8", renderStorefront(catalogFor(req)), head, {
          "cache-control": "no-cache",
          "content-security-policy":
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src 'self' https: data:",
        }),
      "/api/services.json": (req, res, head) =>
        send(
          res,
          200,
          "application/json; charset=utf-8",
          `${exactJson(renderServicesJson(catalogFor(req)), 2)}\n`,
          head,
          CATALOG_HEADERS,
        ),
      "/skill.md": (req, res, head) =>
        send(res, 200, "text/markdown; charset=utf-8", renderSkillMd(catalogFor(req)), head, CATALOG_HEADERS),
      "/openapi.json": (req, res, head) =>
        send(
          res,
          200,
          "application/json; charset=utf-8",
          `${exactJson(renderOpenApi(catalogFor(req)), 2)}\n`,
          head,
          CATALOG_HEADERS,
        ),
      [REGISTRATION_PATH]: (req, res, head) =>
        send(
          res,
          200,
          "application/json; charset=utf-8",
          `${exactJson(renderRegistration(catalogFor(req)), 2)}\n`,
          head,
          CATALOG_HEADERS,
        ),
      [X402_DISCOVERY_PATH]: (req, res, head) =>
        send(
          res,
          200,
          "application/json; charset=utf-8",
          `${JSON.stringify(renderX402Discovery(catalogFor(req)), null, 2)}\n`,
          head,
          CATALOG_HEADERS,
        ),
      "/favicon.ico": (_req, res, head) =>
        send(res, 200, "image/x-icon", FAVICON_ICO, head, { "cache-control": "public, max-age=86400" }),
      "/healthz": (_req, res, head) => send(res, 200, "text/plain; charset=utf-8", "ok\n", head),
      "/readyz": (_req, res, head) => {
        const ok = opts.state.synced();
        send(res, ok ? 200 : 503, "text/plain; charset=utf-8", ok ? "ok\n" : "syncing\n", head);
      },
    };

  return (req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://gateway.invalid");
    } catch {
      sendJson(res, 400, { error: "bad_request", message: "the request URL cannot be parsed" });
      return;
    }
    const path = url.pathname;
    const method = (req.method ?? "GET").toUpperCase();
    const page = pages[path];
    if (page) {
      if (method === "OPTIONS") {
        res
          .writeHead(204, { ...CATALOG_HEADERS, "access-control-allow-methods": "GET, HEAD, OPTIONS" })
          .end();
        return;
      }
      if (method !== "GET" && method !== "HEAD") {
        res.setHeader("allow", "GET, HEAD, OPTIONS");
        sendJson(res, 405, { error: "method_not_allowed", message: `${path} answers GET and HEAD only` });
        return;
      }
      page(req, res, method === "HEAD");
      return;
    }
    const offers = opts.state.publicOffers();
    const byHost = matchOfferByHost(offers, req.headers.host);
    const match = byHost ? { offer: byHost, subPath: path } : matchOfferByPath(offers, path);
    // A drained offer's route is gone even while its object still exists (api/drain.ts).
    if (!match || drainPhase(match.offer.end, Date.now()) === "gone") {
      notFound(res);
      return;
    }
    // One id per offer request, from the client when well-formed: the upstream receives it, the
    // payment gate logs it with the settlement, and the client sees it in the response.
    const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    req.headers[REQUEST_ID_HEADER] = requestId;
    res.setHeader(REQUEST_ID_HEADER, requestId);
    void serveOffer(req, res, match.offer, match.subPath, url, byHost !== undefined, opts).catch((err) => {
      opts.log(`gateway: ${method} ${path} failed: ${errorMessage(err)}`, {
        level: "error",
        requestId,
        offer: match.offer.name,
      });
      if (!res.headersSent)
        sendJson(res, 500, { error: "gateway_error", message: "the gateway failed to handle this request" });
      else res.destroy();
    });
  };
}

async function serveOffer(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  offer: HeldOffer,
  subPath: string,
  url: URL,
  viaHostname: boolean,
  opts: GatewayOptions,
): Promise<void> {
  const upstream = offer.upstream;
  if (!upstream) {
    sendJson(res, 503, {
      error: "upstream_unresolved",
      message: `the upstream of ${offer.name} cannot be resolved`,
    });
    return;
  }
  // Before any payment work: a request over the offer's limits is never verified or proxied.
  const admission = offer.spec.limits
    ? opts.limiter?.admit(`${offer.namespace}/${offer.name}`, offer.spec.limits)
    : undefined;
  if (admission && !admission.admitted) {
    req.resume();
    res.setHeader("retry-after", String(admission.retryAfterSeconds));
    sendJson(res, 429, { error: admission.reason, message: admission.message });
    return;
  }
  if (admission?.limited) res.once("close", admission.release);
  const decision = decideRoute(offer.spec.routes, subPath, req.method ?? "GET");
  const base = publicBase(req, opts.publicBaseUrl);
  const route: GatedRoute = {
    ...decision,
    subPath,
    resourceUrl: `${base}${viaHostname ? "" : offer.spec.path}${subPath === "/" ? "/" : subPath}${url.search}`,
  };
  const target = new URL(upstream.toString());
  target.pathname = `${upstream.pathname.replace(/\/+$/, "")}${subPath}`;
  target.search = url.search;
  const ctx: ForwardContext = {
    clientIp: req.socket.remoteAddress,
    proto: requestProto(req),
    host: req.headers.host,
    prefix: viaHostname ? undefined : offer.spec.path,
  };
  // Only the sign-in gate says who signed in: a client's own claim never reaches the upstream.
  delete req.headers[SIGNED_IN_ADDRESS_HEADER];
  const proxy: ProxyFn = (options) => proxyRequest(req, res, target, ctx, options, opts.upstreamTimeoutMs);
  if (decision.gate === "free") {
    await proxy();
    return;
  }
  if (decision.gate === "auth") {
    await (opts.signIn ?? new SignInGate()).handle(req, res, offer, route, base, proxy);
    return;
  }
  await opts.gate.handle(req, res, offer, route, proxy);
}

export function createInternalHandler(opts: GatewayOptions): Handler {
  return (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === INTERNAL_ROUTES_PATH && req.method === "GET") {
      sendJson(res, 200, opts.state.report(opts.gate.name));
    } else if (path === "/healthz") {
      send(res, 200, "text/plain; charset=utf-8", "ok\n", false);
    } else if (path === "/metrics" && req.method === "GET" && opts.metrics) {
      opts.metrics.render().then(
        (text) => send(res, 200, opts.metrics!.contentType, text, false),
        (err) => sendJson(res, 500, { error: "metrics_failed", message: errorMessage(err) }),
      );
    } else {
      sendJson(res, 404, { error: "not_found" });
    }
  };
}
