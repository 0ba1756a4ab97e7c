import * as assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { readQuickTunnelUrl } from "../../controller/reconciler/quickTunnel";

describe("reading a quick tunnel's URL from cloudflared's metrics server", () => {
  let server: http.Server;
  let answer: { status: number; body: string };
  let base: string;

  before(async () => {
    server = http.createServer((req, res) => {
      if (req.url !== "/quicktunnel") return void res.writeHead(404).end();
      res.writeHead(answer.status, { "content-type": "application/json" }).end(answer.body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(() => new Promise((resolve) => server.close(resolve)));

  const read = (status: number, body: unknown) => {
    answer = { status, body: typeof body === "string" ? body : JSON.stringify(body) };
    return readQuickTunnelUrl(base, 2_000);
  };

  it("returns https://<hostname>, lowercased", async () => {
    assert.equal(
      await read(200, { hostname: "Some-Words.trycloudflare.com" }),
      "https://some-words.trycloudflare.com",
    );
  });

  it("returns nothing while the tunnel has no hostname yet", async () => {
    assert.equal(await read(200, { hostname: "" }), undefined);
    assert.equal(await read(200, {}), undefined);
  });

  it("refuses what is not a hostname, and non-2xx answers", async () => {
    await assert.rejects(read(200, { hostname: "evil.example.com/path?x" }), /not a hostname/);
    await assert.rejects(read(200, { hostname: "localhost" }), /not a hostname/);
    await assert.rejects(read(503, "{}"), /answered 503/);
  });
});
