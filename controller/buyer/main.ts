export async function run(_argv: string[]): Promise<void> {
  throw new Error("the buyer sub-command is not built yet");
}
