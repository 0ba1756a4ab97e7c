/**
 * The one start-up routine of the runtime's sub-commands (controller, gateway, facilitator,
 * buyer): settings from flags and the environment, the start line, a graceful shutdown on
 * SIGTERM/SIGINT bounded by a deadline, and an exit on an unhandled error.
 *
 * Signal handlers are installed before the command starts: a SIGTERM during start-up (the
 * controller waiting for its lease) ends the process cleanly like one that arrives later. They
 * stay installed (`on`, not `once`): a second SIGTERM, e.g. relayed by a wrapper, joins the
 * shutdown under way instead of killing the process with the default action.
 */

import { parseSettings, type Settings, type SettingsSpec } from "./flags";
import { createLogger, errorMessage, type LogFn, logFn } from "./log";

export interface CommandContext<K extends string> {
  readonly settings: Settings<K>;
  /** Timestamped line on stdout. */
  /** A JSON log line (shared/log.ts) with the command's name as its component. */
  readonly log: LogFn;
  /** Aborted when shutdown begins: long waits (a lease, a retry loop) end on it. */
  readonly signal: AbortSignal;
  /** Begins the graceful shutdown from inside the command (e.g. lost leadership). */
  shutdown(code: number, why: string): void;
}

export interface StartedCommand {
  /** The rest of the start line, after "<command>: ". */
  readonly summary: string;
  /** Finishes in-flight work and releases what the command holds (leases, sockets, files). */
  stop(): Promise<void>;
}

export interface Command<K extends string> {
  readonly name: string;
  readonly settings: SettingsSpec<K>;
  /** How long a shutdown may take before the process exits anyway (a Pod gets 30 s). */
  readonly shutdownDeadlineMs: number;
  /**
   * Starts serving and resolves once the command is up. Work that goes on afterwards (waiting
   * for a lease) runs in the background and reports failures through `shutdown`.
   */
  start(ctx: CommandContext<K>): Promise<StartedCommand>;
}

/** What the routine needs from the process; tests pass their own. */
export interface ProcessHost {
  readonly env: NodeJS.ProcessEnv;
  onSignal(signal: "SIGTERM" | "SIGINT", handler: () => void): void;
  /** An uncaught exception or unhandled rejection. */
  onFatal(handler: (err: unknown) => void): void;
  exit(code: number): void;
  log(line: string): void;
}

export const nodeProcess: ProcessHost = {
  env: process.env,
  onSignal: (signal, handler) => process.on(signal, handler),
  onFatal: (handler) => {
    process.on("uncaughtException", handler);
    process.on("unhandledRejection", handler);
  },
  exit: (code) => process.exit(code),
  log: (line) => console.log(line),
};

function describe(err: unknown): string {
  return err instanceof Error && typeof err.stack === "string" ? err.stack : errorMessage(err);
}

/** A plain Error at start-up is a setting to fix: its message says which. Anything else is a bug. */
function startFailure(err: unknown): string {
  return err instanceof Error && err.constructor === Error ? err.message : describe(err);
}

/**
 * Runs `command` with `argv` until a signal or `shutdown` stops it. Resolves once it is up;
 * a start-up failure is logged and exits 1 (nothing was started that needs stopping).
 */
export async function runCommand<K extends string>(
  command: Command<K>,
  argv: readonly string[],
  host: ProcessHost = nodeProcess,
): Promise<void> {
  const log = logFn(createLogger({ component: command.name, write: (line) => host.log(line) }));
  const aborter = new AbortController();
  let exited = false;
  const exit = (code: number) => {
    if (exited) return;
    exited = true;
    host.exit(code);
  };
  let starting: Promise<StartedCommand | undefined> = Promise.resolve(undefined);
  let stopping: Promise<void> | undefined;
  const shutdown = (code: number, why: string): Promise<void> => {
    // Later signals join the shutdown already under way.
    stopping ??= (async () => {
      log(`${command.name}: stopping (${why})`);
      aborter.abort();
      const deadline = setTimeout(() => {
        log(`${command.name}: shutdown did not finish within ${command.shutdownDeadlineMs} ms; exiting`);
        exit(code || 1);
      }, command.shutdownDeadlineMs);
      deadline.unref();
      let failed = false;
      try {
        // A start in progress finishes first (it sees the aborted signal), then stops.
        const started = await starting.catch(() => undefined);
        await started?.stop();
      } catch (err) {
        failed = true;
        log(`${command.name}: shutdown failed: ${describe(err)}`);
      }
      clearTimeout(deadline);
      exit(failed ? code || 1 : code);
    })();
    return stopping;
  };
  host.onSignal("SIGTERM", () => void shutdown(0, "SIGTERM"));
  host.onSignal("SIGINT", () => void shutdown(0, "SIGINT"));
  host.onFatal((err) => {
    log(`${command.name}: unhandled error: ${describe(err)}`);
    void shutdown(1, "unhandled error");
  });

  const start = (async () =>
    command.start({
      settings: parseSettings(command.settings, argv, host.env),
      log,
      signal: aborter.signal,
      shutdown: (code, why) => void shutdown(code, why),
    }))();
  starting = start;
  let started: StartedCommand;
  try {
    started = await start;
  } catch (err) {
    log(`${command.name}: cannot start: ${startFailure(err)}`);
    exit(1);
    return;
  }
  log(`${command.name}: ${started.summary}`);
}
