import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

const created: string[] = [];
let hooked = false;

/** A new directory under the OS temporary directory, removed when the test process exits. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  created.push(dir);
  if (!hooked) {
    hooked = true;
    process.once("exit", () => {
      for (const d of created) fs.rmSync(d, { recursive: true, force: true });
    });
  }
  return dir;
}
