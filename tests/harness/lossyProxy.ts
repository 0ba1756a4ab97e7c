/**
 * A TCP relay on loopback that loses answers: in front of a server, it passes everything through
 * except the answers to the next `drop` requests that carry a payment (a `payment-signature`
 * header). Those it reads from the server in full and never delivers: it closes the client's
 * connection instead, as a network that failed after the server answered. The server sees a
 * normal, completed exchange.
 */
import * as net from "node:net";

export interface LossyProxy {
  readonly url: string;
  /** Answers to paid requests still to lose. */
  drop: number;
  /** Answers lost so far. */
  readonly dropped: number;
  close(): Promise<void>;
}

export async function startLossyProxy(targetPort: number, drop = 0): Promise<LossyProxy> {
  const sockets = new Set<net.Socket>();
  const state = { drop, dropped: 0 };
  const server = net.createServer((client) => {
    const upstream = net.connect(targetPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    for (const s of [client, upstream]) s.on("close", () => sockets.delete(s));
    /** The request on this connection carries a payment whose answer is to be lost. */
    let losing = false;
    let seen = "";
    client.on("data", (chunk: Buffer) => {
      // Request heads only need the header names; keep a bounded tail across chunk edges.
      seen = (seen + chunk.toString("latin1")).slice(-16_384);
      if (state.drop > 0 && /\r\npayment-signature:/i.test(seen)) {
        state.drop--;
        losing = true;
        seen = "";
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!losing) {
        client.write(chunk);
        return;
      }
      if (!client.destroyed) {
        state.dropped++;
        client.destroy();
      }
      // The rest of the answer is read and discarded, so the server finishes it normally.
    });
    client.on("error", () => upstream.end());
    client.on("close", () => {
      if (!losing) upstream.end();
      else setTimeout(() => upstream.end(), 2_000).unref();
    });
    upstream.on("error", () => client.destroy());
    upstream.on("end", () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    get drop() {
      return state.drop;
    },
    set drop(n: number) {
      state.drop = n;
    },
    get dropped() {
      return state.dropped;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
