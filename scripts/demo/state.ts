/**
 * What a demo run started, on disk (`.tmp/demo.json`), so that `npm run demo -- --down` (a later
 * process) removes it: written when the demo starts, completed when `--keep` hands its processes
 * over, deleted once everything is removed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { z } from "zod";

export const DEMO_STATE_FILE = path.resolve(__dirname, "../../.tmp/demo.json");

export const demoStateSchema = z.object({
  /** The demo process (gone once `--keep` returned). */
  pid: z.number().int().positive(),
  /** Its scratch directory: the real node's data, both stacks' Pulumi state, the logs. */
  runDir: z.string().min(1),
  /** The real node's directory. */
  clusterDir: z.string().min(1),
  /** Set by `--keep`: the node's processes and the sysctls to put back (see RealCluster.handOver). */
  kept: z
    .object({
      pids: z.array(z.number().int().positive()),
      sysctls: z.record(z.string(), z.string()),
    })
    .optional(),
  /** anvil's pid, once `--keep` handed it over. */
  anvilPid: z.number().int().positive().optional(),
  /** The `kubectl port-forward`s to Alice's gateway that `--keep` left listening. */
  forwardPids: z.array(z.number().int().positive()).optional(),
});

export type DemoState = z.infer<typeof demoStateSchema>;

/** The state in `text` (the file's content); a clear error naming the file when it is not one. */
export function parseDemoState(text: string, file = DEMO_STATE_FILE): DemoState {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`${file} is not JSON (${(err as Error).message}): delete it if no demo is running`);
  }
  const parsed = demoStateSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(
      `${file}: ${issue?.path.join(".") || "(root)"}: ${issue?.message}; delete it if no demo is running`,
    );
  }
  return parsed.data;
}

export function readDemoState(file = DEMO_STATE_FILE): DemoState | undefined {
  if (!fs.existsSync(file)) return undefined;
  return parseDemoState(fs.readFileSync(file, "utf8"), file);
}

export function writeDemoState(state: DemoState, file = DEMO_STATE_FILE): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(demoStateSchema.parse(state), null, 2)}\n`);
}
