import * as fs from "node:fs";
import { fileEnv } from "../../api/contract";
import { registerSecret } from "./log";

/** Whether a secret is configured at all (`<name>_FILE` or `<name>`), without reading it. */
export function secretConfigured(name: string, env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env[fileEnv(name)] || env[name]);
}

/**
 * Reads a secret from the file named by `<name>_FILE` (a mounted Kubernetes Secret) or, for
 * local runs, from `<name>`. The value is never logged; errors name the variable, not the value.
 */
export function readSecret(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const fileVar = fileEnv(name);
  const file = env[fileVar];
  if (file) {
    try {
      return registered(fs.readFileSync(file, "utf8").trim());
    } catch (err) {
      throw new Error(`cannot read ${fileVar} (${file}): ${(err as NodeJS.ErrnoException).code ?? err}`, {
        cause: err,
      });
    }
  }
  const value = env[name];
  if (!value) throw new Error(`${fileVar} or ${name} must be set`);
  return registered(value.trim());
}

/** Every secret read is registered with the logger, which then never prints it. */
function registered(value: string): string {
  registerSecret(value);
  return value;
}

/** A 0x-prefixed 32-byte private key, validated without echoing it. */
export function readPrivateKey(name: string, env: NodeJS.ProcessEnv = process.env): `0x${string}` {
  const raw = readSecret(name, env);
  const key = raw.startsWith("0x") ? raw : `0x${raw}`;
  if (!/^0x[0-9a-fA-F]{64}$/.test(key)) throw new Error(`${name} is not a 32-byte hex private key`);
  return key as `0x${string}`;
}
