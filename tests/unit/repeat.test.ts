import * as assert from "node:assert/strict";
import { repeatEvery } from "../../controller/shared/repeat";

describe("repeatEvery", () => {
  it("runs a pass at once, the next one an interval after it ends, and none after stop, even when stopped mid-pass", async () => {
    let passes = 0;
    let release!: () => void;
    const stop = repeatEvery(5, async () => {
      passes++;
      if (passes === 3) await new Promise<void>((r) => (release = r));
    });
    assert.equal(passes, 1, "the first pass starts at once");
    while (passes < 3) await new Promise((r) => setTimeout(r, 2));
    stop(); // while the third pass is still running
    release();
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(passes, 3);
  });
});
