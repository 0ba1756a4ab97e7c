/**
 * The runtime image's entry point: `obol-runtime <sub-command> [flags]`. Each sub-command lives
 * in its own module and exports its `command`; shared/startup.ts runs it (settings, start line,
 * graceful shutdown). They share api/ with the program.
 */
import { type Command, runCommand } from "./shared/startup";

// Loaded on demand: a sub-command loads only its own dependencies.
const COMMANDS: Record<string, () => Promise<{ command: Command<string> }>> = {
  controller: () => import("./reconciler/main.js"),
  gateway: () => import("./gateway/main.js"),
  facilitator: () => import("./facilitator/main.js"),
  buyer: () => import("./buyer/main.js"),
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  const load = name ? COMMANDS[name] : undefined;
  if (!load) {
    console.error(`usage: obol-runtime <${Object.keys(COMMANDS).join("|")}> [flags]`);
    process.exit(2);
  }
  await runCommand((await load()).command, rest);
}

main(process.argv.slice(2)).catch(async (err) => {
  // A start-up failure is a log line like any other (JSON, secrets redacted).
  const { createLogger } = await import("./shared/log.js");
  createLogger({ component: process.argv[2] ?? "runtime" }).error("cannot start", {
    error: err instanceof Error ? (err.stack ?? err.message) : String(err),
  });
  process.exit(1);
});
