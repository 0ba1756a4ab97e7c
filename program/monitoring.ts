/**
 * Whether to create the Prometheus Operator objects (monitoring.serviceMonitors): `true` and
 * `false` are taken as said; `auto` asks the cluster whether it serves the operator's CRDs.
 * With `true` on a cluster without them, the preview fails with the fix instead of `pulumi up`
 * failing later on "no matches for kind ServiceMonitor" (in kubeconfig mode, where the cluster
 * exists before the stack).
 */
import * as k8s from "@kubernetes/client-node";
import * as pulumi from "@pulumi/pulumi";
import { MONITORING_CRDS } from "../components/monitoring";

/**
 * The monitoring.coreos.com CRDs the cluster does not serve (empty: all served). A CRD being
 * deleted or not yet Established counts as missing: objects of its kind would be refused.
 */
export async function missingMonitoringCrds(kubeconfig: string): Promise<string[]> {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(kubeconfig);
  const api = kc.makeApiClient(k8s.ApiextensionsV1Api);
  const missing: string[] = [];
  for (const name of MONITORING_CRDS) {
    try {
      const crd = await api.readCustomResourceDefinition({ name });
      const established = crd.status?.conditions?.some(
        (c) => c.type === "Established" && c.status === "True",
      );
      if (crd.metadata?.deletionTimestamp || !established) missing.push(name);
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

/**
 * Decided before any resource is declared, when the cluster already exists (kubeconfig mode):
 * `true` without the CRDs stops the preview at once with the fix.
 */
export async function monitoringBeforeDeploy(
  setting: "auto" | boolean,
  kubeconfig: string,
): Promise<boolean> {
  if (setting === false) return false;
  try {
    return decideMonitoring(setting, await missingMonitoringCrds(kubeconfig));
  } catch (err) {
    throw new pulumi.RunError(messageWithCause(err));
  }
}

/**
 * Decided once this stack's own k3d cluster exists (its kubeconfig is an Output, unknown on the
 * first preview). Never throws: an error raised inside an apply kept the Node.js language host
 * busy for minutes instead of failing the run. `auto` creates the objects when the CRDs are
 * served; `true` creates them regardless (the API server then names the missing kind); a
 * cluster that cannot be asked gets none, with a warning.
 */
export function monitoringOnOwnCluster(
  setting: "auto" | boolean,
  kubeconfig: pulumi.Output<string>,
): pulumi.Output<boolean> {
  if (setting !== "auto") return pulumi.output(setting);
  return pulumi.unsecret(
    kubeconfig.apply(async (kc) => {
      try {
        return (await missingMonitoringCrds(kc)).length === 0;
      } catch (err) {
        await pulumi.log.warn(
          `monitoring.serviceMonitors is auto, but the cluster could not be asked for the Prometheus Operator CRDs (${messageWithCause(err)}); no scrape objects this time`,
        );
        return false;
      }
    }),
  );
}

/** An error's message and its cause's (the cluster's answer), for a preview's output. */
export function messageWithCause(err: unknown): string {
  if (!(err instanceof Error)) {
    try {
      return String(err);
    } catch {
      return "an unprintable error";
    }
  }
  return err.cause instanceof Error ? `${err.message}: ${err.cause.message}` : err.message;
}
