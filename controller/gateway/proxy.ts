/**
 * A streaming reverse proxy: request and response bodies are piped, never buffered whole.
 * Hop-by-hop headers are dropped in both directions, X-Forwarded-* are set, and the request
 * always carries a User-Agent.
 */
import * as http from "node:http";
import * as https from "node:https";
import { errorMessage } from "../shared/log";
import { GATEWAY_USER_AGENT } from "../shared/outbound";
import { GateResponse, type ProxyOptions, type ProxyOutcome } from "./paymentGate";

const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Removes hop-by-hop headers, including any listed in the Connection header. */
export function stripHopByHop(
  headers: http.IncomingHttpHeaders | http.OutgoingHttpHeaders,
): Record<string, string | string[]> {
  const listed = new Set(
    String(headers.connection ?? "")
      .split(",")
      .map((h) => h.trim().toLowerCase())
      .filter(Boolean),
  );
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (value === undefined || HOP_BY_HOP.has(lower) || listed.has(lower)) continue;
    out[lower] = Array.isArray(value) ? value.map(String) : String(value);
  }
  return out;
}

export interface ForwardContext {
  readonly clientIp?: string | undefined;
  readonly proto: "http" | "https";
  readonly host?: string | undefined;
  /** Path prefix stripped before forwarding (X-Forwarded-Prefix). */
  readonly prefix?: string | undefined;
}

/** Headers for the upstream request. */
export function upstreamRequestHeaders(
  incoming: http.IncomingHttpHeaders,
  target: URL,
  ctx: ForwardContext,
  strip: readonly string[] = [],
): Record<string, string | string[]> {
  const headers = stripHopByHop(incoming);
  for (const name of strip) delete headers[name.toLowerCase()];
  delete headers.host;
  const priorFor = headers["x-forwarded-for"];
  const chain = [priorFor ? String(priorFor) : "", ctx.clientIp ?? ""].filter(Boolean).join(", ");
  if (chain) headers["x-forwarded-for"] = chain;
  headers["x-forwarded-proto"] = ctx.proto;
  if (ctx.host) headers["x-forwarded-host"] = ctx.host;
  if (ctx.prefix) headers["x-forwarded-prefix"] = ctx.prefix;
  if (!headers["user-agent"]) headers["user-agent"] = GATEWAY_USER_AGENT;
  headers.host = target.host;
  return headers;
}

