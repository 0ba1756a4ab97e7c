/** Reading request and response bodies within bounds, and waiting for a response to end. */
import type * as http from "node:http";

/** Whether a request says it carries a body (RFC 9112 §6.3: a length, or a transfer coding). */
export function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

/**
 * A request's body, up to `max` bytes. Over that, the rest is left to drain (the stream is not
 * destroyed, so the refusal still reaches the client) and the answer is "too_large".
 */
export function readBounded(req: http.IncomingMessage, max: number): Promise<Buffer | "too_large"> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on("data", (chunk: Buffer) => {
      if (over) return;
      size += chunk.length;
      if (size <= max) chunks.push(chunk);
      else {
        over = true;
        chunks.length = 0;
        resolve("too_large");
      }
    });
    req.once("end", () => resolve(Buffer.concat(chunks)));
    req.once("error", reject);
  });
}

/** An upstream's whole answer; over `max` bytes it is destroyed and this throws (`what` says whose). */
export async function readAll(stream: http.IncomingMessage, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > max) {
      stream.destroy();
      throw new Error(`the upstream's answer is over ${max} bytes; ${what}`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Resolves once the response is sent whole or its connection closed. */
export function finished(res: http.ServerResponse): Promise<void> {
  if (res.writableFinished || res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    res.once("finish", resolve);
    res.once("close", resolve);
  });
}
