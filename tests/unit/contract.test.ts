import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { followsQuickTunnel, PORTS } from "../../api/contract";

const REPO_ROOT = path.resolve(__dirname, "../..");

/** Relative module specifiers a TypeScript file imports (static, dynamic and require). */
function localImports(file: string): string[] {
  const text = fs.readFileSync(file, "utf8");
  const specifiers = [...text.matchAll(/(?:from|import|require)\s*\(?\s*"(\.{1,2}\/[^"]+)"/g)].map(
    (m) => m[1] ?? "",
  );
  return specifiers.map((s) => {
    const base = path.resolve(path.dirname(file), s.replace(/\.js$/, ""));
    for (const candidate of [`${base}.ts`, path.join(base, "index.ts"), base]) {
      if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
    }
    throw new Error(`${path.relative(REPO_ROOT, file)} imports ${s}, which does not resolve`);
  });
}

/** Every repository file the runtime entry point loads, transitively. */
function runtimeClosure(): Set<string> {
  const seen = new Set<string>();
  const queue = [path.join(REPO_ROOT, "controller", "main.ts")];
  for (let file = queue.pop(); file !== undefined; file = queue.pop()) {
    if (seen.has(file)) continue;
    seen.add(file);
    queue.push(...localImports(file));
  }
  return seen;
}

describe("program ↔ runtime contract (api/contract.ts)", () => {
  it("the runtime loads only controller/ and api/: never the stack-config validator or other program code", () => {
    const outside = [...runtimeClosure()]
      .map((f) => path.relative(REPO_ROOT, f))
      .filter((f) => !f.startsWith("controller/") && !f.startsWith("api/"));
    assert.deepEqual(outside, [], "an IaC-only change would rebuild the runtime image");
  });

  it("no file under controller/ imports program/ (directly, by any path)", () => {
    const walk = (dir: string): string[] =>
      fs
        .readdirSync(dir, { withFileTypes: true })
        .flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]))
        .filter((f) => f.endsWith(".ts"));
    const offenders = walk(path.join(REPO_ROOT, "controller")).filter((f) =>
      localImports(f).some((i) => path.relative(REPO_ROOT, i).startsWith("program/")),
    );
    assert.deepEqual(offenders, []);
  });

  it("the image copies exactly what its tag hashes, and no program code", () => {
    const dockerfile = fs.readFileSync(path.join(REPO_ROOT, "controller", "Dockerfile"), "utf8");
    const copied = [...dockerfile.matchAll(/^COPY (?!--from)(.+?) \S+$/gm)]
      .flatMap((m) => (m[1] ?? "").split(/\s+/))
      .sort();
    const hashed = fs
      .readFileSync(path.join(REPO_ROOT, "program", "runtimeImage.ts"), "utf8")
      .match(/const SOURCES = \[([^\]]*)\]/)?.[1];
    assert.ok(hashed, "program/runtimeImage.ts declares SOURCES");
    assert.deepEqual(copied, [...hashed.matchAll(/"([^"]+)"/g)].map((m) => m[1]).sort());
    assert.ok(!copied.some((c) => c.startsWith("program") || c.startsWith("components")), copied.join(" "));
  });

  it("follows a quick tunnel only when one runs and no public origin is configured", () => {
    assert.equal(followsQuickTunnel({ quickTunnel: true, publicBaseUrl: undefined }), true);
    assert.equal(followsQuickTunnel({ quickTunnel: true, publicBaseUrl: "https://api.example.com" }), false);
    assert.equal(followsQuickTunnel({ quickTunnel: false, publicBaseUrl: undefined }), false);
  });

  it("keeps the gateway's public and internal ports apart (the tunnel reaches only the public one)", () => {
    assert.notEqual(PORTS.gateway, PORTS.gatewayInternal);
  });
});
