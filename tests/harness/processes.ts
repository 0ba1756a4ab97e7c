import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";

/** A free TCP port on loopback (or another local address), chosen by the kernel. */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, host, () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}

const live = new Set<ChildProcess>();

// Children are started in their own process group so that a crashed test run can still kill
// them (and anything they spawned) on exit; `exit` handlers must be synchronous.
function killAllSync(): void {
  for (const child of live) {
    if (child.pid && child.exitCode === null) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  }
  live.clear();
}
process.on("exit", killAllSync);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAllSync();
    process.exit(130);
  });
}

export interface ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
  /**
   * Lets the process outlive this one (it is no longer killed when this one exits); returns its
   * pid, by which a later process stops it (`npm run demo -- --keep`, then `-- --down`).
   */
  handOver(): number;
}

/** Starts a long-running binary with output to `<logDir>/<name>.log`. */
export function startProcess(
  name: string,
  command: string,
  args: string[],
  opts: { logDir: string; env?: NodeJS.ProcessEnv; cwd?: string; detach?: boolean | undefined },
): ManagedProcess {
  fs.mkdirSync(opts.logDir, { recursive: true });
  const logFile = path.join(opts.logDir, `${name}.log`);
  const out = fs.openSync(logFile, "a");
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ["ignore", out, out],
    detached: true,
  });
  fs.closeSync(out);
  // A detached process outlives this one (the k3d stand-in starts clusters that way).
  if (opts.detach) child.unref();
  else live.add(child);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null) resolve();
    child.once("exit", () => {
      live.delete(child);
      resolve();
    });
    child.once("error", () => {
      live.delete(child);
      resolve();
    });
  });
  return {
    name,
    child,
    logFile,
    handOver() {
      live.delete(child);
      child.unref();
      if (!child.pid) throw new Error(`${name} has no pid: it did not start`);
      return child.pid;
    },
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // exited meanwhile
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/**
 * Stops processes this one did not start (handed over by an earlier one, see
 * `ManagedProcess.handOver`): SIGTERM to each one's process group (or to the process, when it
 * leads none), SIGKILL to those still there after `graceMs`.
 */
export async function stopProcessGroups(pids: number[], graceMs = 15_000): Promise<void> {
  const signal = (pid: number, sig: NodeJS.Signals) => {
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // exited already
      }
    }
  };
  for (const pid of pids) signal(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
  for (const pid of pids.filter(alive)) signal(pid, "SIGKILL");
  const killed = Date.now() + 5000;
  while (pids.some(alive) && Date.now() < killed) await new Promise((r) => setTimeout(r, 100));
}

/** The last lines of a log file, for error messages that say what went wrong. */
export function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Polls `check` until it returns true, or throws after `timeoutMs` with `describe()`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; describe?: () => string },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
  const detail = opts.describe ? `\n${opts.describe()}` : "";
  throw new Error(
    `timed out after ${opts.timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}${detail}`,
  );
}

/** Whether process `pid` exists (one owned by another user counts: signalling it is refused, not failed). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
