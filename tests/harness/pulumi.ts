import * as fs from "node:fs";
import * as path from "node:path";
import { type ConfigMap, type EngineEvent, LocalWorkspace, type Stack } from "@pulumi/pulumi/automation";

export interface TestStackOptions {
  /** Directory with Pulumi.yaml (a real program on disk, run by the real language host). */
  workDir: string;
  stackName: string;
  /** Where this test's `file://` backend keeps state. */
  stateDir: string;
  config?: ConfigMap | undefined;
  env?: Record<string, string> | undefined;
}

/** The passphrase of every test backend; state is still encrypted with it, as a user's would be. */
export const TEST_PASSPHRASE = "obol-test-passphrase";

/** Creates (or selects) a stack on a local `file://` backend, driven by the real engine. */
export async function testStack(opts: TestStackOptions): Promise<Stack> {
  fs.mkdirSync(opts.stateDir, { recursive: true });
  const envVars: Record<string, string> = {
    PULUMI_BACKEND_URL: `file://${path.resolve(opts.stateDir)}`,
    PULUMI_CONFIG_PASSPHRASE: TEST_PASSPHRASE,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
    PULUMI_NODEJS_TRANSPILE_ONLY: "true",
    ...opts.env,
  };
  const stack = await LocalWorkspace.createOrSelectStack(
    { stackName: opts.stackName, workDir: opts.workDir },
    { envVars },
  );
  if (opts.config) await stack.setAllConfig(opts.config);
  return stack;
}

/** Collects engine output so a failing test shows what the engine said. */
export function outputCollector(): { onOutput: (s: string) => void; text: () => string } {
  const lines: string[] = [];
  return { onOutput: (s) => lines.push(s), text: () => lines.join("") };
}

/**
 * Everything the backend wrote to disk for a stack (state, history, backups), as text. Use it
 * to prove a secret is not stored in plaintext: Automation's `exportStack()` runs
 * `pulumi stack export --show-secrets`, so its output always contains decrypted secrets.
 */
export function storedStateText(stateDir: string): string {
  const zlib = require("node:zlib") as typeof import("node:zlib");
  const parts: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else {
        const raw = fs.readFileSync(full);
        parts.push((full.endsWith(".gz") ? zlib.gunzipSync(raw) : raw).toString("utf8"));
      }
    }
  };
  walk(stateDir);
  return parts.join("\n");
}

/** Resource operations the engine planned or performed, by resource type and name. */
export function opsRecorder() {
  const ops: { op: string; type: string; name: string }[] = [];
  return {
    onEvent: (e: EngineEvent) => {
      const m = e.resourcePreEvent?.metadata;
      // The default dynamic-provider instance receives the stack config as its inputs, so it
      // "updates" whenever config does; it is not a resource change.
      if (
        m &&
        m.op !== "same" &&
        m.op !== "read" &&
        m.op !== "refresh" &&
        !m.type.startsWith("pulumi:providers:")
      ) {
        ops.push({ op: m.op, type: m.type, name: m.urn.split("::").pop()! });
      }
    },
    ops,
  };
}
