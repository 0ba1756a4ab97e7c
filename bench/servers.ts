/**
 * Child-process servers for the benchmarks: `upstream <port>` (200 JSON, /fail → 500, /health),
 * `bare-proxy <port> <upstream-port>` (the reference: a minimal Node reverse proxy) and
 * `sse-upstream <port>` (an OpenAI-style streamed completion: a chunk at once, then one every
 * 100 ms, the usage chunk last when asked with stream_options.include_usage; /health).
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
} else if (mode === "sse-upstream") {
  const CHUNKS = 5;
  http
    .createServer((req, res) => {
      if (req.url === "/health") return void res.writeHead(200).end("ok");
      const parts: Buffer[] = [];
      req.on("data", (c: Buffer) => parts.push(c));
      req.on("end", () => {
        let body: { stream_options?: { include_usage?: boolean } } = {};
        try {
          body = JSON.parse(Buffer.concat(parts).toString() || "{}");
        } catch {}
        res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        let n = 0;
        const chunk = () => {
          res.write(`data: ${JSON.stringify({ choices: [{ delta: { content: `t${n}` } }] })}\n\n`);
          if (++n < CHUNKS) return void setTimeout(chunk, 100);
          if (body.stream_options?.include_usage)
            res.write(
              `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 10, completion_tokens: CHUNKS, total_tokens: 10 + CHUNKS } })}\n\n`,
            );
          res.end("data: [DONE]\n\n");
        };
        chunk();
      });
    })
    .listen(port, "127.0.0.1");
} else {
  console.error(
    "usage: servers.ts upstream <port> | bare-proxy <port> <upstream-port> | sse-upstream <port>",
  );
  process.exit(2);
}
