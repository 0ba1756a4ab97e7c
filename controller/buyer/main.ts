/**
 * `obol-runtime buyer`: env SIGNER_KEY_FILE (or SIGNER_KEY), LEDGER_PATH (a persistent volume;
 * default /var/lib/obol-buyer/ledger.jsonl), PORT; flags --kubeconfig, --namespace, --port, --host.
 */
import { privateKeyToAccount } from "viem/accounts";
import { BUYER_LEDGER_PATH, ENV, PLURALS, PORTS } from "../../api/contract";
import { purchaseRequestSpecSchema } from "../../api/resources";
import { intSetting, parseFlags } from "../shared/flags";
import {
  errorText,
  loadKubeConfig,
  type PurchaseRequestObject,
  patchStatus,
  resolveNamespace,
  watchCustomObjects,
} from "../shared/kube";
import { readPrivateKey } from "../shared/secrets";
import { SpendLedger } from "./ledger";
import { type Purchase, spendStatus, startBuyer } from "./server";

const FLAGS = ["kubeconfig", "namespace", "port", "host", "ledger"] as const;

export async function run(argv: string[]): Promise<void> {
  const f = parseFlags(argv, FLAGS);
  const log = (message: string) => console.log(message);
  const kc = loadKubeConfig(f.kubeconfig);
  const namespace = resolveNamespace(f.namespace);
  const account = privateKeyToAccount(readPrivateKey(ENV.signerKey));
  const ledger = new SpendLedger(f.ledger || process.env[ENV.ledgerPath] || BUYER_LEDGER_PATH);
  const purchases = await watchCustomObjects<PurchaseRequestObject>(
    kc,
    PLURALS.purchaseRequest,
    namespace,
    log,
  );

  const purchaseFor = (model: string): Purchase | undefined => {
    for (const obj of purchases.list()) {
      const parsed = purchaseRequestSpecSchema.safeParse(obj.spec);
      if (parsed.success && parsed.data.model === model)
        return { name: obj.metadata?.name ?? "", spec: parsed.data };
    }
    return undefined;
  };
  const publish = (purchase: Purchase) => {
    patchStatus(kc, PLURALS.purchaseRequest, namespace, purchase.name, spendStatus(ledger, purchase)).catch(
      (err) => log(`buyer: could not update PurchaseRequest ${purchase.name} status: ${errorText(err)}`),
    );
  };
  const buyer = await startBuyer({
    account,
    ledger,
    purchaseFor,
    onSpend: publish,
    log,
    port: intSetting(f.port ?? process.env[ENV.port], PORTS.buyer, "--port"),
    host: f.host || process.env.HOST || "0.0.0.0",
  });
  log(`buyer: paying as ${account.address}, serving ${buyer.url}, ledger ${ledger.file}`);
  const stop = async () => {
    await buyer.close();
    await purchases.stop();
    ledger.close();
    process.exit(0);
  };
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
}
