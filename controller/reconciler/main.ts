export async function run(_argv: string[]): Promise<void> {
  throw new Error("the reconciler sub-command is not built yet");
}
