/**
 * `purchases[]`: each entry becomes one PurchaseRequest. The buyer converts every budget amount
 * to the token's smallest unit and compares them; the same conversion and comparisons run here,
 * so a budget that passes preview never crashes or silently refuses every request at run time.
 */
import { getAddress, isAddress } from "viem";
import { z } from "zod";
import { type AgentRef, AgentRefError, parseAgentRef } from "../../api/agentRef";
import { type Caip2, chainInfo } from "../../api/chains";
import { toAtomic } from "../../api/money";
import { purchaseRequestSpecSchema } from "../../api/resources";
import { amount, amountInput, DNS_LABEL, httpUrl, network } from "./fields";
import { acceptedAsStored, type Issues, parseSection, wholeNumber } from "./issues";
import type { PurchaseConfig, PurchaseSeller } from "./types";

const rawPurchase = z.strictObject({
  name: z.string(),
  endpoint: z.string().optional(),
  /** `eip155:<chainId>:<registry>#<agentId>`, or that as `id` with an RPC URL and a service name. */
  agent: z
    .union([
      z.string(),
      z.strictObject({
        id: z.string(),
        rpcUrl: z.string().optional(),
        service: z.string().min(1).optional(),
      }),
    ])
    .optional(),
  model: z.string().min(1),
  payment: z.strictObject({
    network: z.string(),
    asset: z.string().optional(),
    decimals: wholeNumber(0, 36, "the payment token's decimals, e.g. 18").optional(),
    maxPrice: amountInput,
    rpcUrl: z.string().optional(),
  }),
  budget: z.strictObject({
    maxPerRequest: amountInput,
    maxPerDay: amountInput.optional(),
    maxTotal: amountInput.optional(),
  }),
  /** Pay batch-settlement sellers through a channel: `{}`, `{deposit}` (token units), `{withdrawAfterIdleSeconds}`. */
  channels: z
    .strictObject({
      deposit: amountInput.optional(),
      withdrawAfterIdleSeconds: wholeNumber(
        1,
        31_536_000,
        "seconds a channel stays unused before the buyer withdraws its unused deposit itself, e.g. 86400 (a day)",
      ).optional(),
    })
    .optional(),
});

export const purchasesSchema = z.array(z.unknown()).default([]);

