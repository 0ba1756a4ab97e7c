/**
 * A stack that only sells has no buyer wallet, yet its buyer Deployment runs (LiteLLM's paid/*
 * route points at it). The real buyer process without SIGNER_KEY: healthy, and every paid call
 * refused with the reason. It exited at start-up before, a crash loop that held `pulumi up` on a
 * real node (found by the journey test, tests/integration/realCluster/journey.test.ts).
 */
import * as assert from "node:assert/strict";
import * as path from "node:path";
import { NO_WALLET_MESSAGE } from "../../../controller/buyer/server";
import { scratchDir } from "../../harness/env";
import { freePort, type ManagedProcess } from "../../harness/processes";
import { httpGet, startRuntime, waitForHttp } from "./helpers";

describe("the buyer of a stack without a wallet", function () {
  this.timeout(120_000);
  let proc: ManagedProcess;
  let url: string;

  before(async () => {
    const port = await freePort();
    url = `http://127.0.0.1:${port}`;
    // No SIGNER_KEY, no SIGNER_KEY_FILE, no ledger, no cluster: what the Buyer component gives a seller-only stack.
    const env = { SIGNER_KEY: "", SIGNER_KEY_FILE: "", HOST: "127.0.0.1" };
    proc = startRuntime(
      "buyer",
      "buyer",
      ["--port", String(port)],
      path.join(scratchDir("walletless"), "logs"),
      env,
    );
    await waitForHttp("the walletless buyer", `${url}/healthz`, proc);
  });

  after(async () => {
    await proc?.stop();
  });

  it("stays up and Ready, and refuses paid calls with the reason, nothing signed", async () => {
    assert.equal((await httpGet(`${url}/readyz`)).status, 200);
    const res = await httpGet(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "paid/any-model", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(res.status, 503, res.text);
    assert.deepEqual(JSON.parse(res.text), {
      error: { type: "buyer_not_configured", message: NO_WALLET_MESSAGE },
    });
    assert.equal(proc.child.exitCode, null, "the process is still running");
  });
});
