/**
 * How stack-config problems are collected and worded: every validator adds to one `Issues`, so a
 * run reports all problems at once, each as `<config path>: <what is wrong and how to fix it>`.
 */
import { z } from "zod";

export interface ConfigIssue {
  /** Config path, e.g. `offers[1].payment.payTo`. */
  path: string;
  message: string;
}

export class ConfigError extends Error {
  constructor(readonly issues: ConfigIssue[]) {
    super(
      `invalid stack config (${issues.length} problem${issues.length === 1 ? "" : "s"}):\n${issues
        .map((i) => `  - ${i.path}: ${i.message}`)
        .join("\n")}`,
    );
    this.name = "ConfigError";
  }
}

/** The problems found so far. */
export class Issues {
  readonly list: ConfigIssue[] = [];

  add(path: string, message: string): void {
    this.list.push({ path, message });
  }
}

/**
 * Parses one section (or one list entry) with its strict schema. Unknown fields are reported
 * (with the closest known name) and then ignored, so the section's other fields are still
 * checked; any other schema problem is reported and the section yields undefined. The input is
 * never modified.
 */
export function parseSection<S extends z.ZodType>(
  schema: S,
  input: unknown,
  at: string,
  issues: Issues,
): z.output<S> | undefined {
  const first = schema.safeParse(input);
  if (first.success) return first.data;
  const unknown: z.core.$ZodIssueUnrecognizedKeys[] = [];
  let other = false;
  for (const issue of first.error.issues) {
    if (issue.code === "unrecognized_keys") {
      unknown.push(issue);
      issues.add(joinPath(at, issue.path), unknownKeysMessage(issue.keys, fieldsAt(schema, issue.path)));
    } else {
      other = true;
      issues.add(joinPath(at, issue.path), zodMessage(issue));
    }
  }
  if (other) return undefined;
  const second = schema.safeParse(withoutKeys(input, unknown));
  return second.success ? second.data : undefined;
}

/** A copy of `input` without the unknown fields zod reported. */
function withoutKeys(input: unknown, unknown: readonly z.core.$ZodIssueUnrecognizedKeys[]): unknown {
  const copy: unknown = structuredClone(input);
  for (const issue of unknown) {
    let node: unknown = copy;
    for (const part of issue.path) node = (node as Record<PropertyKey, unknown> | undefined)?.[part];
    if (typeof node === "object" && node !== null) {
      for (const key of issue.keys) delete (node as Record<string, unknown>)[key];
    }
  }
  return copy;
}

/** `offers[1]` + [`payment`, `payTo`] → `offers[1].payment.payTo`. */
export function joinPath(at: string, path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, part) => {
    if (typeof part === "number") return `${acc}[${part}]`;
    return acc ? `${acc}.${String(part)}` : String(part);
  }, at);
}

export function unknownKeysMessage(keys: readonly string[], known: readonly string[]): string {
  const hints = keys
    .map((k) => [k, closest(k, known)] as const)
    .filter((pair): pair is readonly [string, string] => pair[1] !== undefined)
    .map(([k, s]) => `did you mean "${s}" for "${k}"?`);
  return `unknown field${keys.length > 1 ? "s" : ""} ${keys.map((k) => `"${k}"`).join(", ")}: ${
    hints.length > 0 ? `${hints.join(" ")} ` : ""
  }check the spelling against the README's config reference`;
}

function zodMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_value") {
    return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
  }
  if (issue.code === "invalid_type") {
    // Number fields carry their own message with the allowed range (see `wholeNumber`).
    if (issue.expected === "number" || issue.expected === "int") return issue.message;
    if (issue.input === undefined) return `expected ${issue.expected} (the field is required)`;
    return `expected ${issue.expected}, got ${Array.isArray(issue.input) ? "array" : typeof issue.input}`;
  }
  return issue.message;
}

/**
 * A whole number in [min, max]; every violation (type, fraction, range) gets the same message,
 * naming the allowed range and what the field means.
 */
export function wholeNumber(min: number, max: number | undefined, meaning: string) {
  const range = max === undefined ? `${min} or more` : `from ${min} to ${max}`;
  const error = `must be a whole number ${range}: ${meaning}`;
  const base = z.number({ error }).int({ error }).min(min, { error });
  return max === undefined ? base : base.max(max, { error });
}

/** The known name closest to `word` (a likely typo), if any is close enough. */
export function closest(word: string, known: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const name of known) {
    const distance = editDistance(word.toLowerCase(), name.toLowerCase());
    if (distance <= Math.max(1, Math.floor(name.length / 3)) && (!best || distance < best.distance)) {
      best = { name, distance };
    }
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The field names a schema accepts at `path` (for "did you mean" on unknown fields). */
export function fieldsAt(schema: z.ZodType, path: readonly PropertyKey[]): readonly string[] {
  let node: z.ZodType | undefined = schema;
  const unwrap = (s: z.ZodType): z.ZodType => {
    let inner = s;
    while (inner instanceof z.ZodOptional || inner instanceof z.ZodDefault)
      inner = inner.unwrap() as z.ZodType;
    return inner;
  };
  for (const part of path) {
    if (!node) return [];
    node = unwrap(node);
    if (typeof part === "number" && node instanceof z.ZodArray) node = node.element as z.ZodType;
    else if (node instanceof z.ZodObject) node = (node.shape as Record<string, z.ZodType>)[String(part)];
    else return [];
  }
  if (!node) return [];
  node = unwrap(node);
  return node instanceof z.ZodObject ? Object.keys(node.shape) : [];
}

/**
 * The last word on a normalized spec: the schema the API server and the runtime apply to the
 * stored resource, so preview reports what the cluster would reject. True when it passes.
 */
export function acceptedAsStored(
  schema: z.ZodType,
  spec: unknown,
  at: string,
  kind: string,
  issues: Issues,
): boolean {
  const stored = schema.safeParse(spec);
  if (stored.success) return true;
  for (const issue of stored.error.issues) {
    issues.add(
      joinPath(at, issue.path),
      `${issue.message}: the cluster would reject this ${kind}; fix the value in stack config`,
    );
  }
  return false;
}
