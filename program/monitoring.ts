/**
 * Whether to create the Prometheus Operator objects (monitoring.serviceMonitors): `true` and
 * `false` are taken as said; `auto` asks the cluster whether it serves the operator's CRDs.
 * With `true` on a cluster without them, the preview fails with the fix instead of `pulumi up`
 * failing later on "no matches for kind ServiceMonitor".
 */
import * as k8s from "@kubernetes/client-node";
import * as pulumi from "@pulumi/pulumi";
import { MONITORING_CRDS } from "../components/monitoring";

/** The monitoring.coreos.com CRDs the cluster lacks (empty: all served). */
export async function missingMonitoringCrds(kubeconfig: string): Promise<string[]> {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(kubeconfig);
  const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const missing: string[] = [];
  for (const name of MONITORING_CRDS) {
    try {
      await api.readCustomResourceDefinition({ name });
    } catch (err) {
      if ((err as { code?: number }).code === 404) missing.push(name);
      else throw new Error(`monitoring.serviceMonitors: cannot ask the cluster for ${name}`, { cause: err });
    }
  }
  return missing;
}

/** The decision from the setting and what the cluster lacks; `true` without the CRDs throws the fix. */
export function decideMonitoring(setting: "auto" | boolean, missing: readonly string[]): boolean {
  if (setting === false) return false;
  if (setting === "auto") return missing.length === 0;
  if (missing.length > 0) {
    throw new Error(
      `monitoring.serviceMonitors is true, but the cluster does not serve ${missing.join(", ")}: install the Prometheus Operator (or its CRDs), or set monitoring.serviceMonitors to auto or false`,
    );
  }
  return true;
}

export function monitoringEnabled(
  setting: "auto" | boolean,
  kubeconfig: pulumi.Output<string>,
): pulumi.Output<boolean> {
  if (setting === false) return pulumi.output(false);
  return kubeconfig.apply(async (kc) => decideMonitoring(setting, await missingMonitoringCrds(kc)));
}
