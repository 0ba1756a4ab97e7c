/**
 * A tiny argv parser for the runtime's sub-commands: `--name value` and `--name=value`.
 * Unknown flags are an error that lists the known ones, so a typo never goes unnoticed.
 */
export type Flags = Record<string, string>;

export function parseFlags(argv: readonly string[], known: readonly string[]): Flags {
  const flags: Flags = {};
  const queue = [...argv];
  for (let arg = queue.shift(); arg !== undefined; arg = queue.shift()) {
    if (!arg.startsWith("--")) {
      throw new Error(
        `unexpected argument "${arg}": flags look like --name value (known: ${known.join(", ")})`,
      );
    }
    const eq = arg.indexOf("=");
    const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
    if (!known.includes(name)) {
      throw new Error(`unknown flag --${name}: known flags are ${known.map((k) => `--${k}`).join(", ")}`);
    }
    if (eq >= 0) {
      flags[name] = arg.slice(eq + 1);
    } else {
      const value = queue.shift();
      if (value === undefined || value.startsWith("--")) throw new Error(`flag --${name} needs a value`);
      flags[name] = value;
    }
  }
  return flags;
}

/** A positive integer from a flag or environment value, or the default. */
export function intSetting(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`${what} must be a non-negative integer, got "${value}"`);
  return n;
}
