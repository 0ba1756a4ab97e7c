/**
 * The self-run x402 facilitator: @x402/core's transport-less facilitator engine with
 * @x402/evm's exact scheme (EIP-3009 and Permit2), served over HTTP as /verify, /settle and
 * /supported. It submits settlements with its own key and pays the gas.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { x402Facilitator } from "@x402/core/facilitator";
import type { Network, PaymentPayload, PaymentRequirements } from "@x402/core/types";
import {
  type ExactEvmPayloadV2,
  isPermit2Payload,
  PERMIT2_ADDRESS,
  toFacilitatorEvmSigner,
  x402ExactPermit2ProxyAddress,
} from "@x402/evm";
import { registerExactEvmScheme } from "@x402/evm/exact/facilitator";
import { createWalletClient, type Hex, http as httpTransport, publicActions } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { readJsonBody, sendJson } from "../shared/http";

export interface FacilitatorOptions {
  /** The key that submits settlement transactions. Never logged. */
  signerKey: Hex;
  rpcUrl: string;
  /** CAIP-2 networks served; defaults to the RPC endpoint's chain. */
  networks?: Network[];
  port?: number;
  host?: string;
}

export interface RunningFacilitator {
  readonly url: string;
  readonly address: `0x${string}`;
  readonly networks: Network[];
  close(): Promise<void>;
}

const MAX_BODY = 64 * 1024;

/** The contracts a Permit2 payment goes through; @x402/evm uses these canonical addresses. */
const PERMIT2_CONTRACTS = [
  ["Permit2", PERMIT2_ADDRESS],
  ["x402's exact Permit2 proxy", x402ExactPermit2ProxyAddress],
] as const;

function isPermit2Payment(payment: PaymentPayload): boolean {
  const payload = (payment as { payload?: unknown }).payload;
  return typeof payload === "object" && payload !== null && isPermit2Payload(payload as ExactEvmPayloadV2);
}

function refusal(path: string, payment: PaymentPayload, why: string) {
  const reason = "permit2_proxy_not_deployed";
  const payer = (payment.payload as { permit2Authorization?: { from?: string } }).permit2Authorization?.from;
  return path === "/verify"
    ? { isValid: false, invalidReason: reason, invalidMessage: why, payer }
    : {
        success: false,
        errorReason: reason,
        errorMessage: why,
        transaction: "",
        network: payment.accepted?.network,
        payer,
      };
}

export async function startFacilitator(opts: FacilitatorOptions): Promise<RunningFacilitator> {
  const account = privateKeyToAccount(opts.signerKey);
  const client = createWalletClient({ account, transport: httpTransport(opts.rpcUrl) }).extend(publicActions);
  const networks = opts.networks ?? [`eip155:${await client.getChainId()}` as Network];
  const signer = toFacilitatorEvmSigner({
    address: account.address,
    readContract: (args) => client.readContract(args as Parameters<typeof client.readContract>[0]),
    verifyTypedData: (args) => client.verifyTypedData(args as Parameters<typeof client.verifyTypedData>[0]),
    writeContract: (args) =>
      client.writeContract({ ...(args as Parameters<typeof client.writeContract>[0]), account, chain: null }),
    sendTransaction: (args) => client.sendTransaction({ ...args, account, chain: null }),
    waitForTransactionReceipt: (args) => client.waitForTransactionReceipt(args),
    getCode: (args) => client.getCode(args),
  });
  /**
   * A call to an address without code succeeds and moves nothing, and @x402/evm's simulation of
   * the proxy's `settle` (no return value) cannot tell. So before any Permit2 verify or settle,
   * Permit2 and x402's proxy must have code on the chain; checked every time (one eth_getCode
   * each), so a chain that loses them is noticed at once.
   */
  const missingPermit2Contract = async (payment: PaymentPayload): Promise<string | undefined> => {
    if (!isPermit2Payment(payment)) return undefined;
    for (const [name, address] of PERMIT2_CONTRACTS) {
      const code = await client.getCode({ address });
      if (!code || code === "0x") return `${name} has no code at ${address} on this chain`;
    }
    return undefined;
  };
  const facilitator = new x402Facilitator();
  registerExactEvmScheme(facilitator, { signer, networks });

  const server = http.createServer(async (req, res) => {
    try {
      const path = (req.url ?? "/").split("?")[0];
      if (req.method === "GET" && (path === "/healthz" || path === "/readyz"))
        return sendJson(res, 200, { ok: true });
      if (req.method === "GET" && path === "/supported")
        return sendJson(res, 200, facilitator.getSupported());
      if (req.method === "POST" && (path === "/verify" || path === "/settle")) {
        const body = (await readJsonBody(req, MAX_BODY)) as {
          paymentPayload?: PaymentPayload;
          paymentRequirements?: PaymentRequirements;
        };
        if (!body?.paymentPayload || !body.paymentRequirements) {
          return sendJson(res, 400, {
            error: "body must be {x402Version, paymentPayload, paymentRequirements}",
          });
        }
        const missing = await missingPermit2Contract(body.paymentPayload);
        if (missing) return sendJson(res, 200, refusal(path, body.paymentPayload, missing));
        const result =
          path === "/verify"
            ? await facilitator.verify(body.paymentPayload, body.paymentRequirements)
            : await facilitator.settle(body.paymentPayload, body.paymentRequirements);
        return sendJson(res, 200, result);
      }
      sendJson(res, 404, { error: "not found" });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      sendJson(res, (err as { status?: number }).status ?? 500, { error: message });
    }
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${opts.host ?? "127.0.0.1"}:${port}`,
    address: account.address,
    networks,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
