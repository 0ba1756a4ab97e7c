/**
 * Batch-settlement buyers for the benchmarks, with @x402/evm's client part: each channel is
 * opened by a real paid call (the deposit, settled on chain), then its vouchers are signed ahead
 * of the clock, in order (voucher k signs the cumulative (k + 1) × price), since signing is the
 * buyer's cost, not the gateway's. One channel serves one request at a time (the gateway holds a
 * channel while its request runs), so a load worker uses its own channel.
 */
import { x402Client } from "@x402/core/client";
import { encodePaymentSignatureHeader } from "@x402/core/http";
import type { PaymentPayload, PaymentRequired, PaymentRequirements } from "@x402/core/types";
import { BatchSettlementEvmScheme, computeChannelId, signVoucher } from "@x402/evm/batch-settlement/client";
import { type LocalAccount, toHex } from "viem";

export class VoucherChannel {
  private readonly headers: string[] = [];
  private cursor = 0;
  /** Vouchers signed during a run because the pre-signed ones ran out (then the run waits on signing). */
  signedLate = 0;

  private constructor(
    private readonly signer: LocalAccount,
    private readonly required: PaymentRequired,
    private readonly requirement: PaymentRequirements,
    private readonly config: ReturnType<BatchSettlementEvmScheme["buildChannelConfig"]>,
  ) {}

  /**
   * Opens a channel (salt `index` keeps one payer's channels apart) with a deposit for `vouchers`
   * calls after the first, sent through `send` (which must answer the status). Its vouchers are
   * signed by `signAhead`: a bench opens all its channels first, since signing keeps its event
   * loop busy for seconds a channel, long enough for the gateway to close an idle keep-alive
   * connection that the next deposit's fetch would then pick ("other side closed").
   */
  static async open(opts: {
    signer: LocalAccount;
    required: PaymentRequired;
    index: number;
    vouchers: number;
    send: (headers: Record<string, string>) => Promise<number>;
  }): Promise<VoucherChannel> {
    const requirement = opts.required.accepts.find((r) => r.scheme === "batch-settlement");
    if (!requirement) throw new Error("the 402 offers no batch-settlement");
    const scheme = new BatchSettlementEvmScheme(opts.signer, {
      salt: toHex(opts.index + 1, { size: 32 }),
      // The deposit covers the first call and every pre-signed voucher (and a margin).
      depositPolicy: { depositMultiplier: Math.max(3, opts.vouchers + 2) },
    });
    const client = new x402Client();
    client.register("eip155:*", scheme);
    client.setSpendControls(false); // the test token is not one of the library's default assets
    const deposit = await client.createPaymentPayload({ ...opts.required, accepts: [requirement] });
    const status = await opts.send({ "payment-signature": encodePaymentSignatureHeader(deposit) });
    if (status !== 200) throw new Error(`opening channel ${opts.index}: status ${status}`);
    const channel = new VoucherChannel(
      opts.signer,
      opts.required,
      requirement,
      scheme.buildChannelConfig(requirement),
    );
    return channel;
  }

  /** Signs the next `count` vouchers ahead of the clock. */
  async signAhead(count: number): Promise<void> {
    for (let i = 0; i < count; i++) this.headers.push(await this.sign(this.headers.length + 1));
  }

  /** The header paying the next call. */
  async next(): Promise<string> {
    const header = this.headers[this.cursor];
    if (header !== undefined) return header;
    this.signedLate++;
    const late = await this.sign(this.cursor + 1);
    this.headers.push(late);
    return late;
  }

  /** The call was charged (2xx): the next one signs a higher total. Otherwise the same is reused. */
  answered(status: number): void {
    if (status >= 200 && status < 300) this.cursor++;
  }

  /** Pre-signed vouchers not yet used. */
  get left(): number {
    return this.headers.length - this.cursor;
  }

  /** Voucher k (1-based after the deposit's): the cumulative (k + 1) × price. */
  private async sign(k: number): Promise<string> {
    const amount = (BigInt(this.requirement.amount) * BigInt(k + 1)).toString();
    const channelId = computeChannelId(this.config, this.requirement.network);
    const voucher = await signVoucher(this.signer, channelId, amount, this.requirement.network);
    const payload: PaymentPayload = {
      x402Version: 2,
      payload: { type: "voucher", channelConfig: this.config, voucher },
      resource: this.required.resource,
      accepted: this.requirement,
    };
    return encodePaymentSignatureHeader(payload);
  }
}
