/**
 * The runtime's one start-up routine (controller/shared/startup.ts), driven through a recorded
 * process host: signals, exits and log lines are observed instead of acted on.
 */
import * as assert from "node:assert/strict";
import { parseFlags, parseSettings } from "../../controller/shared/flags";
import { type Command, type ProcessHost, runCommand } from "../../controller/shared/startup";

class RecordedHost implements ProcessHost {
  readonly lines: string[] = [];
  readonly exits: number[] = [];
  private readonly handlers = new Map<string, (() => void)[]>();
  private fatal: ((err: unknown) => void)[] = [];
  private exited?: () => void;
  readonly exitedOnce = new Promise<void>((resolve) => {
    this.exited = resolve;
  });

  constructor(readonly env: NodeJS.ProcessEnv = {}) {}

  onSignal(signal: string, handler: () => void): void {
    this.handlers.set(signal, [...(this.handlers.get(signal) ?? []), handler]);
  }
  onFatal(handler: (err: unknown) => void): void {
    this.fatal.push(handler);
  }
  exit(code: number): void {
    this.exits.push(code);
    this.exited?.();
  }
  log(line: string): void {
    this.lines.push(line);
  }
  signal(name: "SIGTERM" | "SIGINT"): void {
    for (const h of this.handlers.get(name) ?? []) h();
  }
  crash(err: unknown): void {
    for (const h of this.fatal) h(err);
  }
  /** The messages of the JSON log lines. */
  messages(): string[] {
    return this.lines.map((l) => String((JSON.parse(l) as { msg: unknown }).msg));
  }
}

const SETTINGS = { port: { env: "PORT" }, name: {} } as const;

/** A command whose start and stop the test controls and observes. */
function probeCommand(opts: { startGate?: Promise<void>; stop?: () => Promise<void>; deadlineMs?: number }) {
  const seen = { stops: 0, port: 0, name: undefined as string | undefined, aborted: false };
  let ctx: Parameters<Command<keyof typeof SETTINGS>["start"]>[0] | undefined;
  const command: Command<keyof typeof SETTINGS> = {
    name: "probe",
    settings: SETTINGS,
    shutdownDeadlineMs: opts.deadlineMs ?? 1_000,
    async start(c) {
      ctx = c;
      seen.port = c.settings.int("port", 1);
      seen.name = c.settings.string("name");
      await opts.startGate;
      seen.aborted = c.signal.aborted;
      return {
        summary: `listening on ${seen.port}`,
        stop: async () => {
          seen.stops++;
          await opts.stop?.();
        },
      };
    },
  };
  return { command, seen, ctx: () => ctx };
}

describe("runtime: settings", () => {
  it("parses --name value and --name=value, and rejects unknown flags with the known ones", () => {
    assert.deepEqual(parseFlags(["--a", "1", "--b=2"], ["a", "b"]), { a: "1", b: "2" });
    assert.throws(() => parseFlags(["--c", "1"], ["a"]), /known flags are --a/);
    assert.throws(() => parseFlags(["--a"], ["a"]), /needs a value/);
  });

  it("reads a flag, else its environment variable; an empty value is unset", () => {
    const spec = { port: { env: "PORT" }, host: { env: "HOST" }, mode: {} } as const;
    const s = parseSettings(spec, ["--port", "81", "--host="], { PORT: "80", HOST: "h.local" });
    assert.equal(s.int("port", 1), 81, "the flag wins");
    assert.equal(s.string("host"), "h.local", "an empty flag falls back to the environment");
    assert.equal(s.string("mode"), undefined);
    assert.equal(parseSettings(spec, [], { PORT: "" }).int("port", 8080), 8080, "an empty variable is unset");
  });

  it("names the flag and its variable when a value is wrong, and lists known flags for a typo", () => {
    const spec = { port: { env: "PORT" } } as const;
    assert.throws(
      () => parseSettings(spec, [], { PORT: "eighty" }).int("port", 1),
      /--port \(or \$PORT\) must be a non-negative integer, got "eighty"/,
    );
    assert.throws(
      () => parseSettings(spec, ["--prot", "1"], {}),
      /unknown flag --prot: known flags are --port/,
    );
  });
});

