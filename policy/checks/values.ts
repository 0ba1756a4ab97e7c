/**
 * Reading resource properties as the engine hands them to a policy: plain JSON, except that
 * during a preview values computed from other resources are "unknown". The engine marks them
 * with fixed sentinel strings (part of Pulumi's RPC protocol); a check skips what it cannot see
 * instead of failing, and the real value is checked again by `pulumi up`.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

const UNKNOWN_SENTINELS: ReadonlySet<string> = new Set([
  "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7", // boolean
  "3eeb2bf0-c639-47a8-9e75-3b44932eb421", // number
  "04da6b54-80e4-46f7-96ec-b56ff0331ba9", // string
  "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2", // array
  "030794c1-ac77-496b-92df-f27374a8bd58", // asset
  "e48ece36-62e2-4504-bad9-02848725956a", // archive
  "dd056dcd-154b-4c76-9bd3-c8f88648b5ff", // object
]);

/** True for a value the engine does not know yet (a preview of something not yet created). */
export function isUnknown(value: unknown): boolean {
  return typeof value === "string" && UNKNOWN_SENTINELS.has(value);
}

/**
 * The plain properties behind @pulumi/policy's unknown-checking proxy (which throws on any
 * read of an unknown value and so would disable a whole policy for one unknown field).
 * Plain objects (as in unit tests) are returned as they are.
 */
export function plainProps(props: Record<string, unknown>): JsonObject {
  const target = (props as { __getSpecialProxyTarget?: unknown }).__getSpecialProxyTarget;
  return (target && typeof target === "object" ? target : props) as JsonObject;
}

export function asObject(value: Json | undefined): JsonObject | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? value : undefined;
}

export function asArray(value: Json | undefined): Json[] {
  return Array.isArray(value) ? value : [];
}

/** A known string, or undefined when absent, unknown or not a string. */
export function asString(value: Json | undefined): string | undefined {
  return typeof value === "string" && !isUnknown(value) ? value : undefined;
}

/** Follows `path` through nested objects; undefined when any step is missing. */
export function at(value: Json | undefined, ...path: string[]): Json | undefined {
  let current: Json | undefined = value;
  for (const key of path) {
    const obj = asObject(current);
    if (!obj) return undefined;
    current = obj[key];
  }
  return current;
}