export function purchases(inputs: readonly unknown[], issues: Issues): PurchaseConfig[] {
  const out: PurchaseConfig[] = [];
  const names = new Map<string, number>();
  const models = new Map<string, number>();
  inputs.forEach((input, i) => {
    const at = `purchases[${i}]`;
    const p = parseSection(rawPurchase, input, at, issues);
    if (!p) return;
    if (!DNS_LABEL.test(p.name)) issues.add(`${at}.name`, `"${p.name}" must be a DNS label`);
    if (names.has(p.name))
      issues.add(`${at}.name`, `"${p.name}" is used twice; purchase names must be unique`);
    names.set(p.name, i);
    // The buyer answers `paid/<model>` with the purchase for that model: a second one would never be used.
    const sameModel = models.get(p.model);
    if (sameModel !== undefined) {
      issues.add(
        `${at}.model`,
        `"${p.model}" is already bought by purchases[${sameModel}]; agents ask for paid/${p.model} and only one purchase can answer: give each purchase its own model`,
      );
    }
    models.set(p.model, i);
    const net = network(p.payment.network, `${at}.payment.network`, issues);
    const rpcUrl =
      p.payment.rpcUrl === undefined
        ? undefined
        : httpUrl(
            p.payment.rpcUrl,
            `${at}.payment.rpcUrl`,
            issues,
            `an http(s) JSON-RPC URL of ${p.payment.network}`,
          );
    let asset: `0x${string}` | undefined;
    if (p.payment.asset !== undefined) {
      if (isAddress(p.payment.asset, { strict: false })) asset = getAddress(p.payment.asset);
      else issues.add(`${at}.payment.asset`, `"${p.payment.asset}" is not an address`);
    }
    // Budgets are in token units: the token's decimals must be known to count them exactly.
    const usdc = net ? chainInfo(net)?.usdc : undefined;
    const isUsdc = !p.payment.asset || (usdc && p.payment.asset.toLowerCase() === usdc.address.toLowerCase());
    const decimals = p.payment.decimals ?? (isUsdc ? usdc?.decimals : undefined);
    if (net && decimals === undefined) {
      issues.add(
        `${at}.payment.decimals`,
        "required when the asset is not the chain's USDC (the token's decimals, e.g. 18)",
      );
    }
    const exact = (value: string | number, path: string) => amount(value, path, issues, decimals);
    const maxPrice = exact(p.payment.maxPrice, `${at}.payment.maxPrice`);
    const maxPerRequest = exact(p.budget.maxPerRequest, `${at}.budget.maxPerRequest`);
    const maxPerDay =
      p.budget.maxPerDay === undefined ? undefined : exact(p.budget.maxPerDay, `${at}.budget.maxPerDay`);
    const maxTotal =
      p.budget.maxTotal === undefined ? undefined : exact(p.budget.maxTotal, `${at}.budget.maxTotal`);
    if (decimals !== undefined) {
      budgetsAgree(at, decimals, { maxPrice, maxPerRequest, maxPerDay, maxTotal }, issues);
    }
    const channels = channelsOf(p, at, decimals, { maxPrice, maxPerDay, maxTotal, rpcUrl }, issues);
    const seller = sellerOf(p, at, net, issues);
    if (!net || !maxPrice || !maxPerRequest || decimals === undefined || !seller) return;
    if (p.channels !== undefined && !channels) return;
    if (p.payment.rpcUrl !== undefined && !rpcUrl) return;
    if (p.budget.maxPerDay !== undefined && !maxPerDay) return;
    if (p.budget.maxTotal !== undefined && !maxTotal) return;
    const purchase: PurchaseConfig = {
      name: p.name,
      ...seller,
      model: p.model,
      payment: {
        network: net,
        decimals,
        maxPrice,
        ...(rpcUrl ? { rpcUrl } : {}),
        ...(asset ? { asset } : {}),
      },
      budget: { maxPerRequest, ...(maxPerDay ? { maxPerDay } : {}), ...(maxTotal ? { maxTotal } : {}) },
      ...(channels ? { channels } : {}),
    };
    const { name: _name, ...spec } = purchase;
    if (acceptedAsStored(purchaseRequestSpecSchema, spec, at, "PurchaseRequest", issues)) out.push(purchase);
  });
  return out;
}

/**
 * Who the purchase pays: its `endpoint` (the seller's offer URL) or its `agent` (the seller's
 * ERC-8004 identity), never both. The buyer reads the agent's tokenURI on the registry's chain,
 * so that chain needs a JSON-RPC URL: `agent.rpcUrl`, else `payment.rpcUrl` when the registry is
 * on the payment chain.
 */
function sellerOf(
  p: z.infer<typeof rawPurchase>,
  at: string,
  paymentNetwork: Caip2 | undefined,
  issues: Issues,
): PurchaseSeller | undefined {
  if ((p.endpoint === undefined) === (p.agent === undefined)) {
    issues.add(
      at,
      "set exactly one of endpoint (the seller's offer URL) or agent (its ERC-8004 id, eip155:<chainId>:<registry>#<agentId>)",
    );
    return undefined;
  }
  if (p.endpoint !== undefined) {
    const endpoint = httpUrl(p.endpoint, `${at}.endpoint`, issues, "the seller's http(s) URL");
    return endpoint === undefined ? undefined : { endpoint };
  }
  const short = typeof p.agent === "string";
  const raw = typeof p.agent === "string" ? { id: p.agent } : p.agent;
  if (!raw) return undefined;
  let ref: AgentRef;
  try {
    ref = parseAgentRef(raw.id);
  } catch (err) {
    if (!(err instanceof AgentRefError)) throw err;
    issues.add(short ? `${at}.agent` : `${at}.agent.id`, err.message);
    return undefined;
  }
  const onPaymentChain = ref.network === paymentNetwork;
  const rpcUrl = raw.rpcUrl ?? (onPaymentChain ? p.payment.rpcUrl : undefined);
  if (rpcUrl === undefined) {
    issues.add(
      short ? `${at}.agent` : `${at}.agent.rpcUrl`,
      `the buyer reads the agent's tokenURI on ${ref.network}: give a JSON-RPC URL with agent: {id, rpcUrl}${onPaymentChain ? " or payment.rpcUrl" : ""}`,
    );
    return undefined;
  }
  // A payment.rpcUrl is checked, and reported, under its own path.
  if (
    raw.rpcUrl !== undefined &&
    !httpUrl(raw.rpcUrl, `${at}.agent.rpcUrl`, issues, `an http(s) JSON-RPC URL of ${ref.network}`)
  )
    return undefined;
  return { agent: { ...ref, rpcUrl, ...(raw.service ? { service: raw.service } : {}) } };
}

