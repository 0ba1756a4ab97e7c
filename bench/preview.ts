/**
 * `npm run bench:preview`: how `pulumi preview` scales with the number of offers. Runs the real
 * program in kubeconfig mode against the local control plane with 5, 25 and 50 offers and
 * prints each time and the ratio t(50)/t(5). Linear growth with a small constant keeps the
 * ratio well under 10 (the per-run fixed cost dominates); the target is < 4.
 */
import * as path from "node:path";
import { startControlPlane } from "../tests/harness/controlPlane";
import { RUN_DIR } from "../tests/harness/env";
import { programStack } from "../tests/harness/project";

const PAY_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

function offers(n: number) {
  return Array.from({ length: n }, (_, i) => ({
    name: `offer-${i}`,
    type: "http",
    upstream: { url: `http://upstream-${i}.example:8080`, healthPath: "/healthz" },
    payment: { network: "base-sepolia", payTo: PAY_TO, price: { perRequest: `0.00${(i % 9) + 1}` } },
  }));
}

async function main() {
  const cluster = await startControlPlane({ dir: path.join(RUN_DIR, "bench-cluster") });
  try {
    const times = new Map<number, number>();
    for (const n of [5, 25, 50]) {
      const stack = await programStack({
        dir: path.join(RUN_DIR, `bench-${n}`),
        stackName: `bench${n}`,
        fromDevStack: false,
        config: {
          "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
          "obol-stack:kubeconfig": { value: cluster.kubeconfig, secret: true },
          "obol-stack:namespace": { value: `bench-${n}` },
          "obol-stack:offers": { value: JSON.stringify(offers(n)) },
        },
      });
      await stack.preview(); // warm-up: plugin start-up and module caches
      const samples: number[] = [];
      for (let i = 0; i < 3; i++) {
        const start = process.hrtime.bigint();
        await stack.preview();
        samples.push(Number(process.hrtime.bigint() - start) / 1e9);
      }
      const median = samples.sort((a, b) => a - b)[1] ?? Number.NaN; // the median of three
      times.set(n, median);
      console.log(`preview with ${String(n).padStart(2)} offers: ${median.toFixed(2)} s (median of 3)`);
    }
    const ratio = (times.get(50) ?? Number.NaN) / (times.get(5) ?? Number.NaN);
    console.log(`ratio t(50)/t(5) = ${ratio.toFixed(2)} (target < 4)`);
  } finally {
    await cluster.destroy();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
