/**
 * `obol-runtime buyer`: pays sellers for PurchaseRequests. The signer key comes from
 * SIGNER_KEY_FILE (a mounted Secret) or SIGNER_KEY (without either, a stack that only sells, it
 * serves its health endpoints and refuses every paid call); the spend ledger lives at LEDGER_PATH (a
 * persistent volume). --resolve-interval-ms: how often payments sent without a receipt are looked
 * up on chain, and payment channels checked for refunds (default 30 s).
 */
import { privateKeyToAccount } from "viem/accounts";
import { BUYER_LEDGER_PATH, ENV, PLURALS, PORTS } from "../../api/contract";
import { DEFAULT_WITHDRAW_AFTER_IDLE_SECONDS, purchaseRequestSpecSchema } from "../../api/resources";
import { requestTerms } from "../reconciler/paymentProbe";
import { AgentResolverCache, sellerEndpoint } from "../shared/agentResolver";
import { CoalescedRuns } from "../shared/coalesced";
import {
  errorText,
  loadKubeConfig,
  type PurchaseRequestObject,
  patchStatus,
  resolveNamespace,
  watchCustomObjects,
} from "../shared/kube";
import { readPrivateKey, secretConfigured } from "../shared/secrets";
import type { Command } from "../shared/startup";
import { ChannelReconciler, KeyedLock } from "./channels";
import { SpendLedger } from "./ledger";
import { BuyerMetrics } from "./metrics";
import { SpendRecovery } from "./recovery";
import { BUYER_USER_AGENT, type Purchase, spendStatus, startBuyer, startWalletlessBuyer } from "./server";
import { UnconfirmedPayments } from "./unconfirmed";
import { ChannelWithdrawals } from "./withdrawals";

const SETTINGS = {
  kubeconfig: {},
  namespace: {},
  port: { env: ENV.port },
  host: { env: "HOST" },
  ledger: { env: ENV.ledgerPath },
  "resolve-interval-ms": {},
} as const;

