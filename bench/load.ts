/** A small closed-loop HTTP load generator for the benchmarks: N workers for D seconds. */
import * as http from "node:http";

export interface LoadResult {
  requests: number;
  rps: number;
  p50ms: number;
  p99ms: number;
  statuses: Record<number, number>;
}

export async function load(opts: {
  url: string;
  seconds: number;
  concurrency: number;
  /**
   * Per-request headers; called for every request (e.g. a fresh payment) with the request's
   * number and the worker (0 … concurrency-1) sending it: a worker's requests go one at a time.
   */
  headers?: (i: number, worker: number) => Record<string, string> | Promise<Record<string, string>>;
  /** Told each answer's status (0: the connection failed), e.g. to reuse an unspent voucher. */
  onResponse?: (worker: number, status: number) => void;
}): Promise<LoadResult> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: opts.concurrency });
  const latencies: number[] = [];
  const statuses: Record<number, number> = {};
  const deadline = Date.now() + opts.seconds * 1000;
  let counter = 0;
  const one = async (i: number, worker: number) => {
    const headers = (await opts.headers?.(i, worker)) ?? {};
    return new Promise<void>((resolve) => {
      const started = process.hrtime.bigint();
      const req = http.get(opts.url, { agent, headers }, (res) => {
        res.resume();
        res.on("end", () => {
          latencies.push(Number(process.hrtime.bigint() - started) / 1e6);
          statuses[res.statusCode ?? 0] = (statuses[res.statusCode ?? 0] ?? 0) + 1;
          opts.onResponse?.(worker, res.statusCode ?? 0);
          resolve();
        });
      });
      // A keep-alive socket the server closed at its idle timeout: counted, not fatal.
      req.on("error", () => {
        statuses[0] = (statuses[0] ?? 0) + 1;
        opts.onResponse?.(worker, 0);
        resolve();
      });
    });
  };
  const started = Date.now();
  await Promise.all(
    Array.from({ length: opts.concurrency }, async (_, worker) => {
      while (Date.now() < deadline) await one(counter++, worker);
    }),
  );
  const elapsed = (Date.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return {
    requests: latencies.length,
    rps: latencies.length / elapsed,
    p50ms: at(0.5),
    p99ms: at(0.99),
    statuses,
  };
}

export function row(name: string, r: LoadResult): string {
  return `${name.padEnd(44)} ${r.rps.toFixed(0).padStart(7)} req/s   p50 ${r.p50ms.toFixed(2).padStart(7)} ms   p99 ${r.p99ms.toFixed(2).padStart(7)} ms   ${JSON.stringify(r.statuses)}`;
}
