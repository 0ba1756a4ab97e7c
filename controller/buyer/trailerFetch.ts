/**
 * A fetch over node:http(s) that keeps the response's HTTP trailers.
 *
 * A streamed `upto` answer is settled when the stream ends, so its receipt (PAYMENT-RESPONSE)
 * arrives as an HTTP trailer; WHATWG fetch drops trailers. @x402/fetch takes any fetch function,
 * so the buyer hands it this one and reads the trailers of the response it gets back.
 *
 * Deliberately plain: no redirects are followed (a paid request is never re-sent elsewhere) and
 * no content encoding is asked for (the body is passed on as it comes).
 */
import * as http from "node:http";
import * as https from "node:https";
import { Readable } from "node:stream";

const trailersByResponse = new WeakMap<Response, Promise<Record<string, string>>>();

/**
 * The trailers of a response returned by {@link fetchKeepingTrailers}, lower-case names; they
 * resolve once its body was read to the end, or to `{}` when the body stopped before it.
 */
export function trailersOf(response: Response): Promise<Record<string, string>> | undefined {
  return trailersByResponse.get(response);
}

/** Whether the response announced a trailer named `name` (its `Trailer` header). */
export function announcesTrailer(response: Response, name: string): boolean {
  const announced = response.headers.get("trailer") ?? "";
  return announced
    .split(",")
    .map((n) => n.trim().toLowerCase())
    .includes(name.toLowerCase());
}

export async function fetchKeepingTrailers(
  input: string | URL | Request,
  init?: RequestInit,
): Promise<Response> {
  const request = input instanceof Request && init === undefined ? input : new Request(input, init);
  const url = new URL(request.url);
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new TypeError(`fetchKeepingTrailers: unsupported protocol ${url.protocol} in ${url.href}`);
  const body = request.body ? Buffer.from(await request.arrayBuffer()) : undefined;
  const headers: Record<string, string> = {};
  request.headers.forEach((value, key) => {
    headers[key] = value;
  });
  if (body) headers["content-length"] = String(body.length);
  const send = url.protocol === "https:" ? https.request : http.request;

  return new Promise<Response>((resolve, reject) => {
    const outgoing = send(url, { method: request.method, headers }, (incoming) => {
      const trailers = new Promise<Record<string, string>>((done) => {
        incoming.once("end", () => done(flatten(incoming.trailers)));
        incoming.once("close", () => done({}));
      });
      const responseHeaders = new Headers();
      for (const [key, value] of Object.entries(incoming.headers)) {
        if (value === undefined) continue;
        for (const v of Array.isArray(value) ? value : [value]) responseHeaders.append(key, v);
      }
      const status = incoming.statusCode ?? 502;
      const bodyless = request.method === "HEAD" || status === 204 || status === 304;
      if (bodyless) incoming.resume();
      const response = new Response(
        bodyless ? null : (Readable.toWeb(incoming) as unknown as ReadableStream<Uint8Array>),
        { status, statusText: incoming.statusMessage ?? "", headers: responseHeaders },
      );
      trailersByResponse.set(response, trailers);
      resolve(response);
    });
    outgoing.once("error", reject);
    const signal = request.signal;
    if (signal.aborted) outgoing.destroy(signal.reason as Error);
    else signal.addEventListener("abort", () => outgoing.destroy(signal.reason as Error), { once: true });
    outgoing.end(body);
  });
}

function flatten(trailers: NodeJS.Dict<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(trailers))
    if (value !== undefined) out[key.toLowerCase()] = value;
  return out;
}
