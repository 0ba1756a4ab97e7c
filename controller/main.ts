/**
 * The runtime image's entry point: `obol-runtime <sub-command> [flags]`. Each sub-command lives
 * in its own module and exports `run(argv): Promise<void>`; they share api/ with the program.
 */
const COMMANDS: Record<string, () => Promise<{ run(argv: string[]): Promise<void> }>> = {
  controller: () => import("./reconciler/main.js"),
  gateway: () => import("./payments/gatewayMain.js"),
  facilitator: () => import("./facilitator/main.js"),
  buyer: () => import("./buyer/main.js"),
};

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const load = command ? COMMANDS[command] : undefined;
  if (!load) {
    console.error(`usage: obol-runtime <${Object.keys(COMMANDS).join("|")}> [flags]`);
    process.exit(2);
  }
  await (await load()).run(rest);
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
