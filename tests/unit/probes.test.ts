/**
 * The controller's probe path: the per-URL probe cache (TTL, in-flight de-duplication), the
 * pooled upstream prober against loopback servers, and the indexed path-claim resolution.
 */
import * as assert from "node:assert/strict";
import * as http from "node:http";
import type * as net from "node:net";
import { UpstreamProber } from "../../controller/reconciler/checks";
import { ProbeCache } from "../../controller/reconciler/probeCache";
import { pathsOverlap, resolveClaims } from "../../controller/shared/offers";
import { offerObject } from "./runtimeFixtures";

/** A promise with its resolve and reject, to settle a check when the test says so. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("runtime: probe cache", () => {
  it("shares one check in flight between all callers of a key", async () => {
    const cache = new ProbeCache<string>(1000);
    const d = deferred<string>();
    let calls = 0;
    const check = () => {
      calls++;
      return d.promise;
    };
    const answers = [cache.get("u", check), cache.get("u", check), cache.get("u", check)];
    assert.equal(calls, 1);
    d.resolve("up");
    assert.deepEqual(await Promise.all(answers), ["up", "up", "up"]);
    assert.equal(cache.checks, 1);
  });

  it("reuses a settled answer for the TTL after it settled, then checks again", async () => {
    let now = 0;
    const cache = new ProbeCache<number>(100, () => now);
    let calls = 0;
    const check = async () => ++calls;
    assert.equal(await cache.get("u", check), 1);
    now = 99;
    assert.equal(await cache.get("u", check), 1, "fresh within the TTL");
    now = 100;
    assert.equal(await cache.get("u", check), 2, "expired at the TTL");
    assert.equal(await cache.get("other", check), 3, "keys do not share answers");
  });

  it("measures the TTL from when a check settled, not from when it started", async () => {
    let now = 0;
    const cache = new ProbeCache<string>(100, () => now);
    const d = deferred<string>();
    const first = cache.get("u", () => d.promise);
    now = 500; // a slow check: still in flight long after the TTL
    assert.equal(
      cache.get("u", async () => "second"),
      first,
    );
    d.resolve("slow");
    assert.equal(await first, "slow");
    now = 550;
    assert.equal(await cache.get("u", async () => "again"), "slow");
  });

  it("does not cache a check that failed (nor one that threw synchronously)", async () => {
    const cache = new ProbeCache<string>(10_000);
    await assert.rejects(
      cache.get("u", async () => {
        throw new Error("boom");
      }),
      /boom/,
    );
    await assert.rejects(
      cache.get("u", () => {
        throw new Error("sync boom");
      }),
      /sync boom/,
    );
    assert.equal(await cache.get("u", async () => "ok"), "ok");
    assert.equal(cache.checks, 3);
  });

  it("forgets a key on invalidate, and sweeps expired keys once it grows", async () => {
    let now = 0;
    const cache = new ProbeCache<number>(10, () => now, 4);
    for (let i = 0; i < 4; i++) await cache.get(`k${i}`, async () => i);
    assert.equal(cache.size, 4);
    cache.invalidate("k0");
    assert.equal(cache.size, 3);
    now = 20;
    await cache.get("k9", async () => 9);
    await cache.get("k10", async () => 10);
    assert.equal(cache.size, 2, "expired entries were swept");
  });
});

describe("runtime: upstream prober", () => {
  let server: http.Server;
  let base: string;
  let status = 200;
  let delayMs = 0;
  let requests = 0;
  const connections = new Set<net.Socket>();
  let opened = 0;

  before(async () => {
    server = http.createServer((req, res) => {
      requests++;
      assert.equal(req.headers["user-agent"], "obol-stack-controller/0.1");
      setTimeout(() => res.writeHead(status).end("body"), delayMs);
    });
    server.on("connection", (s) => {
      opened++;
      connections.add(s);
      s.on("close", () => connections.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });

  after(async () => {
    for (const s of connections) s.destroy();
    await new Promise((r) => server.close(r));
  });

  beforeEach(() => {
    status = 200;
    delayMs = 0;
    requests = 0;
    opened = 0;
  });

  it("probes many offers on one upstream with one request, and keeps the connection alive", async () => {
    const prober = new UpstreamProber({ timeoutMs: 1000, cacheTtlMs: 50 });
    try {
      delayMs = 20;
      const answers = await Promise.all(
        Array.from({ length: 50 }, () => prober.probe(new URL(`${base}/health`))),
      );
      assert.equal(requests, 1);
      assert.ok(answers.every((a) => a.ok));
      assert.deepEqual(answers[0], { ok: true, url: `${base}/health`, status: 200 });
      await new Promise((r) => setTimeout(r, 60));
      await prober.probe(new URL(`${base}/health`));
      assert.equal(requests, 2, "checked again after the TTL");
      assert.equal(opened, 1, "over the same kept-alive connection");
      assert.equal(prober.requests, 2);
    } finally {
      prober.close();
    }
  });

  it("names non-2xx answers Unhealthy and silence Unreachable, within the timeout", async () => {
    const prober = new UpstreamProber({ timeoutMs: 150, cacheTtlMs: 0 });
    try {
      status = 404;
      const unhealthy = await prober.probe(new URL(`${base}/health`));
      assert.equal(unhealthy.ok, false);
      assert.equal(!unhealthy.ok && unhealthy.reason, "Unhealthy");
      assert.match(!unhealthy.ok ? unhealthy.message : "", /answered 404; the health path must answer 2xx/);

      status = 200;
      delayMs = 1000;
      const started = Date.now();
      const slow = await prober.probe(new URL(`${base}/slow`));
      assert.ok(Date.now() - started < 900, "the probe gave up at its timeout");
      assert.equal(!slow.ok && slow.reason, "Unreachable");
      assert.match(!slow.ok ? slow.message : "", /GET .*\/slow failed: no answer within 150 ms/);
    } finally {
      prober.close();
    }
  });

  it("reports a refused connection as Unreachable", async () => {
    const prober = new UpstreamProber({ timeoutMs: 1000, cacheTtlMs: 0 });
    try {
      const closed = http.createServer();
      await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
      const port = (closed.address() as net.AddressInfo).port;
      await new Promise((r) => closed.close(r));
      const down = await prober.probe(new URL(`http://127.0.0.1:${port}/health`));
      assert.equal(!down.ok && down.reason, "Unreachable");
      assert.match(!down.ok ? down.message : "", /ECONNREFUSED/);
    } finally {
      prober.close();
    }
  });

  it("retries once when the upstream closed a kept-alive connection meanwhile", async () => {
    const prober = new UpstreamProber({ timeoutMs: 1000, cacheTtlMs: 0 });
    try {
      assert.equal((await prober.probe(new URL(`${base}/health`))).ok, true);
      // The server drops its idle connections; the pooled socket may not have noticed yet.
      for (const s of connections) s.destroy();
      assert.equal((await prober.probe(new URL(`${base}/health`))).ok, true);
    } finally {
      prober.close();
    }
  });
});

describe("runtime: indexed path claims", () => {
  /** The reference: the first older winner that overlaps, by a scan of every winner. */
  function bruteForce(paths: string[]): (string | undefined)[] {
    const winners: string[] = [];
    return paths.map((p) => {
      const clash = winners.find((w) => pathsOverlap(w, p));
      if (!clash) winners.push(p);
      return clash;
    });
  }

  it("finds the same (oldest) overlapping claim as a scan of all claims", () => {
    const segments = ["a", "b", "ab", "c"];
    let seed = 7;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let round = 0; round < 200; round++) {
      const paths = Array.from({ length: 12 }, () => {
        const depth = 1 + Math.floor(random() * 3);
        return `/${Array.from({ length: depth }, () => segments[Math.floor(random() * segments.length)]).join("/")}`;
      });
      const offers = paths.map((p, i) =>
        offerObject(`o${String(i).padStart(2, "0")}`, { path: p }, { created: "2026-01-01T00:00:00Z" }),
      );
      const verdicts = resolveClaims(offers);
      const expected = bruteForce(paths);
      paths.forEach((p, i) => {
        const v = verdicts.get(`ns/o${String(i).padStart(2, "0")}`)!;
        if (expected[i] === undefined) {
          assert.equal(v.ok, true, `${p} in ${JSON.stringify(paths)}`);
        } else {
          assert.ok(!v.ok && v.reason === "PathConflict", `${p} in ${JSON.stringify(paths)}`);
          assert.match(v.message, new RegExp(` overlaps ${expected[i]!.replace(/[/]/g, "\\/")}, `));
        }
      });
    }
  });

  // How it scales is measured by `npm run bench:claims`; a timed assertion here failed under load.
  it("resolves 5000 offers on distinct paths, all claims granted, the same on a second pass", () => {
    const offers = Array.from({ length: 5000 }, (_, i) => offerObject(`offer-${i}`));
    const verdicts = resolveClaims(offers);
    const again = resolveClaims(offers);
    assert.equal([...verdicts.values()].filter((v) => v.ok).length, 5000);
    assert.deepEqual([...again.entries()], [...verdicts.entries()]);
  });
});
