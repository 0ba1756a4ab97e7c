/**
 * Kubernetes access for the runtime: kubeconfig loading, informers on the obol.org custom
 * resources (list+watch, cached, restarted after errors) and status writes through the status
 * subresource with a JSON merge patch.
 */
import * as fs from "node:fs";
import * as https from "node:https";
import * as k8s from "@kubernetes/client-node";
import type { z } from "zod";
import type { Plural } from "../../api/contract";
import {
  type agentIdentityStatusSchema,
  GROUP,
  type purchaseRequestStatusSchema,
  type serviceOfferStatusSchema,
  VERSION,
} from "../../api/resources";
import { errorMessage } from "./log";

export type ServiceOfferStatus = z.infer<typeof serviceOfferStatusSchema>;
export type AgentIdentityStatus = z.infer<typeof agentIdentityStatusSchema>;
export type PurchaseRequestStatus = z.infer<typeof purchaseRequestStatusSchema>;

/** A custom object as the API server returns it: spec is parsed (zod) by whoever reads it. */
export interface CustomObject<Status> extends k8s.KubernetesObject {
  spec?: unknown;
  status?: Status;
}
export type ServiceOfferObject = CustomObject<ServiceOfferStatus>;
export type AgentIdentityObject = CustomObject<AgentIdentityStatus>;
export type PurchaseRequestObject = CustomObject<PurchaseRequestStatus>;

/**
 * Loads credentials: an explicit --kubeconfig path, else $KUBECONFIG, else the in-cluster
 * ServiceAccount, else ~/.kube/config.
 */
export function loadKubeConfig(path: string | undefined): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  const file = path || process.env.KUBECONFIG;
  if (file) {
    if (!fs.existsSync(file)) throw new Error(`kubeconfig ${file} does not exist: pass --kubeconfig <path>`);
    kc.loadFromFile(file);
  } else if (process.env.KUBERNETES_SERVICE_HOST) {
    kc.loadFromCluster();
  } else {
    kc.loadFromDefault();
  }
  if (!kc.getCurrentCluster()) {
    throw new Error("no Kubernetes cluster configured: pass --kubeconfig <path> or set KUBECONFIG");
  }
  return kc;
}

/** The namespace to watch: --namespace, else $POD_NAMESPACE (set by the Deployment), else "obol". */
export function resolveNamespace(flag: string | undefined): string {
  return flag || process.env.POD_NAMESPACE || "obol";
}

export interface WatchedCache<T extends k8s.KubernetesObject> {
  list(): readonly T[];
  get(name: string): T | undefined;
  /** True once the first list succeeded. */
  synced(): boolean;
  on(event: "add" | "update" | "delete", cb: (obj: T) => void): void;
  stop(): Promise<void>;
}

/**
 * An informer on one custom resource in one namespace. A failed list or watch is retried with
 * backoff (1s doubling to 30s) rather than ending the process: CRDs may be installed later.
 */
export async function watchCustomObjects<T extends k8s.KubernetesObject>(
  kc: k8s.KubeConfig,
  plural: Plural,
  namespace: string,
  log: (msg: string) => void,
): Promise<WatchedCache<T>> {
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  const path = `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${plural}`;
  let listed = false;
  const list = async (): Promise<k8s.KubernetesListObject<T>> => {
    const result = (await api.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural,
    })) as k8s.KubernetesListObject<T>;
    listed = true;
    return result;
  };
  const informer = k8s.makeInformer<T>(kc, path, list);
  let stopped = false;
  let delay = 1000;
  let timer: NodeJS.Timeout | undefined;
  informer.on("error", (err: unknown) => {
    if (stopped) return;
    log(`watch ${plural} in ${namespace} failed (${errorText(err)}); retrying in ${delay} ms`);
    timer = setTimeout(() => {
      informer.start().catch(() => undefined);
    }, delay);
    delay = Math.min(delay * 2, 30_000);
  });
  informer.on("connect", () => {
    delay = 1000;
  });
  await informer.start();
  return {
    list: () => informer.list(namespace),
    get: (name) => informer.get(name, namespace),
    synced: () => listed,
    on: (event, cb) => informer.on(event, cb),
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await informer.stop();
    },
  };
}

/**
 * Writes statuses through the status subresource (JSON merge patch: arrays are replaced whole).
 * The controller's hot path: one request per changed status, on a bounded keep-alive pool of
 * plain HTTP/1.1 connections (the generated client costs about as much CPU per request as the
 * API server does). Credentials and TLS settings come from the kubeconfig on every request, so
 * rotated tokens are picked up. A cluster behind a proxy goes through the generated client.
 */
