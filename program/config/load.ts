import * as pulumi from "@pulumi/pulumi";
import { ConfigError, parseStackConfig } from "./parse";
import { SECRET_KEYS, type StackConfig } from "./types";

// Not in the SDK's type declarations, but exported by its runtime: whether a key is stored encrypted.
const { isConfigSecret } = require("@pulumi/pulumi/runtime/config") as {
  isConfigSecret(key: string): boolean;
};

const secretNames = new Set<string>(SECRET_KEYS);

/** Stack config as plain values, keyed without the project prefix. Secret values are not parsed. */
function rawConfig(project: string): { raw: Record<string, unknown>; secretKeys: Set<string> } {
  const raw: Record<string, unknown> = {};
  const secretKeys = new Set<string>();
  const prefix = `${project}:`;
  for (const [fullKey, value] of Object.entries(pulumi.runtime.allConfig())) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    if (isConfigSecret(fullKey)) secretKeys.add(key);
    // Secrets are only checked for presence here; their values are read as Outputs later.
    if (secretNames.has(key) || isConfigSecret(fullKey)) {
      raw[key] = "<set>";
      continue;
    }
    raw[key] = /^\s*[[{]/.test(value)
      ? JSON.parse(value)
      : value === "true"
        ? true
        : value === "false"
          ? false
          : value;
  }
  return { raw, secretKeys };
}

/** Reads and validates the stack config; a bad config stops the run before any resource. */
export function loadStackConfig(): StackConfig {
  const project = pulumi.getProject();
  const { raw, secretKeys } = rawConfig(project);
  try {
    return parseStackConfig(raw, { stack: pulumi.getStack(), secretKeys });
  } catch (err) {
    if (err instanceof ConfigError) throw new pulumi.RunError(err.message);
    throw err;
  }
}

/** A secret config value as a secret Output. */
export function secretConfig(key: string): pulumi.Output<string> {
  return new pulumi.Config().requireSecret(key);
}

/** A secret config value as text, for the program itself (never a resource input: use secretConfig). */
export function plainConfig(key: string): string {
  return new pulumi.Config().require(key);
}