export const command: Command<keyof typeof SETTINGS> = {
  name: "buyer",
  settings: SETTINGS,
  shutdownDeadlineMs: 8_000,
  async start({ settings: s, log }) {
    const port = s.int("port", PORTS.buyer);
    const host = s.string("host") ?? "0.0.0.0";
    if (!secretConfigured(ENV.signerKey)) {
      // A stack that only sells has no wallet, but LiteLLM's paid/* route still points here.
      const buyer = await startWalletlessBuyer({ port, host });
      return {
        summary: `no wallet (no buyerSignerKey): refusing paid calls, serving ${buyer.url}`,
        stop: () => buyer.close(),
      };
    }
    const kc = loadKubeConfig(s.string("kubeconfig"));
    const namespace = resolveNamespace(s.string("namespace"));
    const account = privateKeyToAccount(readPrivateKey(ENV.signerKey));
    const ledger = new SpendLedger(s.string("ledger") ?? BUYER_LEDGER_PATH);
    const purchases = await watchCustomObjects<PurchaseRequestObject>(
      kc,
      PLURALS.purchaseRequest,
      namespace,
      log,
    );

    const current = (): Purchase[] =>
      purchases.list().flatMap((obj) => {
        const parsed = purchaseRequestSpecSchema.safeParse(obj.spec);
        return parsed.success ? [{ name: obj.metadata?.name ?? "", spec: parsed.data }] : [];
      });
    const findPurchase = (matches: (p: Purchase) => boolean): Purchase | undefined => current().find(matches);
    const purchaseFor = (model: string) => findPurchase((p) => p.spec.model === model);
    // One status write per purchase at a time, computed when it starts: concurrent PATCHes could
    // land out of order and leave an older count in the status.
    const statusWrites = new CoalescedRuns<string>(async (name) => {
      const purchase = findPurchase((p) => p.name === name);
      if (!purchase) return;
      await patchStatus(kc, PLURALS.purchaseRequest, namespace, name, spendStatus(ledger, purchase)).catch(
        (err) => log(`buyer: could not update PurchaseRequest ${name} status: ${errorText(err)}`),
      );
    });
    const publish = (purchase: Purchase) => void statusWrites.request(purchase.name);
    const unconfirmed = new UnconfirmedPayments({
      ledger,
      rpcUrlFor: (name) => findPurchase((p) => p.name === name)?.spec.payment.rpcUrl,
      log,
      onResolved: (name) => void statusWrites.request(name),
    });
    const resolveEvery = s.int("resolve-interval-ms", 30_000);
    unconfirmed.start(resolveEvery);
    const channelLock = new KeyedLock();
    const reconciler = new ChannelReconciler({
      ledger,
      account,
      rpcUrlFor: (name) => findPurchase((p) => p.name === name)?.spec.payment.rpcUrl,
      lock: channelLock,
      log,
      onRefund: (name) => void statusWrites.request(name),
    });
    reconciler.start(resolveEvery);
    const withdrawals = new ChannelWithdrawals({
      ledger,
      account,
      termsFor: (name) => {
        const spec = findPurchase((p) => p.name === name)?.spec;
        const rpcUrl = spec?.payment.rpcUrl;
        if (!spec?.channels || !rpcUrl) return undefined;
        return {
          rpcUrl,
          idleSeconds: spec.channels.withdrawAfterIdleSeconds ?? DEFAULT_WITHDRAW_AFTER_IDLE_SECONDS,
        };
      },
      lock: channelLock,
      reconcile: (channel) => reconciler.reconcile(channel),
      log,
      onChange: (name) => void statusWrites.request(name),
    });
    withdrawals.start(resolveEvery);
    const resolver = new AgentResolverCache({
      timeoutMs: 10_000,
      userAgent: BUYER_USER_AGENT,
      ttlMs: 60_000,
      failureTtlMs: 5_000,
    });
    const sellerFor = (purchase: Purchase) =>
      sellerEndpoint(purchase.spec, (agent, model) => resolver.get(agent, model));
    const recovery = new SpendRecovery(ledger, account.address, { timeoutMs: 15_000, log });

    // A purchase seen for the first time (a fresh buyer, or a fresh cluster): bring back from the
    // chain what it spent before, so its status and budget count it before any new call.
    const primed = new Map<string, number | undefined>();
    const prime = async (obj: PurchaseRequestObject) => {
      const name = obj.metadata?.name ?? "";
      const parsed = purchaseRequestSpecSchema.safeParse(obj.spec);
      if (!parsed.success || primed.get(name) === obj.metadata?.generation) return;
      primed.set(name, obj.metadata?.generation);
      const purchase = { name, spec: parsed.data };
      if (purchase.spec.payment.rpcUrl && purchase.spec.budget.countFromBlock !== undefined) {
        const seller = await sellerFor(purchase);
        const terms = seller.ok
          ? await requestTerms(seller.endpoint, purchase.spec.model, 10_000, BUYER_USER_AGENT)
          : seller;
        if (!terms.ok) {
          primed.delete(name); // try again on the next change or call
          log(`buyer: cannot recover the spend of ${name} yet: ${terms.message}`);
        } else {
          const { network, asset } = purchase.spec.payment;
          for (const a of terms.terms.accepts) {
            if (a.caip2 !== network || (asset && a.asset.toLowerCase() !== asset.toLowerCase())) continue;
            await recovery.ensure(purchase, a.payTo, a.asset).catch((err) => log(`buyer: ${errorText(err)}`));
          }
        }
      }
      publish(purchase);
    };
    purchases.on("add", (o) => void prime(o));
    purchases.on("update", (o) => void prime(o));
    purchases.on("delete", (o) => primed.delete(o.metadata?.name ?? ""));
    for (const o of purchases.list()) void prime(o);

    const buyer = await startBuyer({
      account,
      ledger,
      purchaseFor,
      sellerFor,
      recovery,
      onSpend: publish,
      unconfirmed,
      channels: { reconciler, lock: channelLock },
      log,
      metrics: new BuyerMetrics(ledger, current),
      port,
      host,
    });
    return {
      summary: `paying as ${account.address}, serving ${buyer.url}, ledger ${ledger.file}`,
      async stop() {
        unconfirmed.stop();
        reconciler.stop();
        withdrawals.stop();
        await buyer.close();
        await purchases.stop();
        ledger.close();
      },
    };
  },
};
