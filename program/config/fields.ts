/**
 * Field rules shared by the section validators. Each returns the normalized value, or undefined
 * after adding an issue that names the field and the fix. Where the runtime parses a value
 * (amounts through api/money.ts, URLs through `new URL`), the same parser runs here, so a config
 * that passes preview cannot fail on it at run time.
 */
import { z } from "zod";
import { type Caip2, toCaip2, UnknownChainError } from "../../api/chains";
import { isDecimalString, PriceError, toAtomic } from "../../api/money";
import type { Issues } from "./issues";

export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
export const DNS_NAME =
  /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/;

/** An amount as a user writes it: a quoted decimal string (a number is reported, not coerced). */
export const amountInput = z.union([z.string(), z.number()]);

export function network(input: string, at: string, issues: Issues): Caip2 | undefined {
  try {
    return toCaip2(input);
  } catch (err) {
    issues.add(at, err instanceof UnknownChainError ? err.message : String(err));
    return undefined;
  }
}

/**
 * A positive decimal amount in token units. With `decimals`, it must also be exact in the
 * token's smallest unit: the runtime converts it with the same `toAtomic`.
 */
export function amount(
  input: string | number,
  at: string,
  issues: Issues,
  decimals?: number,
): string | undefined {
  if (typeof input === "number") {
    issues.add(
      at,
      `write amounts as quoted strings ("${input}") so they are exact; with --path use --type string`,
    );
    return undefined;
  }
  if (!isDecimalString(input)) {
    issues.add(at, `"${input}" is not a positive decimal amount; write it like "0.001"`);
    return undefined;
  }
  if (/^0(\.0*)?$/.test(input)) {
    issues.add(
      at,
      `must be greater than 0 (got "${input}"); to give something away, use a free route instead`,
    );
    return undefined;
  }
  if (decimals !== undefined) {
    try {
      toAtomic(input, decimals);
    } catch (err) {
      issues.add(at, err instanceof PriceError ? err.message : String(err));
      return undefined;
    }
  }
  return input;
}

/**
 * An http(s) URL the runtime will parse with `new URL`. `what` completes "must be ...", e.g.
 * "the seller's http(s) URL"; `localHttpOnly` allows plain http only for loopback hosts.
 */
export function httpUrl(
  input: string,
  at: string,
  issues: Issues,
  what: string,
  opts: { localHttpOnly?: boolean } = {},
): string | undefined {
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    issues.add(at, `"${input}" is not a URL: it must be ${what}, e.g. https://host[:port][/path]`);
    return undefined;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    issues.add(at, `"${input}" must be ${what} (got ${url.protocol})`);
    return undefined;
  }
  if (
    opts.localHttpOnly &&
    url.protocol === "http:" &&
    !["127.0.0.1", "localhost", "[::1]"].includes(url.hostname)
  ) {
    issues.add(at, `"${input}" must be an https:// URL (http is allowed only for localhost)`);
    return undefined;
  }
  return input;
}
