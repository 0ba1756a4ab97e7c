import * as assert from "node:assert/strict";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { encodePaymentSignatureHeader } from "@x402/core/http";
import type { PaymentPayload } from "@x402/core/types";
import { PAYMENT_IDENTIFIER } from "@x402/extensions/payment-identifier";
import { paymentIdentifierOf, retryingPaidFetch } from "../../controller/buyer/paidRetry";

const ID = "pay_0123456789abcdef";
const header = (id?: string) =>
  encodePaymentSignatureHeader({
    x402Version: 2,
    resource: { url: "http://x", description: "", mimeType: "" },
    accepted: {
      scheme: "exact",
      network: "eip155:84532",
      amount: "1",
      asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
      payTo: "0x2222222222222222222222222222222222222222",
      maxTimeoutSeconds: 60,
      extra: {},
    },
    payload: {},
    ...(id ? { extensions: { [PAYMENT_IDENTIFIER]: { info: { required: false, id } } } } : {}),
  } as PaymentPayload);

describe("buyer: paid retries after a lost answer (payment-identifier)", () => {
  let server: http.Server;
  let url: string;
  /** Requests seen, and how many of the next ones to cut off before answering. */
  const seen: { signature: string | undefined; body: string }[] = [];
  let cut = 0;

  before(async () => {
    server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        seen.push({
          signature: req.headers["payment-signature"] as string,
          body: Buffer.concat(chunks).toString(),
        });
        if (cut > 0) {
          cut--;
          req.socket.destroy();
          return;
        }
        res.end("answer");
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  beforeEach(() => {
    seen.length = 0;
    cut = 0;
  });

  const send = retryingPaidFetch(fetch, { backoffMs: 10, log: () => undefined });

  it("reads the identifier a payment header carries", () => {
    assert.equal(paymentIdentifierOf(header(ID)), ID);
    assert.equal(paymentIdentifierOf(header()), undefined);
    assert.equal(paymentIdentifierOf("not base64 json"), undefined);
    assert.equal(paymentIdentifierOf(null), undefined);
  });

  it("sends an identified payment again, unchanged (header and body), when the answer was lost", async () => {
    cut = 2;
    const res = await send(url, { method: "POST", headers: { "payment-signature": header(ID) }, body: "{}" });
    assert.equal(await res.text(), "answer");
    assert.equal(seen.length, 3);
    assert.deepEqual(
      new Set(seen.map((s) => `${s.signature}|${s.body}`)).size,
      1,
      "the same request each time",
    );
  });

  it("gives up after its attempts, and never retries a payment without an identifier", async () => {
    cut = 5;
    await assert.rejects(
      send(url, { method: "POST", headers: { "payment-signature": header(ID) }, body: "{}" }),
    );
    assert.equal(seen.length, 3);
    seen.length = 0;
    await assert.rejects(
      send(url, { method: "POST", headers: { "payment-signature": header() }, body: "{}" }),
    );
    assert.equal(seen.length, 1, "no identifier: a retry would be a second payment attempt");
  });
});
