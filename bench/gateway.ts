/**
 * `npm run bench:gateway`: throughput and latency of the x402 gateway, every process on loopback.
 *   (a) a bare Node reverse proxy to the same upstream (the reference)
 *   (b) the gateway on a free route            → ratio (b)/(a), goal ≥ 0.8
 *   (c) the gateway answering 402
 *   (d) the gateway on a paid route: local checks + verification with the self-run facilitator
 *       (anvil), proxied; the upstream answers 500 so settlement (one chain transaction per
 *       request, by design) is excluded from the measurement.
 *   (e) the same paid workload through the official @x402/express middleware (bench/expressPeer.ts)
 *                                              → ratio (d)/(e), goal ≥ 1
 *   (f) the same paid workload with batch-settlement channels: one channel per client (opened
 *       by a deposit before the clock starts), each call paid by a voucher the gateway checks
 *       itself and records as charged (durably) before answering; the upstream answers 200, so
 *       unlike (d) every call is charged     → ratios (f)/(d), goal ≥ 10, and (f)/(b), goal ≥ 0.5
 *       ((b) measured again in rounds alternating with (f)'s, each with the CPU it took per request:
 *       the whole machine's, the gateway's event loop's and its other threads')
 * Each compared pair, (a)/(b) and (d)/(e), is warmed up, then run BENCH_ROUNDS times in
 * alternating order (the best round counts): on a small shared machine run order and noise
 * otherwise decide the ratio. Paid runs use never-used authorizations and report the CPU each
 * server and the facilitator spend per paid request (those processes share the cores).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { x402Client } from "@x402/core/client";
import { decodePaymentRequiredHeader, encodePaymentSignatureHeader } from "@x402/core/http";
import { registerExactEvmScheme } from "@x402/evm/exact/client";
import { privateKeyToAccount } from "viem/accounts";
import { ANVIL_KEYS } from "../tests/harness/anvil";
import { at } from "../tests/harness/assertions";
import { freePort, startProcess, waitFor } from "../tests/harness/processes";
import { sampleValue } from "../tests/harness/promql";
import { TSX_LOADER } from "../tests/integration/runtime/helpers";
import { VoucherChannel } from "./channels";
import { type LoadResult, load, row } from "./load";
import { BENCH_PAY_TO, type BenchRig, readyOffer, withBenchRig } from "./rig";

/** CPU seconds (user + system) a process has used so far, from /proc (Linux). */
function cpuSeconds(pid: number | undefined): number {
  if (!pid) return Number.NaN;
  try {
    const fields = (fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1] ?? "").split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return Number.NaN;
  }
}

/** CPU ticks the whole machine has spent (every CPU: user, nice, system, irq, softirq), from /proc/stat. */
function machineTicks(): number {
  const f = (fs.readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0);
}

/**
 * CPU ticks of a process's main thread (its event loop), of libuv's thread pool (file writes and
 * syncs) and of its other threads together (V8's GC and compiler helpers, worker threads).
 */
function threadTicks(pid: number | undefined): { loop: number; io: number; others: number } {
  const out = { loop: 0, io: 0, others: 0 };
  if (!pid) return out;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const fields = (stat.split(") ")[1] ?? "").split(" ");
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const kind = Number(tid) === pid ? "loop" : name === "libuv-worker" ? "io" : "others";
      out[kind] += Number(fields[11]) + Number(fields[12]);
    } catch {
      // a thread that ended meanwhile
    }
  }
  return out;
}

/** Per request, in µs: the whole machine's CPU, the gateway's event loop and its other threads. */
interface CpuShare {
  machine: number;
  loop: number;
  /** libuv's thread pool: the channel journal's writes and syncs. */
  io: number;
  /** The signature thread, V8's GC and compiler helpers. */
  others: number;
  /** Times the event loop's thread was preempted (involuntary context switches). */
  preempted: number;
}

