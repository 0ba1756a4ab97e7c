/**
 * Reading an OpenAI-style completion request and its answer for the `upto` scheme: how many
 * tokens the request allows, whether it streams, the request as sent upstream (asking a stream
 * for its usage chunk), and the tokens the upstream reports. Pure; the gate does the I/O and
 * api/pricing.ts turns tokens into amounts.
 */

export interface MeteredRequest {
  /** `max_completion_tokens` or `max_tokens`, when the request names a positive integer. */
  readonly maxTokens?: number;
  readonly stream: boolean;
  /** The body to send upstream: the original, or with `stream_options.include_usage` added. */
  readonly body: Buffer;
}

const fields = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;

const positiveInt = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isSafeInteger(value) && value > 0 ? value : undefined;

/**
 * A request body that is not a JSON object is passed on unchanged and metered with the default
 * cap: the upstream decides whether it is valid.
 */
export function readMeteredRequest(body: Buffer): MeteredRequest {
  let json: Record<string, unknown> | undefined;
  try {
    json = fields(JSON.parse(body.toString("utf8")));
  } catch {
    json = undefined;
  }
  if (!json) return { stream: false, body };
  const maxTokens = positiveInt(json.max_completion_tokens) ?? positiveInt(json.max_tokens);
  const stream = json.stream === true;
  const base = maxTokens !== undefined ? { maxTokens } : {};
  const options = fields(json.stream_options);
  if (!stream || options?.include_usage === true) return { ...base, stream, body };
  // The usage of a stream comes in its last chunk only when asked for.
  const rewritten = { ...json, stream_options: { ...(options ?? {}), include_usage: true } };
  return { ...base, stream, body: Buffer.from(JSON.stringify(rewritten)) };
}

/** Total tokens of an OpenAI `usage` object: total_tokens, or prompt + completion. */
export function usageTokens(usage: unknown): bigint | undefined {
  const u = fields(usage);
  if (!u) return undefined;
  const count = (v: unknown) =>
    typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? BigInt(v) : undefined;
  const total = count(u.total_tokens);
  if (total !== undefined) return total;
  const prompt = count(u.prompt_tokens);
  const completion = count(u.completion_tokens);
  return prompt !== undefined || completion !== undefined ? (prompt ?? 0n) + (completion ?? 0n) : undefined;
}

/** The tokens reported by a JSON completion; undefined when it carries no usage. */
export function usageFromJson(body: Buffer): bigint | undefined {
  try {
    return usageTokens(fields(JSON.parse(body.toString("utf8")))?.usage);
  } catch {
    return undefined;
  }
}

/**
 * Follows a server-sent-event stream as it passes and keeps the last `usage` an event reported
 * (OpenAI sends it in the final chunk before `[DONE]`). Lines are split across chunks safely;
 * a line longer than MAX_LINE is skipped, not buffered.
 */
export class SseUsage {
  static readonly MAX_LINE = 1 << 20;
  private partial = "";
  private skipping = false;
  tokens: bigint | undefined;

  push(chunk: Buffer | string): void {
    const text = this.partial + (typeof chunk === "string" ? chunk : chunk.toString("utf8"));
    const lines = text.split("\n");
    this.partial = lines.pop() ?? "";
    for (const line of lines) {
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      this.line(line);
    }
    if (this.partial.length > SseUsage.MAX_LINE) {
      this.partial = "";
      this.skipping = true;
    }
  }

  /** Ends the stream: a last line without a newline is read too. */
  end(): bigint | undefined {
    if (this.partial && !this.skipping) this.line(this.partial);
    this.partial = "";
    return this.tokens;
  }

  private line(raw: string): void {
    const line = raw.replace(/\r$/, "");
    if (!line.startsWith("data:")) return;
    const data = line.slice(5).trim();
    if (!data.startsWith("{")) return;
    try {
      const tokens = usageTokens(fields(JSON.parse(data))?.usage);
      if (tokens !== undefined) this.tokens = tokens;
    } catch {
      // not JSON: not a usage chunk
    }
  }
}
