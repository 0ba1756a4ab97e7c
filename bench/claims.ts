/**
 * `npm run bench:claims`: how resolving path claims (controller/shared/offers.ts `resolveClaims`)
 * scales with the number of offers. Prints the time for 500, 5000 and 50000 offers and the ratio
 * of time per offer between the largest and the smallest run: about 1 for linear work, about 100
 * if every offer scanned every claim. The target is < 3.
 */
import { resolveClaims } from "../controller/shared/offers";
import { offerObject } from "../tests/unit/runtimeFixtures";

function timeFor(n: number): number {
  const offers = Array.from({ length: n }, (_, i) => offerObject(`offer-${i}`));
  resolveClaims(offers); // warm-up: the JIT, and the offers' lazily built fields
  const runs = 3;
  const started = process.hrtime.bigint();
  for (let r = 0; r < runs; r++) {
    const verdicts = resolveClaims(offers);
    if (verdicts.size !== n)
      throw new Error(`resolveClaims returned ${verdicts.size} verdicts for ${n} offers`);
  }
  return Number(process.hrtime.bigint() - started) / 1e6 / runs;
}

const sizes = [500, 5000, 50_000];
const times = sizes.map((n) => {
  const ms = timeFor(n);
  console.log(
    `${String(n).padStart(6)} offers: ${ms.toFixed(1)} ms (${((ms * 1000) / n).toFixed(2)} µs per offer)`,
  );
  return ms;
});
const [small, large] = [times[0] ?? 0, times[times.length - 1] ?? 0];
const ratio = large / (sizes[sizes.length - 1] ?? 1) / (small / (sizes[0] ?? 1));
console.log(
  `per-offer time, ${sizes.at(-1)} vs ${sizes[0]} offers: ${ratio.toFixed(2)}× (target < 3; quadratic work gives ~100×)`,
);
