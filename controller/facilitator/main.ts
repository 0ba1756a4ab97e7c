export async function run(_argv: string[]): Promise<void> {
  throw new Error("the facilitator sub-command is not built yet");
}
