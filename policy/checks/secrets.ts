/**
 * Heuristics for secrets written as plain text into ConfigMaps or container env literals.
 * Messages name the key, never the value.
 */

import { asArray, asObject, asString, at, type Json, type JsonObject } from "./values";
import { containersOf } from "./workloads";

/** Words that make a key or variable name a secret's name. */
const SECRET_WORDS: ReadonlySet<string> = new Set([
  "key",
  "apikey",
  "privatekey",
  "token",
  "secret",
  "password",
  "passwd",
  "passphrase",
  "credential",
  "credentials",
  "mnemonic",
]);
/** A final word that makes the name a reference to a secret, not the secret itself. */
const REFERENCE_WORDS: ReadonlySet<string> = new Set([
  "file",
  "path",
  "dir",
  "url",
  "name",
  "env",
  "ref",
  "id",
]);

/** True for names like API_KEY, tunnelToken, db-password; false for SIGNER_KEY_FILE. */
export function isSecretName(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  const last = words.at(-1);
  if (last === undefined || REFERENCE_WORDS.has(last)) return false;
  return words.some((w) => SECRET_WORDS.has(w));
}

const SECRET_VALUES: readonly { pattern: RegExp; what: string }[] = [
  { pattern: /(^|[^0-9a-zA-Z])0x[0-9a-fA-F]{64}([^0-9a-fA-F]|$)/, what: "a 32-byte hex private key" },
  { pattern: /(^|[^A-Za-z0-9])sk-[A-Za-z0-9_-]{16,}/, what: 'an "sk-" API key' },
  { pattern: /-----BEGIN [A-Z ]*PRIVATE KEY-----/, what: "a PEM private key" },
];

/** What kind of secret `value` looks like, or undefined. */
export function secretValueKind(value: string): string | undefined {
  return SECRET_VALUES.find((s) => s.pattern.test(value))?.what;
}

export function checkConfigMapSecrets(props: JsonObject): string[] {
  const label = `ConfigMap "${asString(at(props, "metadata", "name")) ?? "?"}"`;
  const problems: string[] = [];
  for (const [key, raw] of Object.entries(asObject(props.data) ?? {})) {
    const value = asString(raw);
    if (!value) continue;
    const kind = secretValueKind(value);
    if (kind) problems.push(`${label}: data["${key}"] contains ${kind}; put it in a Secret`);
    else if (isSecretName(key))
      problems.push(`${label}: data["${key}"] looks like a secret by its name; put it in a Secret`);
  }
  for (const key of Object.keys(asObject(props.binaryData) ?? {})) {
    if (isSecretName(key))
      problems.push(`${label}: binaryData["${key}"] looks like a secret by its name; put it in a Secret`);
  }
  return problems;
}

/** Env vars that carry a secret as a literal `value` instead of `valueFrom.secretKeyRef`. */
export function checkEnvSecrets(type: string, props: JsonObject): string[] {
  const problems: string[] = [];
  for (const { label, container } of containersOf(type, props)) {
    for (const entry of asArray(container.env)) {
      const env = asObject(entry as Json);
      const name = asString(env?.name);
      const value = asString(env?.value);
      if (!env || !name || !value) continue;
      const kind = secretValueKind(value);
      if (kind || isSecretName(name)) {
        problems.push(
          `${label}: env ${name} holds ${kind ?? "a secret (by its name)"} as a literal value; use valueFrom.secretKeyRef or a mounted Secret file`,
        );
      }
    }
  }
  return problems;
}
