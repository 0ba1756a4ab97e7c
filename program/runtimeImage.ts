import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

const REPO_ROOT = path.resolve(__dirname, "..");
/** What goes into the runtime image (controller/Dockerfile copies exactly these). */
const SOURCES = ["package.json", "package-lock.json", "tsconfig.json", "api", "controller"];

function files(p: string): string[] {
  const full = path.join(REPO_ROOT, p);
  if (!fs.statSync(full).isDirectory()) return [p];
  return fs
    .readdirSync(full)
    .sort()
    .flatMap((entry) => files(path.join(p, entry)));
}

/** A tag that changes exactly when the runtime's sources change. */
export function runtimeImageTag(): string {
  const hash = crypto.createHash("sha256");
  for (const file of SOURCES.flatMap(files)) {
    hash
      .update(file)
      .update("\0")
      .update(fs.readFileSync(path.join(REPO_ROOT, file)))
      .update("\0");
  }
  return `obol-stack/runtime:src-${hash.digest("hex").slice(0, 12)}`;
}

export const runtimeBuild = {
  context: REPO_ROOT,
  dockerfile: path.join(REPO_ROOT, "controller", "Dockerfile"),
};