/**
 * `channels`: the buyer deposits into a channel (which the budget counts) and pays each call by
 * voucher. It reads the channel on chain (refunds, recovery), so it needs payment.rpcUrl; a
 * deposit must pay at least one call at maxPrice and fit the total and daily budgets, or every
 * deposit would be cut to what they leave.
 */
function channelsOf(
  p: z.infer<typeof rawPurchase>,
  at: string,
  decimals: number | undefined,
  known: {
    maxPrice?: string | undefined;
    maxPerDay?: string | undefined;
    maxTotal?: string | undefined;
    rpcUrl?: string | undefined;
  },
  issues: Issues,
): { deposit?: string; withdrawAfterIdleSeconds?: number } | undefined {
  if (p.channels === undefined) return undefined;
  if (p.payment.rpcUrl === undefined) {
    issues.add(
      `${at}.channels`,
      "channels need payment.rpcUrl (the buyer reads its channels on chain to see refunds): set it, or remove channels",
    );
    return undefined;
  }
  if (!known.rpcUrl) return undefined;
  const idle = p.channels.withdrawAfterIdleSeconds;
  const withdrawal = idle === undefined ? {} : { withdrawAfterIdleSeconds: idle };
  if (p.channels.deposit === undefined) return withdrawal;
  const deposit = amount(p.channels.deposit, `${at}.channels.deposit`, issues, decimals);
  if (!deposit || decimals === undefined) return undefined;
  const atomic = (v: string) => toAtomic(v, decimals);
  let ok = true;
  if (known.maxPrice && atomic(deposit) < atomic(known.maxPrice)) {
    issues.add(
      `${at}.channels.deposit`,
      `${deposit} is below payment.maxPrice ${known.maxPrice}: a deposit must pay at least one call; raise channels.deposit`,
    );
    ok = false;
  }
  for (const [field, limit] of [
    ["budget.maxTotal", known.maxTotal],
    ["budget.maxPerDay", known.maxPerDay],
  ] as const) {
    if (limit && atomic(deposit) > atomic(limit)) {
      issues.add(
        `${at}.channels.deposit`,
        `${deposit} is above ${field} ${limit}, which counts the deposit: lower channels.deposit or raise ${field}`,
      );
      ok = false;
    }
  }
  return ok ? { deposit, ...withdrawal } : undefined;
}

/**
 * Budgets that contradict each other refuse every request: the price cap above the per-request
 * cap, or the per-request cap above the daily or total cap.
 */
function budgetsAgree(
  at: string,
  decimals: number,
  b: {
    maxPrice?: string | undefined;
    maxPerRequest?: string | undefined;
    maxPerDay?: string | undefined;
    maxTotal?: string | undefined;
  },
  issues: Issues,
): void {
  const atomic = (v: string) => toAtomic(v, decimals);
  const { maxPrice, maxPerRequest, maxPerDay, maxTotal } = b;
  if (maxPrice && maxPerRequest && atomic(maxPrice) > atomic(maxPerRequest)) {
    issues.add(
      `${at}.payment.maxPrice`,
      `${maxPrice} is above budget.maxPerRequest ${maxPerRequest}, so a request at that price would always be refused: lower payment.maxPrice or raise budget.maxPerRequest`,
    );
  }
  for (const [key, cap] of [
    ["maxPerDay", maxPerDay],
    ["maxTotal", maxTotal],
  ] as const) {
    if (maxPerRequest && cap && atomic(maxPerRequest) > atomic(cap)) {
      issues.add(
        `${at}.budget.maxPerRequest`,
        `${maxPerRequest} is above budget.${key} ${cap}, which caps every request anyway: lower budget.maxPerRequest or raise budget.${key}`,
      );
    }
  }
}
