/**
 * Settings of the runtime's sub-commands. Each setting is a flag (`--name value` or
 * `--name=value`) and, when the Deployment sets it, an environment variable; the flag wins and an
 * empty value counts as unset. Unknown flags are an error that lists the known ones, so a typo
 * never goes unnoticed.
 */
export type Flags = Partial<Record<string, string>>;

export interface SettingSpec {
  /** The environment variable read when the flag is absent. */
  readonly env?: string;
}

export type SettingsSpec<K extends string> = Readonly<Record<K, SettingSpec>>;

export function parseFlags(argv: readonly string[], known: readonly string[]): Flags {
  const flags: Flags = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
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
      const value = argv[i + 1];
      if (value === undefined || value.startsWith("--")) throw new Error(`flag --${name} needs a value`);
      flags[name] = value;
      i++;
    }
  }
  return flags;
}

/** A non-negative integer from a flag or environment value, or the default. */
export function intSetting(value: string | undefined, fallback: number, what: string): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`${what} must be a non-negative integer, got "${value}"`);
  return n;
}

/** A sub-command's settings, read from its flags and then from the environment. */
export class Settings<K extends string> {
  constructor(
    private readonly spec: SettingsSpec<K>,
    private readonly flags: Flags,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** The flag's value, else its environment variable's; undefined when neither is set (or both are ""). */
  string(name: K): string | undefined {
    const flag = this.flags[name];
    if (flag) return flag;
    const variable = this.spec[name].env;
    return (variable && this.env[variable]) || undefined;
  }

  int(name: K, fallback: number): number {
    return intSetting(this.string(name), fallback, this.describe(name));
  }

  /** How a user sets it, for error messages: `--port (or $PORT)`. */
  describe(name: K): string {
    const variable = this.spec[name].env;
    return variable ? `--${name} (or $${variable})` : `--${name}`;
  }
}

export function parseSettings<K extends string>(
  spec: SettingsSpec<K>,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Settings<K> {
  return new Settings(spec, parseFlags(argv, Object.keys(spec)), env);
}