export class StatusWriter {
  private readonly agent: https.Agent;
  private readonly fallback?: k8s.CustomObjectsApi;
  private readonly server: string;
  private readonly timeoutMs: number;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly namespace: string,
    opts: { maxSockets?: number; timeoutMs?: number } = {},
  ) {
    const cluster = kc.getCurrentCluster();
    this.server = (cluster?.server ?? "").replace(/\/+$/, "");
    if (!cluster || cluster.proxyUrl || !this.server.startsWith("https:")) {
      this.fallback = kc.makeApiClient(k8s.CustomObjectsApi);
    }
    this.agent = new https.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 32, scheduling: "lifo" });
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  async patch(plural: Plural, name: string, status: object): Promise<void> {
    if (this.fallback) {
      await this.fallback.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, namespace: this.namespace, plural, name, body: { status } },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
      );
      return;
    }
    const options: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(options);
    const body = JSON.stringify({ status });
    const url = `${this.server}/apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(this.namespace)}/${plural}/${encodeURIComponent(name)}/status`;
    await new Promise<void>((resolve, reject) => {
      const req = https.request(
        url,
        {
          method: "PATCH",
          agent: this.agent,
          ca: options.ca,
          cert: options.cert,
          key: options.key,
          rejectUnauthorized: options.rejectUnauthorized,
          servername: options.servername,
          timeout: this.timeoutMs,
          headers: {
            ...(options.headers as Record<string, string> | undefined),
            ...(options.auth
              ? { authorization: `Basic ${Buffer.from(options.auth).toString("base64")}` }
              : {}),
            accept: "application/json",
            "content-type": "application/merge-patch+json",
            "content-length": Buffer.byteLength(body),
          },
        },
        (res) => {
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) {
            res.resume();
            res.once("end", resolve);
            res.on("error", reject);
            return;
          }
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("error", reject);
          res.once("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            reject(new k8s.ApiException(code, `PATCH ${url} answered ${code}`, text, {}));
          });
        },
      );
      req.once("timeout", () =>
        req.destroy(new Error(`PATCH ${url}: no answer within ${this.timeoutMs} ms`)),
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Writes `status` through the status subresource (JSON merge patch: arrays are replaced whole). */
export async function patchStatus(
  kc: k8s.KubeConfig,
  plural: Plural,
  namespace: string,
  name: string,
  status: object,
): Promise<void> {
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  await api.patchNamespacedCustomObjectStatus(
    { group: GROUP, version: VERSION, namespace, plural, name, body: { status } },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch),
  );
}

/** A JSON patch (RFC 6902) of a custom object's metadata; its `test` ops make it conditional. */
function patchObject(
  kc: k8s.KubeConfig,
  plural: Plural,
  obj: k8s.KubernetesObject,
  ops: readonly object[],
): Promise<unknown> {
  return kc.makeApiClient(k8s.CustomObjectsApi).patchNamespacedCustomObject(
    {
      group: GROUP,
      version: VERSION,
      namespace: obj.metadata?.namespace ?? "",
      plural,
      name: obj.metadata?.name ?? "",
      body: ops,
    },
    k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.JsonPatch),
  );
}

/**
 * Removes `finalizer` from an object, if it still holds it at the index we saw. A `test` first:
 * a concurrent change to the list makes the API server refuse (422) instead of removing someone
 * else's finalizer; the next reconcile tries again. Gone already: done.
 */
export async function releaseFinalizer(
  kc: k8s.KubeConfig,
  plural: Plural,
  obj: k8s.KubernetesObject,
  finalizer: string,
): Promise<void> {
  const index = obj.metadata?.finalizers?.indexOf(finalizer) ?? -1;
  if (index < 0) return;
  try {
    await patchObject(kc, plural, obj, [
      { op: "test", path: `/metadata/finalizers/${index}`, value: finalizer },
      { op: "remove", path: `/metadata/finalizers/${index}` },
    ]);
  } catch (err) {
    if (isApiStatus(err, 404)) return;
    throw err;
  }
}

/**
 * Adds `finalizer` to an object that does not hold it, guarded by a `test` of the
 * resourceVersion we saw: a concurrent change makes the API server refuse (422) and the next
 * reconcile tries again.
 */
export async function holdFinalizer(
  kc: k8s.KubeConfig,
  plural: Plural,
  obj: k8s.KubernetesObject,
  finalizer: string,
): Promise<void> {
  const finalizers = obj.metadata?.finalizers;
  if (finalizers?.includes(finalizer)) return;
  await patchObject(kc, plural, obj, [
    { op: "test", path: "/metadata/resourceVersion", value: obj.metadata?.resourceVersion },
    finalizers?.length
      ? { op: "add", path: "/metadata/finalizers/-", value: finalizer }
      : { op: "add", path: "/metadata/finalizers", value: [finalizer] },
  ]);
}

/** A short description of an API or network error for logs and condition messages. */
export function errorText(err: unknown): string {
  if (err instanceof k8s.ApiException) {
    const body = typeof err.body === "string" ? err.body : JSON.stringify(err.body);
    return `HTTP ${err.code}: ${body.slice(0, 300)}`;
  }
  return errorMessage(err);
}

export function isApiStatus(err: unknown, code: number): boolean {
  return err instanceof k8s.ApiException && err.code === code;
}
