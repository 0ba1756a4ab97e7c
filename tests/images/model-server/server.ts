// An OpenAI-compatible model server for tests: deterministic answers, token usage in the JSON
// body and in the last SSE chunk, real incremental streaming, and a request log tests can read.
// No dependencies: the image runs this file with Node's built-in type stripping
// (`node server.ts --listen`), and tests can also start it in-process.
import * as http from "node:http";
import type { AddressInfo } from "node:net";

export interface ModelServerOptions {
  /** Model ids listed by /v1/models (any model is answered). */
  models?: string[];
  /** Delay between streamed chunks. */
  chunkDelayMs?: number;
}

/** What the server saw, for tests: GET /test/requests (POST /test/reset clears it). */
export interface SeenRequest {
  method: string;
  path: string;
  model?: string;
  stream?: boolean;
  /** Whether an Authorization header was sent (never its value). */
  authorization: boolean;
}

interface ChatMessage {
  role?: string;
  content?: unknown;
}

/** Whitespace-separated words: the "tokens" of this server, so usage is predictable. */
function countTokens(text: string): number {
  return text.split(/\s+/).filter(Boolean).length;
}

function messageText(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content))
    return content.map((part) => (typeof part?.text === "string" ? (part.text as string) : "")).join(" ");
  return "";
}

/** The fixed answer: names the model and echoes the last user message. */
export function answerFor(model: string, messages: ChatMessage[]): string {
  const lastUser = [...messages].reverse().find((m) => m.role === "user");
  return `model ${model} answers: ${messageText(lastUser?.content).trim() || "(empty)"}`;
}

function usageFor(messages: ChatMessage[], answer: string) {
  const prompt = messages.reduce((n, m) => n + countTokens(messageText(m.content)), 0);
  const completion = countTokens(answer);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function createModelServer(opts: ModelServerOptions = {}): http.Server & { seen: SeenRequest[] } {
  const models = opts.models ?? ["test-model"];
  const chunkDelayMs = opts.chunkDelayMs ?? 15;
  const seen: SeenRequest[] = [];
  let sequence = 0;

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://model-server");
    // Paths with and without the /v1 prefix, as OpenAI-compatible clients use both.
    const route = url.pathname.replace(/^\/v1(?=\/)/, "");
    try {
      if (req.method === "GET" && (url.pathname === "/health" || url.pathname === "/healthz")) {
        sendJson(res, 200, { status: "ok" });
        return;
      }
      if (url.pathname === "/test/requests" && req.method === "GET") {
        sendJson(res, 200, { count: seen.length, requests: seen });
        return;
      }
      if (url.pathname === "/test/reset" && req.method === "POST") {
        seen.length = 0;
        sendJson(res, 200, { count: 0 });
        return;
      }
      const record: SeenRequest = {
        method: req.method ?? "",
        path: url.pathname,
        authorization: req.headers.authorization !== undefined,
      };
      seen.push(record);
      if (req.method === "GET" && route === "/models") {
        sendJson(res, 200, {
          object: "list",
          data: models.map((id) => ({ id, object: "model", created: 0, owned_by: "obol-test" })),
        });
        return;
      }
      if (req.method !== "POST" || route !== "/chat/completions") {
        sendJson(res, 404, {
          error: { message: `no route ${req.method} ${url.pathname}`, type: "not_found" },
        });
        return;
      }
      let body: {
        model?: unknown;
        messages?: unknown;
        stream?: unknown;
        stream_options?: { include_usage?: unknown };
      };
      try {
        body = JSON.parse(await readBody(req));
      } catch {
        sendJson(res, 400, { error: { message: "the body is not JSON", type: "invalid_request_error" } });
        return;
      }
      if (typeof body.model !== "string" || !Array.isArray(body.messages)) {
        sendJson(res, 400, {
          error: {
            message: "model (string) and messages (array) are required",
            type: "invalid_request_error",
          },
        });
        return;
      }
      const model = body.model;
      const messages = body.messages as ChatMessage[];
      record.model = model;
      record.stream = body.stream === true;
      const answer = answerFor(model, messages);
      const usage = usageFor(messages, answer);
      const id = `chatcmpl-test-${++sequence}`;
      const created = Math.floor(Date.now() / 1000);

      if (body.stream !== true) {
        sendJson(res, 200, {
          id,
          object: "chat.completion",
          created,
          model,
          choices: [{ index: 0, message: { role: "assistant", content: answer }, finish_reason: "stop" }],
          usage,
        });
        return;
      }

      res.writeHead(200, {
        "content-type": "text/event-stream",
        "cache-control": "no-cache",
        connection: "keep-alive",
      });
      const chunk = (choices: unknown[], extra: Record<string, unknown> = {}) =>
        `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices, ...extra })}\n\n`;
      res.write(chunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]));
      const words = answer.split(" ");
      for (let i = 0; i < words.length; i++) {
        await sleep(chunkDelayMs);
        if (res.destroyed) return;
        res.write(
          chunk([{ index: 0, delta: { content: i === 0 ? words[i] : ` ${words[i]}` }, finish_reason: null }]),
        );
      }
      res.write(chunk([{ index: 0, delta: {}, finish_reason: "stop" }]));
      // OpenAI sends usage in a last chunk with no choices, only when the caller asks for it.
      if (body.stream_options?.include_usage === true) res.write(chunk([], { usage }));
      res.end("data: [DONE]\n\n");
    } catch (err) {
      if (!res.headersSent) sendJson(res, 500, { error: { message: String(err), type: "server_error" } });
      else res.destroy();
    }
  });
  return Object.assign(server, { seen });
}

/** Starts a server on `host:port` (port 0: any free port) and resolves its base URL. */
export async function startModelServer(
  opts: ModelServerOptions & { host?: string; port?: number } = {},
): Promise<{ server: http.Server & { seen: SeenRequest[] }; url: string; close(): Promise<void> }> {
  const server = createModelServer(opts);
  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    server,
    url: `http://${host}:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

// The image runs `node server.ts --listen`; PORT (default 8080) and MODELS (comma-separated).
if (process.argv.includes("--listen")) {
  const port = Number(process.env.PORT ?? 8080);
  const models = process.env.MODELS?.split(",").filter(Boolean);
  const server = createModelServer(models ? { models } : {});
  server.listen(port, "0.0.0.0", () =>
    console.log(`model server listening on :${port} (${models ?? "test-model"})`),
  );
  for (const signal of ["SIGTERM", "SIGINT"] as const)
    process.once(signal, () => server.close(() => process.exit(0)));
}
