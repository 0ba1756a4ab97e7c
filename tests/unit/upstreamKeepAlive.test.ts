/**
 * The gateway's upstream keep-alive pool against an upstream that, like uvicorn (LiteLLM's
 * server), closes idle connections after a few seconds and sends no Keep-Alive hint: a request
 * sent on a connection at the moment the upstream closes it fails with ECONNRESET ("socket hang
 * up"), which the buyer saw as 502. Real sockets on loopback; the upstream is a minimal HTTP/1.1
 * server so that its idle close is exactly what uvicorn does (Node's own server announces its
 * timeout in a Keep-Alive header, which hides the race).
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as net from "node:net";
import { proxyRequest, UPSTREAM_IDLE_MS } from "../../controller/gateway/proxy";

interface IdleClosingUpstream {
  readonly url: URL;
  /** Requests the upstream received (read off the wire). */
  received: number;
  close(): Promise<void>;
}

/**
 * HTTP/1.1, keep-alive without a Keep-Alive header, closes a connection idle for `idleMs`.
 * `resetSecond`: reads the second request of each connection and resets the connection instead
 * of answering (an upstream that fails after receiving the request).
 */
async function idleClosingUpstream(idleMs: number, resetSecond = false): Promise<IdleClosingUpstream> {
  const sockets = new Set<net.Socket>();
  const upstream = {
    url: new URL("http://127.0.0.1/"),
    received: 0,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => undefined);
    let buffered = "";
    let served = 0;
    let timer: NodeJS.Timeout | undefined;
    const idle = () => {
      clearTimeout(timer);
      timer = setTimeout(() => socket.end(), idleMs);
    };
    idle();
    socket.on("data", (chunk) => {
      clearTimeout(timer);
      buffered += chunk.toString("latin1");
      for (;;) {
        const end = buffered.indexOf("\r\n\r\n");
        if (end < 0) return;
        const length = Number(/content-length:\s*(\d+)/i.exec(buffered.slice(0, end))?.[1] ?? 0);
        if (buffered.length < end + 4 + length) return;
        buffered = buffered.slice(end + 4 + length);
        upstream.received++;
        if (resetSecond && ++served === 2) return void socket.resetAndDestroy();
        socket.write("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok");
        idle();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  upstream.url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  return upstream;
}

/** A gateway-like server proxying every request to `target`; `paid` adds a settle hook. */
async function proxyServer(target: URL, paid: { settles: number } | undefined) {
  const server = http.createServer((req, res) => {
    void proxyRequest(
      req,
      res,
      target,
      { proto: "http" },
      paid
        ? {
            beforeResponse: () => {
              paid.settles++;
              return { "payment-response": "receipt" };
            },
          }
        : {},
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Request, wait about the upstream's idle timeout (spread over ±`spreadMs`), request again. */
async function pairsAroundIdleClose(
  url: string,
  init: RequestInit,
  idleMs: number,
  spreadMs: number,
  pairs: number,
): Promise<number[]> {
  const statuses: number[] = [];
  const send = async () => {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    statuses.push(res.status);
  };
  for (let i = 0; i < pairs; i++) {
    await send();
    await new Promise((r) => setTimeout(r, idleMs - spreadMs + (2 * spreadMs * i) / pairs));
    await send();
  }
  return statuses;
}

describe("gateway → upstream keep-alive: no 502 when the upstream closes an idle connection", function () {
  this.timeout(60_000);

  it("drops idle upstream connections before a uvicorn-like upstream does (paid POST, settled once per request)", async () => {
    // The upstream's idle timeout is above the gateway's, as uvicorn's 5 s is.
    const idleMs = UPSTREAM_IDLE_MS + 300;
    const upstream = await idleClosingUpstream(idleMs);
    const paid = { settles: 0 };
    const gateway = await proxyServer(upstream.url, paid);
    try {
      const init = { method: "POST", body: '{"model":"m"}', headers: { "content-type": "application/json" } };
      const statuses = await pairsAroundIdleClose(`${gateway.url}/v1/chat/completions`, init, idleMs, 60, 8);
      assert.deepEqual(
        statuses.filter((s) => s !== 200),
        [],
        `every request answered 200 (${statuses.length} sent)`,
      );
      assert.equal(paid.settles, statuses.length, "settled once per request");
      assert.equal(upstream.received, statuses.length, "each request reached the upstream exactly once");
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it("retries a free, bodyless request once on a fresh connection when its kept-alive one was reset", async () => {
    // Shorter than the gateway's idle timeout: only the retry can save these requests.
    const idleMs = 300;
    const upstream = await idleClosingUpstream(idleMs);
    const gateway = await proxyServer(upstream.url, undefined);
    try {
      const statuses = await pairsAroundIdleClose(`${gateway.url}/free/status`, {}, idleMs, 40, 40);
      assert.deepEqual(
        statuses.filter((s) => s !== 200),
        [],
        `every request answered 200 (${statuses.length} sent)`,
      );
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });

  it("never sends a paid request upstream twice: a reset after the upstream read it is a 502, not a retry", async () => {
    // Deterministic: the second request on a connection is read, then the connection is reset.
    const upstream = await idleClosingUpstream(60_000, true);
    const paid = { settles: 0 };
    const paidGateway = await proxyServer(upstream.url, paid);
    const freeGateway = await proxyServer(upstream.url, undefined);
    const status = async (url: string) => (await fetch(url, { signal: AbortSignal.timeout(10_000) })).status;
    try {
      assert.equal(await status(`${paidGateway.url}/paid`), 200);
      assert.equal(await status(`${paidGateway.url}/paid`), 502, "reset on the reused connection");
      assert.equal(
        upstream.received,
        2,
        "the paid request reached the upstream once, and was not sent again",
      );
      assert.equal(paid.settles, 1, "only the answered request was settled");
      // The same for a free GET is retried on a fresh connection (where it is the first request).
      assert.equal(await status(`${freeGateway.url}/free`), 200);
      assert.equal(await status(`${freeGateway.url}/free`), 200, "retried and answered");
      assert.equal(upstream.received, 5, "the free request was sent twice: once reset, once answered");
    } finally {
      await paidGateway.close();
      await freeGateway.close();
      await upstream.close();
    }
  });
});