/** Involuntary context switches of a process's main thread so far: the times it was preempted. */
function preemptions(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const status = fs.readFileSync(`/proc/${pid}/task/${pid}/status`, "utf8");
    return Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Runs `run` and says what CPU it took per request (USER_HZ = 100: ticks are 10 ms). */
async function withCpuShare(
  pid: number | undefined,
  run: () => Promise<LoadResult>,
): Promise<[LoadResult, CpuShare]> {
  const before = { machine: machineTicks(), ...threadTicks(pid), preempted: preemptions(pid) };
  const result = await run();
  const after = { machine: machineTicks(), ...threadTicks(pid), preempted: preemptions(pid) };
  const perRequest = (ticks: number) => (ticks * 10_000) / Math.max(1, result.requests);
  return [
    result,
    {
      machine: perRequest(after.machine - before.machine),
      loop: perRequest(after.loop - before.loop),
      io: perRequest(after.io - before.io),
      others: perRequest(after.others - before.others),
      preempted: (after.preempted - before.preempted) / Math.max(1, result.requests),
    },
  ];
}

/** Pre-signed payment headers, each handed out once (then, if exhausted, again: flagged). */
class PaymentPool {
  private cursor = 0;
  wrapped = false;
  constructor(private readonly headers: string[]) {}
  next(): string {
    let header = this.headers[this.cursor++];
    if (header === undefined) {
      this.cursor = 0;
      this.wrapped = true;
      header = this.headers[this.cursor++];
      if (header === undefined) throw new Error("the payment pool is empty");
    }
    return header;
  }
}

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
/**
 * Vouchers signed ahead per channel in (f) (a channel that runs out signs during the run, which
 * slows it: noted). Default: enough for (f) at 0.7 of (b)'s rate, more than (f) has reached.
 */
const CHANNEL_VOUCHERS = process.env.BENCH_CHANNEL_VOUCHERS
  ? Number(process.env.BENCH_CHANNEL_VOUCHERS)
  : undefined;
const WARMUP_SECONDS = 2;
/** BENCH_ONLY=channels: only (f) and (b) in alternating rounds (for work on the channel path). */
const CHANNELS_ONLY = process.env.BENCH_ONLY === "channels";
const REPO = path.resolve(__dirname, "..");

/** What the runs share: the rig, the bench offer's URLs, the buyer's account and CPU records. */
interface BenchContext {
  readonly rig: BenchRig;
  readonly buyer: ReturnType<typeof privateKeyToAccount>;
  readonly upstreamPort: number;
  /** The bench offer on the gateway. */
  readonly gw: string;
  readonly freeUrl: string;
  readonly cpu: {
    gateway: number;
    express: number;
    channels: number;
    facilitatorForGateway: number;
    facilitatorForExpress: number;
    facilitatorForChannels: number;
  };
}

const best = (rs: LoadResult[]) => rs.reduce((a, b) => (b.rps > a.rps ? b : a));

async function main() {
  await withBenchRig("bench-gateway", async (rig) => {
    const { chain } = rig;
    const buyer = privateKeyToAccount(ANVIL_KEYS[2]);
    await chain.mint(buyer.address, 1_000_000_000n);
    const upstreamPort = await freePort();
    rig.server("upstream", ["upstream", String(upstreamPort)]);
    await readyOffer(
      rig,
      "bench",
      { asset: chain.asset, price: { perRequest: "0.001" } },
      {
        type: "http",
        upstream: { url: `http://127.0.0.1:${upstreamPort}`, healthPath: "/health" },
        schemes: ["exact", "batch-settlement"],
        path: "/services/bench",
        routes: [{ path: "/free/*", gate: "free" }],
      },
    );
    const gw = `${rig.publicUrl}/services/bench`;
    const freeUrl = `${gw}/free/x`;
    await waitFor("the route", async () => (await fetch(freeUrl)).status === 200, {
      timeoutMs: 10_000,
    });
    console.log(`gateway benchmark: ${CONCURRENCY} concurrent clients, ${SECONDS} s per run, loopback`);
    const ctx: BenchContext = {
      rig,
      buyer,
      upstreamPort,
      gw,
      freeUrl,
      cpu: {
        gateway: 0,
        express: 0,
        channels: 0,
        facilitatorForGateway: 0,
        facilitatorForExpress: 0,
        facilitatorForChannels: 0,
      },
    };
    // (b)'s first rate sizes (f)'s vouchers; (d)'s is what (f) is compared with.
    const { free, paid } = CHANNELS_ONLY
      ? { free: await warmFree(ctx), paid: undefined }
      : await freeAndExact(ctx);
    await channelsAgainstFree(ctx, free, paid);
  });
}

/** BENCH_ONLY=channels: (b) warmed up and measured once, to size (f)'s vouchers. */
async function warmFree({ freeUrl }: BenchContext): Promise<LoadResult> {
  // Twice: the first warms the gateway up.
  await load({ url: freeUrl, seconds: WARMUP_SECONDS, concurrency: CONCURRENCY });
  const free = await load({ url: freeUrl, seconds: WARMUP_SECONDS, concurrency: CONCURRENCY });
  console.log(row("(b) gateway, free route (warm-up)", free));
  return free;
}

/** (a) to (e): the bare proxy and the @x402/express peer are started for these alone. */
async function freeAndExact(ctx: BenchContext): Promise<{ free: LoadResult; paid: LoadResult }> {
  const { rig, buyer, upstreamPort, gw, freeUrl, cpu } = ctx;
  const { chain, logDir, facilitator, facilitatorUrl } = rig;
  const [barePort, expressPort] = await Promise.all([freePort(), freePort()]);
  rig.server("bare-proxy", ["bare-proxy", String(barePort), String(upstreamPort)]);
  const expressPeer = startProcess(
    "express-peer",
    process.execPath,
    [
      "--import",
      TSX_LOADER,
      path.join(REPO, "bench/expressPeer.ts"),
      String(expressPort),
      String(upstreamPort),
      facilitatorUrl,
      chain.network,
      BENCH_PAY_TO,
      JSON.stringify(chain.asset),
    ],
    { logDir },
  );
  rig.adopt(expressPeer);
  const peer = `http://127.0.0.1:${expressPort}`;
  await waitFor(
    "the express peer",
    async () => (await fetch(`${peer}/fail`).catch(() => undefined))?.status === 402,
    { timeoutMs: 30_000 },
  );
  const bareUrl = `http://127.0.0.1:${barePort}/free/x`;
  await waitFor("the bare proxy", async () => (await fetch(bareUrl).catch(() => undefined))?.status === 200, {
    timeoutMs: 30_000,
  });

  // Pre-signed payments (signing is the buyer's cost, not the gateway's).
  const required = decodePaymentRequiredHeader((await fetch(`${gw}/fail`)).headers.get("payment-required")!);
  const client = new x402Client();
  registerExactEvmScheme(client, { signer: buyer });
  client.setSpendControls(false);
  // Each paid run draws fresh authorizations from its own pool: a reused one would be refused
  // locally as a replay, which is cheaper than a verification and would flatter the numbers.
  const perRun = CONCURRENCY * (SECONDS + WARMUP_SECONDS) * 10;
  const peerRequired = decodePaymentRequiredHeader(
    (await fetch(`${peer}/fail`)).headers.get("payment-required")!,
  );
  const sign = async (req: typeof required, count: number) => {
    const out: string[] = [];
    for (let i = 0; i < count; i++)
      out.push(encodePaymentSignatureHeader(await client.createPaymentPayload(req)));
    return new PaymentPool(out);
  };
  const gatewayPayments = await sign(required, perRun * ROUNDS);
  const peerPayments = await sign(peerRequired, perRun * ROUNDS);
  // (a) and (b), like (d) and (e) below: warmed, then alternating rounds, best round counts.
  for (const url of [bareUrl, freeUrl])
    await load({ url, seconds: WARMUP_SECONDS, concurrency: CONCURRENCY });
  const bareRounds: LoadResult[] = [];
  const freeRounds: LoadResult[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const url of round % 2 === 0 ? [bareUrl, freeUrl] : [freeUrl, bareUrl]) {
      const result = await load({ url, seconds: SECONDS, concurrency: CONCURRENCY });
      (url === bareUrl ? bareRounds : freeRounds).push(result);
    }
  }
  const bare = best(bareRounds);
  const free = best(freeRounds);
  console.log(row("(a) bare Node reverse proxy", bare));
  console.log(row("(b) gateway, free route", free));
  console.log(
    `    rounds (req/s): bare ${bareRounds.map((r) => r.rps.toFixed(0)).join(", ")}; gateway ${freeRounds.map((r) => r.rps.toFixed(0)).join(", ")}`,
  );
  const unpaid = await load({ url: `${gw}/paid`, seconds: SECONDS, concurrency: CONCURRENCY });
  console.log(row("(c) gateway, 402 answer", unpaid));
  // (d) and (e) share the facilitator and anvil, so neither may inherit the other's warm-up:
  // both are warmed first, then measured in alternating order, and the best round counts.
  // CPU per request of the server under test and of the facilitator: on a small machine they
  // compete for the same cores, so a server's own cost shows up as facilitator throughput.
  const paidRun = async (url: string, pool: PaymentPool, seconds: number, server?: "gateway" | "express") => {
    const serverPid = server === "gateway" ? rig.gateway.child.pid : expressPeer.child.pid;
    const before = { server: cpuSeconds(serverPid), facilitator: cpuSeconds(facilitator.child.pid) };
    const result = await load({
      url,
      seconds,
      concurrency: CONCURRENCY,
      headers: () => ({ "payment-signature": pool.next() }),
    });
    if (server) {
      const perRequestMs = (pid: number | undefined, start: number) =>
        ((cpuSeconds(pid) - start) * 1000) / Math.max(1, result.requests);
      cpu[server] = perRequestMs(serverPid, before.server);
      cpu[server === "gateway" ? "facilitatorForGateway" : "facilitatorForExpress"] = perRequestMs(
        facilitator.child.pid,
        before.facilitator,
      );
    }
    return result;
  };
  await paidRun(`${gw}/fail`, gatewayPayments, WARMUP_SECONDS);
  await paidRun(`${peer}/fail`, peerPayments, WARMUP_SECONDS);
  const paidRounds: LoadResult[] = [];
  const expressRounds: LoadResult[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? ["gateway", "express"] : ["express", "gateway"];
    for (const who of order) {
      if (who === "gateway")
        paidRounds.push(await paidRun(`${gw}/fail`, gatewayPayments, SECONDS, "gateway"));
      else expressRounds.push(await paidRun(`${peer}/fail`, peerPayments, SECONDS, "express"));
    }
  }
  const paid = best(paidRounds);
  const express = best(expressRounds);
  console.log(row("(d) gateway, paid: verify + proxy (no settle)", paid));
  console.log(row("(e) @x402/express peer, same paid workload", express));
  console.log(
    `    rounds (req/s): gateway ${paidRounds.map((r) => r.rps.toFixed(0)).join(", ")}; express ${expressRounds.map((r) => r.rps.toFixed(0)).join(", ")}`,
  );
  console.log(
    `    CPU per paid request (last round): gateway ${cpu.gateway.toFixed(2)} ms, express ${cpu.express.toFixed(2)} ms; facilitator ${cpu.facilitatorForGateway.toFixed(2)} / ${cpu.facilitatorForExpress.toFixed(2)} ms`,
  );
  console.log(`ratio (b)/(a) = ${(free.rps / bare.rps).toFixed(2)} (goal >= 0.8)`);
  console.log(
    `ratio (d)/(e) = ${(paid.rps / express.rps).toFixed(2)} (goal >= 1: the gateway at least matches the middleware, and streams)`,
  );
  for (const [name, pool] of [
    ["(d)", gatewayPayments],
    ["(e)", peerPayments],
  ] as const)
    if (pool.wrapped)
      console.log(`note: ${name} ran out of pre-signed payments and reused some (replays are refused fast)`);
  return { free, paid };
}

