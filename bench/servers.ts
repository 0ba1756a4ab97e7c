/**
 * Child-process servers for the gateway benchmark: `upstream <port>` (200 JSON, /fail → 500,
 * /health) and `bare-proxy <port> <upstream-port>` (the reference: a minimal Node reverse proxy).
 */
import * as http from "node:http";

const [mode, portArg, upstreamArg] = process.argv.slice(2);
const port = Number(portArg);

if (mode === "upstream") {
  const body = JSON.stringify({ ok: true, data: "x".repeat(256) });
  http
    .createServer((req, res) => {
      const status = req.url?.startsWith("/fail") ? 500 : 200;
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
    })
    .listen(port, "127.0.0.1");
} else if (mode === "bare-proxy") {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  http
    .createServer((req, res) => {
      const up = http.request(
        {
          host: "127.0.0.1",
          port: Number(upstreamArg),
          path: req.url,
          method: req.method,
          headers: req.headers,
          agent,
        },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
        },
      );
      up.on("error", () => res.writeHead(502).end());
      req.pipe(up);
    })
    .listen(port, "127.0.0.1");
} else {
  console.error("usage: servers.ts upstream <port> | bare-proxy <port> <upstream-port>");
  process.exit(2);
}
