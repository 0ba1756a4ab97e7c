import * as assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { hasBody, readBounded } from "../../controller/payments/requestBody";

/** Sends `chunks` to a real server whose handler reads the body with `readBounded(req, max)`. */
async function readOver(
  chunks: Buffer[],
  max: number,
): Promise<{ read: Buffer | "too_large"; status: number }> {
  let read: Buffer | "too_large" = Buffer.alloc(0);
  const server = http.createServer(async (req, res) => {
    read = await readBounded(req, max);
    res.writeHead(read === "too_large" ? 413 : 200, { connection: "close" });
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, method: "POST" }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      for (const c of chunks) req.write(c);
      req.end();
    });
    return { read, status };
  } finally {
    server.close();
  }
}

describe("request bodies read within bounds", () => {
  it("reads a body of up to max bytes whole, across chunks", async () => {
    const { read, status } = await readOver([Buffer.from("abc"), Buffer.from("defg")], 7);
    assert.equal(status, 200);
    assert.deepEqual(read, Buffer.from("abcdefg"));
  });

  it("answers too_large one byte over max, and the refusal still reaches the client", async () => {
    const { read, status } = await readOver([Buffer.alloc(5, 1), Buffer.alloc(3, 2)], 7);
    assert.equal(read, "too_large");
    assert.equal(status, 413);
  });

  it("knows a request carries a body by its length or its transfer coding (RFC 9112 §6.3)", () => {
    const req = (headers: http.IncomingHttpHeaders) => ({ headers }) as http.IncomingMessage;
    assert.equal(hasBody(req({})), false);
    assert.equal(hasBody(req({ "content-length": "0" })), false);
    assert.equal(hasBody(req({ "content-length": "12" })), true);
    assert.equal(hasBody(req({ "transfer-encoding": "chunked" })), true);
  });
});