/** (f) paid by channel vouchers, in rounds alternating with (b); (f)/(d) when (d) ran. */
async function channelsAgainstFree(
  ctx: BenchContext,
  free: LoadResult,
  paid: LoadResult | undefined,
): Promise<void> {
  const { rig, buyer, gw, freeUrl, cpu } = ctx;
  const { facilitator } = rig;
  // (f): one channel per client, opened before the clock (the deposit is one paid call each).
  const channelUrl = `${gw}/ok`;
  const channelRequired = decodePaymentRequiredHeader(
    (await fetch(channelUrl)).headers.get("payment-required")!,
  );
  const channels: VoucherChannel[] = [];
  const vouchersPerChannel =
    CHANNEL_VOUCHERS ??
    Math.max(200, Math.ceil((0.7 * free.rps * (WARMUP_SECONDS + ROUNDS * SECONDS)) / CONCURRENCY));
  const signingStarted = Date.now();
  for (let i = 0; i < CONCURRENCY; i++)
    channels.push(
      await VoucherChannel.open({
        signer: buyer,
        required: channelRequired,
        index: i,
        vouchers: vouchersPerChannel,
        send: async (headers) => {
          const res = await fetch(channelUrl, { headers });
          await res.arrayBuffer();
          return res.status;
        },
      }),
    );
  for (const channel of channels) await channel.signAhead(vouchersPerChannel);
  console.log(
    `    (f): ${CONCURRENCY} channels opened and ${CONCURRENCY * vouchersPerChannel} vouchers signed in ${((Date.now() - signingStarted) / 1000).toFixed(0)} s`,
  );
  const channelRun = async (seconds: number, measured: boolean) => {
    const before = {
      gateway: cpuSeconds(rig.gateway.child.pid),
      facilitator: cpuSeconds(facilitator.child.pid),
    };
    const result = await load({
      url: channelUrl,
      seconds,
      concurrency: CONCURRENCY,
      headers: async (_, worker) => ({ "payment-signature": await at(channels, worker).next() }),
      onResponse: (worker, status) => at(channels, worker).answered(status),
    });
    if (measured) {
      const perRequestMs = (pid: number | undefined, start: number) =>
        ((cpuSeconds(pid) - start) * 1000) / Math.max(1, result.requests);
      cpu.channels = perRequestMs(rig.gateway.child.pid, before.gateway);
      cpu.facilitatorForChannels = perRequestMs(facilitator.child.pid, before.facilitator);
    }
    return result;
  };
  // (f) is compared with (b) like the other pairs: (b) runs again, in rounds alternating with
  // (f)'s, as the machine's speed drifts over the minutes since (b)'s first rounds.
  await channelRun(WARMUP_SECONDS, false);
  await load({ url: freeUrl, seconds: WARMUP_SECONDS, concurrency: CONCURRENCY });
  const channelRounds: LoadResult[] = [];
  const freeAgainRounds: LoadResult[] = [];
  const shares: { f: CpuShare[]; b: CpuShare[] } = { f: [], b: [] };
  const gatewayPid = rig.gateway.child.pid;
  for (let round = 0; round < ROUNDS; round++) {
    for (const which of round % 2 === 0 ? (["f", "b"] as const) : (["b", "f"] as const)) {
      const [result, share] = await withCpuShare(gatewayPid, () =>
        which === "f"
          ? channelRun(SECONDS, true)
          : load({ url: freeUrl, seconds: SECONDS, concurrency: CONCURRENCY }),
      );
      (which === "f" ? channelRounds : freeAgainRounds).push(result);
      shares[which].push(share);
    }
  }
  const channel = best(channelRounds);
  const freeAgain = best(freeAgainRounds);
  console.log(row("(f) gateway, paid by channel voucher (charged)", channel));
  console.log(row("(b) again, in rounds alternating with (f)", freeAgain));
  console.log(
    `    rounds (req/s): (f) ${channelRounds.map((r) => r.rps.toFixed(0)).join(", ")}; (b) ${freeAgainRounds.map((r) => r.rps.toFixed(0)).join(", ")}; CPU per paid request (last round): gateway ${cpu.channels.toFixed(2)} ms, facilitator ${cpu.facilitatorForChannels.toFixed(2)} ms`,
  );
  // Every process shares the same cores, so a round's rate follows the machine's CPU per request.
  const mean = (xs: CpuShare[], k: keyof CpuShare) =>
    xs.reduce((a, x) => a + x[k], 0) / Math.max(1, xs.length);
  const shareOf = (w: "f" | "b") =>
    `${mean(shares[w], "machine").toFixed(0)} (gateway event loop ${mean(shares[w], "loop").toFixed(0)}, its I/O threads ${mean(shares[w], "io").toFixed(0)}, its other threads ${mean(shares[w], "others").toFixed(0)})`;
  console.log(`    CPU per request in µs, whole machine: (f) ${shareOf("f")}; (b) ${shareOf("b")}`);
  // The loop waking the signature thread and libuv's pool gets it preempted on two cores.
  console.log(
    `    the gateway's event loop preempted per request: (f) ${mean(shares.f, "preempted").toFixed(2)}, (b) ${mean(shares.b, "preempted").toFixed(2)}`,
  );
  if (paid) console.log(`ratio (f)/(d) = ${(channel.rps / paid.rps).toFixed(1)} (goal >= 10)`);
  console.log(
    `ratio (f)/(b) = ${(channel.rps / freeAgain.rps).toFixed(2)} (goal >= 0.5: paying costs little next to proxying; against the first (b) rounds: ${(channel.rps / free.rps).toFixed(2)})`,
  );
  // This machine's speed moves by more than the goal's margin between rounds: each round of (f)
  // against the (b) round run next to it, and the machine's CPU per request, show the spread.
  const pairRatios = channelRounds.map((r, i) => r.rps / (freeAgainRounds[i]?.rps ?? Number.NaN));
  const sortedPairs = [...pairRatios].sort((a, b) => a - b);
  const medianPair =
    sortedPairs.length % 2 === 1
      ? sortedPairs[(sortedPairs.length - 1) / 2]
      : ((sortedPairs[sortedPairs.length / 2 - 1] ?? 0) + (sortedPairs[sortedPairs.length / 2] ?? 0)) / 2;
  console.log(
    `    (f)/(b) round by round: ${pairRatios.map((r) => r.toFixed(2)).join(", ")} (median ${(medianPair ?? 0).toFixed(2)}); (b)'s CPU per request over (f)'s, whole machine: ${(mean(shares.b, "machine") / Math.max(1, mean(shares.f, "machine"))).toFixed(2)}`,
  );
  const metrics = await (await fetch(`${rig.internalUrl}/metrics`)).text();
  // A counter never incremented has no sample (NaN): 0.
  const recovered = (where: string) =>
    sampleValue(metrics, "x402_channel_signatures_recovered_total", { where }) || 0;
  const batches = sampleValue(metrics, "x402_channel_signature_batches_total") || 0;
  console.log(
    `    (f): ${recovered("worker")} voucher signatures recovered on the signature thread in ${batches} batches (${(recovered("worker") / Math.max(1, batches)).toFixed(1)} a batch), ${recovered("loop")} on the event loop`,
  );
  const checks = (path: string) => sampleValue(metrics, "x402_channel_vouchers_checked_total", { path }) || 0;
  console.log(`    (f): vouchers checked natively ${checks("native")}, by the library ${checks("library")}`);
  const late = channels.reduce((n, c) => n + c.signedLate, 0);
  if (late > 0)
    console.log(
      `note: (f) signed ${late} vouchers during the runs (the ${vouchersPerChannel} per channel signed ahead ran out; raise BENCH_CHANNEL_VOUCHERS): the buyer's signing then slowed the run`,
    );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
