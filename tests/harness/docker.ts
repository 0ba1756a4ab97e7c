import { execFile } from "node:child_process";
import { type ManagedProcess, startProcess, tail, waitFor } from "./processes";

/**
 * The Docker daemon the image builds need. A daemon that is already running is used as it is;
 * one this harness starts is stopped by `stop()` (and with the test run), never any other.
 */
export interface Dockerd {
  /** True when this process started the daemon (so `stop()` stops it). */
  readonly startedHere: boolean;
  stop(): Promise<void>;
}

function dockerPing(): Promise<boolean> {
  return new Promise((resolve) => {
    execFile("docker", ["version", "--format", "{{.Server.Version}}"], { timeout: 10_000 }, (err, out) =>
      resolve(!err && out.trim().length > 0),
    );
  });
}

let started: { proc: ManagedProcess; users: number } | undefined;

export async function ensureDockerd(opts: { logDir: string }): Promise<Dockerd> {
  if (!started && (await dockerPing())) return { startedHere: false, stop: async () => undefined };
  if (!started) {
    const proc = startProcess("dockerd", "dockerd", [], { logDir: opts.logDir });
    started = { proc, users: 0 };
    await waitFor(
      "dockerd",
      async () => {
        if (proc.child.exitCode !== null) {
          throw new Error(`dockerd exited with code ${proc.child.exitCode}`);
        }
        return dockerPing();
      },
      {
        timeoutMs: 60_000,
        intervalMs: 500,
        describe: () =>
          `${tail(proc.logFile)}\n(dockerd comes with the Debian package docker.io: apt-get install -y docker.io)`,
      },
    );
  }
  const mine = started;
  mine.users++;
  let stopped = false;
  return {
    startedHere: true,
    async stop() {
      if (stopped) return;
      stopped = true;
      if (--mine.users > 0) return;
      if (started === mine) started = undefined;
      await mine.proc.stop(20_000);
    },
  };
}