function sendError(res: http.ServerResponse, status: number, error: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${JSON.stringify({ error, message })}\n`;
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
  });
  res.end(body);
}

/**
 * How long an upstream connection may sit idle in the pool before the gateway closes it. Below
 * the keep-alive of common upstream servers (uvicorn, which runs LiteLLM, and Node close idle
 * connections after 5 s, gunicorn after 2 s; uvicorn says nothing in a Keep-Alive header, so
 * Node's agent cannot honour it): otherwise the gateway can send a request on a connection the
 * upstream is closing in that instant and gets ECONNRESET ("socket hang up"), a 502 for the
 * buyer. While a connection carries a request the request's own timeout applies instead.
 */
export const UPSTREAM_IDLE_MS = 1_000;

/**
 * Upstream connections: kept alive and reused most-recent-first, so a busy route keeps a small
 * set of warm sockets instead of cycling through many.
 */
const POOL = { keepAlive: true, maxSockets: 256, scheduling: "lifo", timeout: UPSTREAM_IDLE_MS } as const;
const AGENTS = { "http:": new http.Agent(POOL), "https:": new https.Agent(POOL) } as const;

const IDEMPOTENT_WITHOUT_BODY = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Whether a request may be sent again on a fresh connection after its kept-alive one was reset
 * before any answer (the upstream closed it idle as the request went out). Only a free request
 * with an idempotent method and no body: it can be re-sent as it was (nothing of it was consumed)
 * and RFC 9110 §9.2.2 allows retrying it. A paid request is never retried: the upstream may have
 * received it, and it must not do the paid work twice.
 */
function retryable(req: http.IncomingMessage, options: ProxyOptions): boolean {
  if (options.beforeResponse || options.respond || options.body) return false;
  if (!IDEMPOTENT_WITHOUT_BODY.has(req.method ?? "")) return false;
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] === undefined && (length === undefined || length === "0");
}

/** The upstream reset a kept-alive connection before answering anything on it. */
function resetOnReuse(upstreamReq: http.ClientRequest, err: NodeJS.ErrnoException): boolean {
  return upstreamReq.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE");
}

/** Forwards `req` to `target` and streams the answer to `res`. */
export function proxyRequest(
  req: http.IncomingMessage,
  res: http.ServerResponse,
  target: URL,
  ctx: ForwardContext,
  options: ProxyOptions = {},
  timeoutMs = 300_000,
): Promise<ProxyOutcome> {
  return new Promise((resolve) => {
    let settled = false;
    /** The response went to the `respond` option, which settles the outcome. */
    let handedOver = false;
    const finish = (outcome: ProxyOutcome) => {
      if (!settled) {
        settled = true;
        resolve(outcome);
      }
    };
    const transport = target.protocol === "https:" ? https : http;
    const headers = withBodyLength(
      upstreamRequestHeaders(req.headers, target, ctx, options.stripRequestHeaders),
      options.body,
    );
    const mayRetry = retryable(req, options);
    /** One attempt; `fresh`: on a new connection of its own (the retry), not from the pool. */
    const send = (fresh: boolean): http.ClientRequest => {
      const attempt = transport.request({
        protocol: target.protocol,
        hostname: target.hostname.replace(/^\[|\]$/g, ""),
        port: target.port || undefined,
        path: `${target.pathname}${target.search}`,
        ...(target.username
          ? { auth: `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}` }
          : {}),
        method: req.method,
        headers,
        agent: fresh ? false : target.protocol === "https:" ? AGENTS["https:"] : AGENTS["http:"],
        timeout: timeoutMs,
      });
      attempt.on("timeout", () => attempt.destroy(new Error(`no answer within ${timeoutMs} ms`)));
      attempt.on("error", (err: NodeJS.ErrnoException) => {
        if (settled || handedOver) return;
        if (!fresh && mayRetry && !answered && resetOnReuse(attempt, err)) {
          upstreamReq = send(true);
          upstreamReq.end(options.body);
          return;
        }
        const status = /within/.test(err.message) ? 504 : 502;
        sendError(res, status, "upstream_unavailable", `the upstream did not answer: ${err.message}`);
        finish({ status, completed: false, clientAborted: false, error: err.message });
      });
      attempt.on("response", onResponse);
      return attempt;
    };
    let answered = false;
    res.on("close", () => {
      if (!res.writableFinished) {
        upstreamReq.destroy();
        // A `respond` handler (metered settlement) that took the response runs to its end and
        // reports the outcome itself.
        if (!handedOver) finish({ status: res.statusCode, completed: false, clientAborted: true });
      }
    });
    const relay = (upstreamRes: http.IncomingMessage, extra: Record<string, string> | undefined) => {
      if (res.destroyed) {
        upstreamRes.destroy();
        return;
      }
      const status = upstreamRes.statusCode ?? 502;
      const sent = extra
        ? { ...stripHopByHop(upstreamRes.headers), ...extra }
        : stripHopByHop(upstreamRes.headers);
      res.writeHead(status, sent);
      // Streams (no length: SSE, chunked) get their head at once; sized bodies go out with it.
      if (upstreamRes.headers["content-length"] === undefined) res.flushHeaders();
      const keeping = options.keep !== undefined ? keepBody(upstreamRes, options.keep) : undefined;
      upstreamRes.pipe(res);
      upstreamRes.on("error", () => res.destroy());
      res.on("finish", () => {
        const body = keeping?.();
        finish({
          status,
          completed: true,
          clientAborted: false,
          ...(keeping ? { kept: body ? { status, headers: sent, body } : "too_large" } : {}),
        });
      });
    };
    const refuse = (upstreamRes: http.IncomingMessage, err: unknown) => {
      upstreamRes.destroy();
      const message = errorMessage(err);
      if (err instanceof GateResponse && !res.headersSent) {
        res.writeHead(err.status, {
          ...err.headers,
          "content-length": String(Buffer.byteLength(err.body)),
        });
        res.end(err.body);
        finish({ status: err.status, completed: false, clientAborted: false, error: message });
        return;
      }
      sendError(res, 502, "gateway_error", message);
      finish({ status: 502, completed: false, clientAborted: false, error: message });
    };
    function onResponse(upstreamRes: http.IncomingMessage): void {
      answered = true;
      const { respond } = options;
      if (respond) {
        handedOver = true;
        respond(upstreamRes, res).then(finish, (err) => refuse(upstreamRes, err));
        return;
      }
      const hook = options.beforeResponse;
      // Free routes have no hook: relay in the same tick.
      if (!hook) {
        relay(upstreamRes, undefined);
        return;
      }
      Promise.resolve()
        .then(() => hook({ status: upstreamRes.statusCode ?? 502, headers: upstreamRes.headers }))
        .then(
          (extra) => relay(upstreamRes, extra ?? undefined),
          (err) => refuse(upstreamRes, err),
        );
    }
    let upstreamReq = send(false);
    if (options.body) upstreamReq.end(options.body);
    else req.pipe(upstreamReq);
  });
}

/** Copies what `stream` sends, up to `max` bytes; the returned function gives it (undefined: over). */
function keepBody(stream: http.IncomingMessage, max: number): () => Buffer | undefined {
  let chunks: Buffer[] | undefined = [];
  let size = 0;
  stream.on("data", (chunk: Buffer) => {
    if (!chunks) return;
    size += chunk.length;
    if (size > max) chunks = undefined;
    else chunks.push(chunk);
  });
  return () => (chunks ? Buffer.concat(chunks) : undefined);
}

/** A replaced body is sent whole, with its own length. */
function withBodyLength(
  headers: Record<string, string | string[]>,
  body: Buffer | undefined,
): Record<string, string | string[]> {
  if (!body) return headers;
  return { ...headers, "content-length": String(body.length) };
}
