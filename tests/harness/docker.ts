import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { alive, startProcess, tail, waitFor } from "./processes";

/**
 * The Docker daemon the image builds need, shared by every test run on the host. A daemon that
 * was running before any test run is used as it is and never stopped. One a test run starts is
 * stopped when the last run using it is done: each run holds a lease (a file named by its pid),
 * and the daemon outlives the run that started it while another run still holds one. Without the
 * leases, the run that started the daemon stopped it under a concurrent run's image build.
 */
export interface Dockerd {
  /** True when a test run (this one or another) started the daemon, so the last lease stops it. */
  readonly startedHere: boolean;
  stop(): Promise<void>;
}

/** Host-wide state: leases, the pid of a daemon a test run started, and a short mutex. */
const STATE_DIR = process.env.OBOL_DOCKERD_STATE ?? "/run/obol-stack-dockerd";
const LEASES = path.join(STATE_DIR, "leases");
const STARTED = path.join(STATE_DIR, "started.json");
const MUTEX = path.join(STATE_DIR, "mutex");

function dockerPing(): Promise<boolean> {
  return new Promise((resolve) => {
    execFile("docker", ["version", "--format", "{{.Server.Version}}"], { timeout: 10_000 }, (err, out) =>
      resolve(!err && out.trim().length > 0),
    );
  });
}

/** Runs `fn` holding the host mutex (a directory: mkdir is atomic); a dead holder's is taken over. */
async function withMutex<T>(fn: () => Promise<T>): Promise<T> {
  fs.mkdirSync(STATE_DIR, { recursive: true });
  const deadline = Date.now() + 120_000;
  for (;;) {
    try {
      fs.mkdirSync(MUTEX);
      fs.writeFileSync(path.join(MUTEX, "pid"), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = Number.parseInt(fs.readFileSync(path.join(MUTEX, "pid"), { flag: "a+" }).toString(), 10);
      if (Number.isInteger(holder) && !alive(holder)) fs.rmSync(MUTEX, { recursive: true, force: true });
      else if (Date.now() > deadline)
        throw new Error(`${MUTEX} is held by pid ${holder}; remove it if stale`);
      else await new Promise((r) => setTimeout(r, 100));
    }
  }
  try {
    return await fn();
  } finally {
    fs.rmSync(MUTEX, { recursive: true, force: true });
  }
}

/** Pids of the live test runs holding a lease; leases of dead runs are removed. */
export function liveLeases(): number[] {
  fs.mkdirSync(LEASES, { recursive: true });
  return fs.readdirSync(LEASES).flatMap((name) => {
    const pid = Number.parseInt(name, 10);
    if (Number.isInteger(pid) && alive(pid)) return [pid];
    fs.rmSync(path.join(LEASES, name), { force: true });
    return [];
  });
}

function startedDaemon(): number | undefined {
  try {
    const { pid } = JSON.parse(fs.readFileSync(STARTED, "utf8")) as { pid: number };
    return alive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

let leases = 0;

export async function ensureDockerd(opts: { logDir: string }): Promise<Dockerd> {
  const startedHere = await withMutex(async () => {
    fs.mkdirSync(LEASES, { recursive: true });
    fs.writeFileSync(path.join(LEASES, String(process.pid)), "");
    leases++;
    if (await dockerPing()) return startedDaemon() !== undefined;
    // Detached: the daemon must outlive this run while another run holds a lease.
    const proc = startProcess("dockerd", "dockerd", [], { logDir: opts.logDir, detach: true });
    fs.writeFileSync(STARTED, JSON.stringify({ pid: proc.child.pid }));
    await waitFor(
      "dockerd",
      async () => {
        if (proc.child.exitCode !== null) throw new Error(`dockerd exited with code ${proc.child.exitCode}`);
        return dockerPing();
      },
      {
        timeoutMs: 60_000,
        intervalMs: 500,
        describe: () =>
          `${tail(proc.logFile)}\n(dockerd comes with the Debian package docker.io: apt-get install -y docker.io)`,
      },
    );
    return true;
  });
  let stopped = false;
  return {
    startedHere,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (--leases > 0) return;
      await withMutex(async () => {
        fs.rmSync(path.join(LEASES, String(process.pid)), { force: true });
        await stopUnleased();
      });
    },
  };
}

/** Stops the daemon a test run started if no live run holds a lease; true if it stopped one. */
async function stopUnleased(): Promise<boolean> {
  const daemon = startedDaemon();
  if (daemon === undefined || liveLeases().length > 0) return false;
  process.kill(daemon, "SIGTERM");
  const deadline = Date.now() + 20_000;
  while (alive(daemon) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  if (alive(daemon)) process.kill(daemon, "SIGKILL");
  fs.rmSync(STARTED, { force: true });
  return true;
}

/**
 * From a process that holds no lease (`npm run demo -- --down`): stops the daemon a test run or
 * the demo started, once every run that leased it is gone; a daemon that was running before any
 * of them, or one a live run still uses, is left alone.
 */
export function stopIdleDockerd(): Promise<boolean> {
  return withMutex(stopUnleased);
}

// A test run in miniature for tests/integration/docker.test.ts: takes a lease, says so, and gives
// it back when told to on stdin.
if (require.main === module) {
  (async () => {
    const dockerd = await ensureDockerd({ logDir: process.argv[2] ?? "." });
    process.stdout.write(`leased ${dockerd.startedHere}\n`);
    process.stdin.once("data", async () => {
      await dockerd.stop();
      process.stdout.write("released\n");
      process.exit(0);
    });
  })().catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}
