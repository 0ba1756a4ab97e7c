import * as fs from "node:fs";
import * as path from "node:path";
import * as k8s from "@pulumi/kubernetes";
import * as pulumi from "@pulumi/pulumi";
import { parse as parseYaml } from "yaml";
import { METRICS_PATH, METRICS_TARGETS } from "../api/contract";
import { labelsFor, selectorFor } from "./labels";

/** The Grafana dashboard and the alert rules kept in the repository (deploy/). */
export const DASHBOARD_FILE = path.join(__dirname, "..", "deploy", "grafana", "obol-stack.json");
export const ALERTS_FILE = path.join(__dirname, "..", "deploy", "prometheus", "alerts.yaml");

const MONITORING_API = "monitoring.coreos.com/v1";
/** The Prometheus Operator CRDs this component creates objects of. */
export const MONITORING_CRDS = [
  "servicemonitors.monitoring.coreos.com",
  "podmonitors.monitoring.coreos.com",
  "prometheusrules.monitoring.coreos.com",
] as const;

export interface MonitoringArgs {
  namespace: pulumi.Input<string>;
  /** Components whose metrics exist in this stack (a hosted facilitator has none). */
  components: readonly string[];
  /** Scrape interval, e.g. "30s". */
  interval?: string;
}

/**
 * Prometheus Operator objects for the stack: a ServiceMonitor per runtime Service that serves
 * /metrics (the gateway's is its internal Service, which the tunnel never targets), a PodMonitor
 * for the controller (no Service), the PrometheusRule alerts, and the dashboard as a ConfigMap
 * labelled for Grafana's dashboard sidecar. Needs the monitoring.coreos.com CRDs on the cluster.
 */
export class Monitoring extends pulumi.ComponentResource {
  readonly scrapeObjects: pulumi.Output<string>[];

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("obol:index:Monitoring", name, {}, opts);
    const interval = args.interval ?? "30s";
    const endpoint = (port: string) => ({ port, path: METRICS_PATH, interval });
    this.scrapeObjects = [];
    for (const target of METRICS_TARGETS) {
      if (!args.components.includes(target.component)) continue;
      const metadata = {
        namespace: args.namespace,
        name: target.component,
        labels: labelsFor(target.component),
      };
      // A component's Services carry its selector labels; only the one with the named port
      // yields endpoints (for the gateway: its internal Service, never the tunnel's).
      const byService = target.via === "service";
      const object = new k8s.apiextensions.CustomResource(
        `${name}-${target.component}`,
        {
          apiVersion: MONITORING_API,
          kind: byService ? "ServiceMonitor" : "PodMonitor",
          metadata,
          spec: {
            selector: { matchLabels: selectorFor(target.component) },
            [byService ? "endpoints" : "podMetricsEndpoints"]: [endpoint(target.port)],
          },
        },
        { parent: this },
      );
      this.scrapeObjects.push(pulumi.interpolate`${object.kind}/${object.metadata.name}`);
    }

    new k8s.apiextensions.CustomResource(
      `${name}-alerts`,
      {
        apiVersion: MONITORING_API,
        kind: "PrometheusRule",
        metadata: { namespace: args.namespace, name: "obol-stack", labels: labelsFor("obol-stack") },
        spec: loadAlertRules(),
      },
      { parent: this },
    );
    new k8s.core.v1.ConfigMap(
      `${name}-dashboard`,
      {
        metadata: {
          namespace: args.namespace,
          name: "obol-stack-dashboard",
          // Grafana's dashboard sidecar (kube-prometheus-stack) loads ConfigMaps with this label.
          labels: { ...labelsFor("obol-stack"), grafana_dashboard: "1" },
        },
        data: { "obol-stack.json": fs.readFileSync(DASHBOARD_FILE, "utf8") },
      },
      { parent: this },
    );
    this.registerOutputs({ scrapeObjects: this.scrapeObjects });
  }
}

export interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** deploy/prometheus/alerts.yaml: a PrometheusRule `spec` ({groups: [{name, rules}]}). */
export function loadAlertRules(): { groups: { name: string; rules: AlertRule[] }[] } {
  return parseYaml(fs.readFileSync(ALERTS_FILE, "utf8"));
}
