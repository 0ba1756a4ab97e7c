import * as assert from "node:assert/strict";
import {
  createLogger,
  errorMessage,
  logFn,
  REDACTED,
  redact,
  registerSecret,
  requestIdFrom,
} from "../../controller/shared/log";
import { readPrivateKey } from "../../controller/shared/secrets";

describe("structured logs", () => {
  const capture = (level?: "debug" | "info" | "warn" | "error") => {
    const lines: string[] = [];
    const logger = createLogger({
      component: "gateway",
      write: (l) => lines.push(l),
      now: () => new Date("2026-01-02T03:04:05.000Z"),
      ...(level ? { level } : {}),
    });
    return { logger, lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
  };

  it("writes one JSON object per line: level, time, component, msg, then the fields", () => {
    const { logger, lines, records } = capture();
    logger.child({ requestId: "req-12345678" }).info("settled", { amount: 1000n, offer: "paid" });
    assert.equal(lines.length, 1);
    assert.deepEqual(records()[0], {
      level: "info",
      time: "2026-01-02T03:04:05.000Z",
      component: "gateway",
      msg: "settled",
      requestId: "req-12345678",
      amount: "1000",
      offer: "paid",
    });
  });

  it("drops lines below the level and lets fields pick the level through logFn", () => {
    const { logger, records } = capture("warn");
    const log = logFn(logger);
    log("quiet");
    log("loud", { level: "error", error: new Error("boom", { cause: new Error("root") }) });
    assert.deepEqual(
      records().map((r) => [r.level, r.msg, r.error]),
      [["error", "loud", { message: "boom", cause: "root" }]],
    );
  });

  it("never prints a registered secret or a credential-named field, wherever it appears", () => {
    const key = `0x${"ab12".repeat(16)}`;
    const { logger, lines } = capture();
    readPrivateKey("TEST_SIGNER_KEY", { TEST_SIGNER_KEY: key.slice(2).toUpperCase() });
    logger.info(`failed with ${key}`, {
      nested: { detail: `key=${key.slice(2)}` },
      apiToken: "tok_not_registered",
      authorization: "Bearer abc",
      error: new Error(`signer ${key.toUpperCase()} refused`),
    });
    const text = lines.join("\n");
    assert.ok(!text.toLowerCase().includes(key.slice(2).toLowerCase()), text);
    assert.ok(!text.includes("tok_not_registered") && !text.includes("Bearer abc"), text);
    assert.equal(text.split(REDACTED).length - 1, 5, text);
  });

  it("redacts only registered values and leaves short ones alone", () => {
    registerSecret("hunter2-long-secret");
    registerSecret("abc");
    assert.equal(redact("pw hunter2-long-secret and abc"), `pw ${REDACTED} and abc`);
  });

  it("keeps a well-formed client request id and replaces anything else", () => {
    assert.equal(requestIdFrom("trace-0123456789"), "trace-0123456789");
    assert.equal(requestIdFrom(["abcdef-12345", "other"]), "abcdef-12345");
    for (const bad of [undefined, "", "short", "has space in it", 'quote"injection-123', "x".repeat(200)]) {
      assert.match(requestIdFrom(bad), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    }
  });

  it("describes any thrown value without throwing in turn", () => {
    assert.equal(errorMessage(new Error("boom")), "boom");
    assert.equal(errorMessage("plain"), "plain");
    assert.equal(errorMessage(undefined), "undefined");
    // String() throws on these: a catch block describing them must not fail in turn.
    const bare = Object.assign(Object.create(null), { errorReason: "x" });
    assert.equal(errorMessage(bare), '{"errorReason":"x"}');
    assert.equal(errorMessage({ toString: false }), '{"toString":false}');
    const cyclic: Record<string, unknown> = Object.create(null);
    cyclic.self = cyclic;
    assert.equal(errorMessage(cyclic), "[an unprintable object]");
    // An Error whose message is not a string (set after construction) is described too.
    const odd = new Error("x");
    (odd as unknown as { message: unknown }).message = Object.create(null);
    assert.equal(errorMessage(odd), "{}");
    assert.equal(errorMessage("y".repeat(1000)).length, 301);
  });
});
