/**
 * What a purchase already spent, read back from the chain: every ERC-20 Transfer of the payment
 * asset from the buyer's wallet to the seller's payTo since the purchase was created (the block
 * Pulumi recorded in spec.budget.countFromBlock). EIP-3009 and Permit2 settlements both end in
 * such a Transfer, so the chain holds the spend even when the ledger's volume is gone.
 */
import { createPublicClient, http, parseAbiItem } from "viem";
import { errorMessage } from "../shared/log";
import type { SpendLedger } from "./ledger";
import type { Purchase } from "./server";

const TRANSFER = parseAbiItem("event Transfer(address indexed from, address indexed to, uint256 value)");
/** Many RPCs cap eth_getLogs ranges; scan in windows of this many blocks. */
const WINDOW = 10_000n;
/** At most this many windows per scan (100M blocks); beyond, count from a later block. */
const MAX_WINDOWS = 10_000;

export interface ChainPayment {
  readonly tx: string;
  /** Atomic units moved in this transaction from the buyer to payTo. */
  readonly amount: bigint;
  /** Block time, ms since the epoch. */
  readonly at: number;
}

export interface ChainSpendQuery {
  rpcUrl: string;
  network: string;
  asset: `0x${string}`;
  from: `0x${string}`;
  to: `0x${string}`;
  fromBlock: bigint;
  timeoutMs: number;
}

export class RecoveryError extends Error {
  override name = "RecoveryError";
}

/** Transfers from `from` to `to` of `asset`, one entry per transaction; throws RecoveryError. */
export async function paymentsOnChain(q: ChainSpendQuery): Promise<ChainPayment[]> {
  const client = createPublicClient({ transport: http(q.rpcUrl, { timeout: q.timeoutMs, retryCount: 1 }) });
  try {
    const chainId = await client.getChainId();
    if (`eip155:${chainId}` !== q.network)
      throw new RecoveryError(`payment.rpcUrl serves chain eip155:${chainId}, not ${q.network}`);
    const latest = await client.getBlockNumber();
    const byTx = new Map<string, { amount: bigint; block: bigint }>();
    let windows = 0;
    for (let start = q.fromBlock; start <= latest; start += WINDOW) {
      if (++windows > MAX_WINDOWS)
        throw new RecoveryError(
          `more than ${MAX_WINDOWS * Number(WINDOW)} blocks to scan from ${q.fromBlock}`,
        );
      const end = start + WINDOW - 1n < latest ? start + WINDOW - 1n : latest;
      const logs = await client.getLogs({
        address: q.asset,
        event: TRANSFER,
        args: { from: q.from, to: q.to },
        fromBlock: start,
        toBlock: end,
      });
      for (const log of logs) {
        if (!log.transactionHash || log.blockNumber === null) continue;
        const prev = byTx.get(log.transactionHash);
        byTx.set(log.transactionHash, {
          amount: (prev?.amount ?? 0n) + (log.args.value ?? 0n),
          block: log.blockNumber,
        });
      }
    }
    const times = new Map<bigint, number>();
    const out: ChainPayment[] = [];
    for (const [tx, { amount, block }] of byTx) {
      if (!times.has(block)) {
        const b = await client.getBlock({ blockNumber: block });
        times.set(block, Number(b.timestamp) * 1000);
      }
      out.push({ tx, amount, at: times.get(block)! });
    }
    return out;
  } catch (err) {
    if (err instanceof RecoveryError) throw err;
    const short =
      err instanceof Error
        ? ((err as { shortMessage?: string }).shortMessage ?? err.message)
        : errorMessage(err);
    throw new RecoveryError(`reading the spend from ${q.network} failed: ${short}`);
  }
}

/**
 * Recovers each (purchase, seller payTo, asset) once per process, before the first budget
 * decision: on-chain payments the ledger does not hold are added to it. Purchases without an
 * RPC URL or a start block have only the ledger.
 */
export class SpendRecovery {
  private readonly done = new Map<string, Promise<number>>();

  constructor(
    private readonly ledger: SpendLedger,
    private readonly buyer: `0x${string}`,
    private readonly opts: { timeoutMs: number; log: (m: string) => void; query?: typeof paymentsOnChain },
  ) {}

  /** Resolves when the ledger holds the chain's spend; throws RecoveryError if it cannot be read. */
  async ensure(purchase: Purchase, payTo: string, asset: string): Promise<void> {
    const { rpcUrl, network } = purchase.spec.payment;
    const from = purchase.spec.budget.countFromBlock;
    if (!rpcUrl || from === undefined) return;
    const key = [purchase.name, network, asset.toLowerCase(), payTo.toLowerCase(), from].join("|");
    let pending = this.done.get(key);
    if (!pending) {
      pending = (this.opts.query ?? paymentsOnChain)({
        rpcUrl,
        network,
        asset: asset as `0x${string}`,
        from: this.buyer,
        to: payTo as `0x${string}`,
        fromBlock: BigInt(from),
        timeoutMs: this.opts.timeoutMs,
      }).then((payments) => this.ledger.recover(purchase.name, payments));
      this.done.set(key, pending);
      // A failed read is retried by the next caller rather than remembered.
      pending.catch(() => this.done.delete(key));
    }
    const added = await pending;
    if (added > 0)
      this.opts.log(`buyer: recovered ${added} payment(s) of ${purchase.name} to ${payTo} from ${network}`);
  }
}
