/**
 * Structured logs for the runtime's processes: one JSON object per line on stdout,
 *
 *   {"level":"info","time":"2026-…Z","component":"gateway","msg":"settled","requestId":"…",…}
 *
 * so a log pipeline (Loki, CloudWatch, `kubectl logs | jq`) can filter by component, level and
 * request id without parsing prose. Two guards keep secrets out: a field whose name looks like a
 * credential is written as "[redacted]", and every value the process registered as a secret
 * (`registerSecret`, called by shared/secrets.ts for each key it reads) is replaced wherever it
 * appears — in messages, field values and error texts alike.
 */
import { randomUUID } from "node:crypto";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  readonly component: string;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. a request id). */
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  component: string;
  /** Lines below this level are dropped; default $LOG_LEVEL, else info. */
  level?: LogLevel;
  /** Where a finished line goes (without the newline); default stdout. */
  write?: (line: string) => void;
  now?: () => Date;
}

/** Field names whose values are credentials, whatever their content. */
const SECRET_FIELD = /(key|secret|token|password|passwd|authorization|signature|cookie)s?$/i;
/** The envelope's own keys: a field of the same name does not overwrite them. */
const ENVELOPE = new Set(["level", "time", "component", "msg"]);
export const REDACTED = "[redacted]";

const secrets = new Set<string>();

/** Registers a value that must never appear in a log line (a private key, a token). */
export function registerSecret(value: string): void {
  // Short values would redact ordinary text; real credentials are long.
  if (value.length >= 8) secrets.add(value);
  // A hex key is also recognisable without its 0x prefix, and in either case.
  if (/^0x[0-9a-fA-F]+$/.test(value) && value.length > 10) secrets.add(value.slice(2));
}

/** `text` with every registered secret replaced (case-insensitively for hex). */
export function redact(text: string): string {
  let out = text;
  for (const secret of secrets) {
    if (!out.toLowerCase().includes(secret.toLowerCase())) continue;
    out = out.replace(new RegExp(escapeRegExp(secret), "gi"), REDACTED);
  }
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function parseLevel(value: string | undefined): LogLevel | undefined {
  const v = value?.toLowerCase();
  return v && v in LEVELS ? (v as LogLevel) : undefined;
}

/** Makes a field value JSON-safe: bigints as strings, errors as their message (and cause). */
function plain(value: unknown, depth = 0): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) {
    const cause = (value as { cause?: unknown }).cause;
    return cause !== undefined && depth < 3
      ? { message: value.message, cause: plain(cause, depth + 1) }
      : value.message;
  }
  if (value instanceof URL) return value.toString();
  if (Array.isArray(value)) return depth < 5 ? value.map((v) => plain(v, depth + 1)) : "[…]";
  if (value && typeof value === "object") {
    if (depth >= 5) return "[…]";
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = SECRET_FIELD.test(k) ? REDACTED : plain(v, depth + 1);
    return out;
  }
  return value;
}

export function createLogger(opts: LoggerOptions, bound: LogFields = {}): Logger {
  const threshold = LEVELS[opts.level ?? parseLevel(process.env.LOG_LEVEL) ?? "info"];
  const write = opts.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  const now = opts.now ?? (() => new Date());
  const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVELS[level] < threshold) return;
    const record: LogFields = { level, time: now().toISOString(), component: opts.component, msg };
    for (const source of [bound, fields ?? {}]) {
      for (const [k, v] of Object.entries(source)) {
        if (v === undefined || ENVELOPE.has(k)) continue;
        record[k] = SECRET_FIELD.test(k) ? REDACTED : plain(v);
      }
    }
    write(redact(JSON.stringify(record)));
  };
  return {
    component: opts.component,
    debug: (msg, fields) => emit("debug", msg, fields),
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => createLogger(opts, { ...bound, ...fields }),
  };
}

/**
 * The log function the runtime's modules take: a message and optional fields. It is assignable
 * from, and to, a plain `(message: string) => void`, so a module can log fields without every
 * caller changing. `fields.level` picks the level (default info).
 */
export type LogFn = (msg: string, fields?: LogFields & { level?: LogLevel }) => void;

export function logFn(logger: Logger): LogFn {
  return (msg, fields) => {
    const { level, ...rest } = fields ?? {};
    logger[level && level in LEVELS ? level : "info"](msg, rest);
  };
}

// ---- request ids ---------------------------------------------------------------------------

export const REQUEST_ID_HEADER = "x-request-id";
/** What a client may send as its own id: short, printable, no separators that could split logs. */
const REQUEST_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$/;

/** The client's X-Request-Id when well-formed, else a fresh UUID. */
export function requestIdFrom(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && REQUEST_ID_RE.test(value) ? value : randomUUID();
}

/**
 * An error's message for a log field or an answer (a non-Error thrown value as a string). Never
 * throws: a thrown value may be anything, including an object `String()` cannot convert (one
 * without a prototype, or one whose `toString` is not a function), and the catch block describing
 * it must not fail in turn.
 */
export function errorMessage(err: unknown): string {
  if (err instanceof Error)
    return typeof err.message === "string" ? err.message : describeThrown(err.message);
  return describeThrown(err);
}

/** Longest description of a thrown non-Error value. */
const THROWN_VALUE_CHARS = 300;

function describeThrown(value: unknown): string {
  let text: string;
  try {
    text = String(value);
  } catch {
    try {
      text = JSON.stringify(value) ?? typeof value;
    } catch {
      text = `[an unprintable ${typeof value}]`;
    }
  }
  return text.length > THROWN_VALUE_CHARS ? `${text.slice(0, THROWN_VALUE_CHARS)}…` : text;
}
