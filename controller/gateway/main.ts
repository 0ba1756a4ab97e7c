export async function run(_argv: string[]): Promise<void> {
  throw new Error("the gateway sub-command is not built yet");
}