describe("runtime: start-up routine", () => {
  it("logs the start line once up, and stops once on SIGTERM however often it arrives", async () => {
    const host = new RecordedHost({ PORT: "9000" });
    const { command, seen } = probeCommand({});
    await runCommand(command, ["--name", "x"], host);
    assert.deepEqual(host.messages(), ["probe: listening on 9000"]);
    assert.equal(seen.name, "x");
    host.signal("SIGTERM");
    host.signal("SIGTERM");
    host.signal("SIGINT");
    await host.exitedOnce;
    assert.equal(seen.stops, 1);
    assert.deepEqual(host.exits, [0]);
    assert.deepEqual(host.messages().slice(1), ["probe: stopping (SIGTERM)"]);
  });

  it("lets a start in progress finish, then stops it: a SIGTERM during start-up exits 0", async () => {
    const host = new RecordedHost();
    let release!: () => void;
    const { command, seen } = probeCommand({ startGate: new Promise((r) => (release = r)) });
    const running = runCommand(command, [], host);
    host.signal("SIGTERM");
    await new Promise((r) => setImmediate(r));
    assert.equal(seen.stops, 0, "nothing to stop before start returned");
    release();
    await running;
    await host.exitedOnce;
    assert.equal(seen.aborted, true, "start saw the shutdown signal");
    assert.equal(seen.stops, 1);
    assert.deepEqual(host.exits, [0]);
  });

  it("exits 1 after the deadline when stopping hangs", async () => {
    const host = new RecordedHost();
    const { command, seen } = probeCommand({ stop: () => new Promise(() => undefined), deadlineMs: 50 });
    await runCommand(command, [], host);
    const t0 = Date.now();
    host.signal("SIGINT");
    await host.exitedOnce;
    assert.ok(Date.now() - t0 >= 45, "not before the deadline");
    assert.equal(seen.stops, 1);
    assert.deepEqual(host.exits, [1]);
    assert.match(host.messages().at(-1) ?? "", /probe: shutdown did not finish within 50 ms; exiting/);
  });

  it("exits with the command's code when it shuts itself down, and 1 when stopping fails", async () => {
    const host = new RecordedHost();
    const { command, ctx } = probeCommand({});
    await runCommand(command, [], host);
    ctx()?.shutdown(1, "lost leadership");
    await host.exitedOnce;
    assert.deepEqual(host.exits, [1]);
    assert.ok(host.messages().includes("probe: stopping (lost leadership)"));

    const failing = new RecordedHost();
    const broken = probeCommand({ stop: () => Promise.reject(new Error("socket stuck")) });
    await runCommand(broken.command, [], failing);
    failing.signal("SIGTERM");
    await failing.exitedOnce;
    assert.deepEqual(failing.exits, [1]);
    assert.ok(failing.messages().some((m) => m.startsWith("probe: shutdown failed: Error: socket stuck")));
  });

  it("exits 1 on a start-up failure with the message that names the setting, and stops nothing", async () => {
    const host = new RecordedHost({ PORT: "-1" });
    const { command, seen } = probeCommand({});
    await runCommand(command, [], host);
    assert.deepEqual(host.exits, [1]);
    assert.deepEqual(host.messages(), [
      'probe: cannot start: --port (or $PORT) must be a non-negative integer, got "-1"',
    ]);
    assert.equal(seen.stops, 0);
  });

  it("stops gracefully and exits 1 on an unhandled error", async () => {
    const host = new RecordedHost();
    const { command, seen } = probeCommand({});
    await runCommand(command, [], host);
    host.crash(new TypeError("x is undefined"));
    await host.exitedOnce;
    assert.equal(seen.stops, 1);
    assert.deepEqual(host.exits, [1]);
    assert.match(host.messages()[1] ?? "", /^probe: unhandled error: TypeError: x is undefined/);
  });
});
