/** Outbound HTTP identity and small fetch helpers (controller and gateway). */
import { errorMessage } from "./log";

/** Every outbound request names itself: some CDNs/WAFs block default library User-Agents. */
export const CONTROLLER_USER_AGENT = "obol-stack-controller/0.1";
export const GATEWAY_USER_AGENT = "obol-stack-gateway/0.1";

/** fetch with a hard timeout; the error message names the URL and the timeout. */
export async function fetchWithTimeout(url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs), redirect: "manual" });
  } catch (err) {
    throw new Error(describeFetchError(err, timeoutMs));
  }
}

function describeFetchError(err: unknown, timeoutMs: number): string {
  if (err instanceof Error) {
    if (err.name === "TimeoutError" || err.name === "AbortError") return `no answer within ${timeoutMs} ms`;
    const cause = (err as Error & { cause?: unknown }).cause;
    if (cause instanceof Error) {
      const code = (cause as Error & { code?: string }).code;
      return code ? `${code} (${cause.message})` : cause.message;
    }
    return err.message;
  }
  return errorMessage(err);
}
