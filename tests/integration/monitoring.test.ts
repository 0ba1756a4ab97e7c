/**
 * Scrape objects and the HA gateway through the real program on the test control plane:
 * `monitoring.serviceMonitors: auto` creates nothing without the Prometheus Operator's CRDs and
 * everything with them (tests/fixtures/monitoring/crds.yaml); `true` without them is refused
 * with the fix; two gateway replicas get a PodDisruptionBudget and anti-affinity; the
 * tunnel's Service (the gateway's public one) never carries the metrics port.
 */
import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { Stack } from "@pulumi/pulumi/automation";
import { parseAllDocuments } from "yaml";
import { COMPONENTS } from "../../api/contract";
import { MONITORING_CRDS } from "../../components/monitoring";
import { decideMonitoring, missingMonitoringCrds } from "../../program/monitoring";
import type { ControlPlane } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { waitFor } from "../harness/processes";
import { programStack, REPO_ROOT } from "../harness/project";
import { outputCollector } from "../harness/pulumi";
import { api } from "./runtime/helpers";

const CRDS = parseAllDocuments(
  fs.readFileSync(path.join(REPO_ROOT, "tests/fixtures/monitoring/crds.yaml"), "utf8"),
).map((d) => d.toJSON() as { metadata: { name: string } });

interface Item {
  metadata: { name: string; labels?: Record<string, string> };
  spec: Record<string, unknown>;
}

describe("monitoring objects and the HA gateway (pulumi up on the control plane)", function () {
  this.timeout(15 * 60_000);
  const namespace = `mon-${process.pid}`;
  const log = outputCollector();
  let cp: ControlPlane;
  let stack: Stack;

  const list = async (apiPath: string): Promise<Item[]> => {
    const res = await api(cp, "GET", apiPath);
    return res.status === 200 ? res.json<{ items: Item[] }>().items : [];
  };
  const monitoringObjects = async () => ({
    serviceMonitors: await list(`/apis/monitoring.coreos.com/v1/namespaces/${namespace}/servicemonitors`),
    podMonitors: await list(`/apis/monitoring.coreos.com/v1/namespaces/${namespace}/podmonitors`),
    rules: await list(`/apis/monitoring.coreos.com/v1/namespaces/${namespace}/prometheusrules`),
  });
  const setServiceMonitors = (value: string) =>
    stack.setConfig("obol-stack:monitoring", { value: JSON.stringify({ serviceMonitors: value }) });

  before(async () => {
    const dir = scratchDir("monitoring");
    cp = await sharedControlPlane();
    stack = await programStack({
      dir,
      stackName: "mon",
      fromDevStack: false,
      config: {
        "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
        "obol-stack:kubeconfig": { value: cp.kubeconfig, secret: true },
        "obol-stack:namespace": { value: namespace },
        "obol-stack:tunnel": { value: JSON.stringify({ mode: "none" }) },
        "obol-stack:facilitator": {
          value: JSON.stringify({ mode: "self", rpcUrl: "http://127.0.0.1:8545" }),
        },
        "obol-stack:facilitatorSignerKey": { value: `0x${"11".repeat(32)}`, secret: true },
        "obol-stack:gateway": { value: JSON.stringify({ replicas: 2 }) },
        "obol-stack:monitoring": { value: JSON.stringify({ serviceMonitors: "auto" }) },
      },
    });
  });

  after(async () => {
    await stack?.destroy({ onOutput: log.onOutput }).catch(() => undefined);
    for (const crd of CRDS)
      await api(cp, "DELETE", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`);
  });

  it("auto without the Prometheus Operator CRDs: no scrape objects; two gateway replicas with a PDB and anti-affinity", async () => {
    const up = await stack.up({ onOutput: log.onOutput });
    assert.equal(up.summary.result, "succeeded", log.text());
    assert.deepEqual(up.outputs.monitoring?.value, []);

    const deployment = (
      await api(cp, "GET", `/apis/apps/v1/namespaces/${namespace}/deployments/${COMPONENTS.gateway}`)
    ).json<{
      spec: {
        replicas: number;
        template: {
          spec: {
            affinity?: { podAntiAffinity?: unknown };
            containers: { env?: { name: string; value?: string }[] }[];
          };
        };
      };
    }>();
    assert.equal(deployment.spec.replicas, 2);
    assert.ok(deployment.spec.template.spec.affinity?.podAntiAffinity, "spread over nodes");
    assert.deepEqual(
      deployment.spec.template.spec.containers[0]?.env?.find((e) => e.name === "GATEWAY_REPLICAS"),
      { name: "GATEWAY_REPLICAS", value: "2" },
    );
    const pdb = await api(
      cp,
      "GET",
      `/apis/policy/v1/namespaces/${namespace}/poddisruptionbudgets/${COMPONENTS.gateway}`,
    );
    assert.equal(pdb.status, 200, pdb.body);
    assert.equal(pdb.json<{ spec: { maxUnavailable: number } }>().spec.maxUnavailable, 1);
  });

  it("asks the real API server which monitoring.coreos.com CRDs it lacks; true without them is refused with the fix", async () => {
    assert.deepEqual(await missingMonitoringCrds(cp.kubeconfig), [...MONITORING_CRDS]);
    assert.throws(
      () => decideMonitoring(true, [...MONITORING_CRDS]),
      /monitoring\.serviceMonitors is true, but the cluster does not serve servicemonitors\.monitoring\.coreos\.com.*install the Prometheus Operator/,
    );
    assert.equal(decideMonitoring("auto", [...MONITORING_CRDS]), false);
  });

  it("auto with the CRDs: a ServiceMonitor per Service with metrics, a PodMonitor for the controller, the alerts and the dashboard", async () => {
    for (const crd of CRDS) {
      const res = await api(cp, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd);
      assert.ok([201, 409].includes(res.status), res.body);
    }
    await waitFor(
      "monitoring.coreos.com/v1 to be served",
      async () => (await api(cp, "GET", "/apis/monitoring.coreos.com/v1")).status === 200,
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    const up = await stack.up({ onOutput: log.onOutput });
    assert.equal(up.summary.result, "succeeded", log.text());
    assert.deepEqual([...((up.outputs.monitoring?.value ?? []) as string[])].sort(), [
      `PodMonitor/${COMPONENTS.controller}`,
      `ServiceMonitor/${COMPONENTS.buyer}`,
      `ServiceMonitor/${COMPONENTS.facilitator}`,
      `ServiceMonitor/${COMPONENTS.gateway}`,
    ]);
    const { serviceMonitors, podMonitors, rules } = await monitoringObjects();
    const gatewayMonitor = serviceMonitors.find((s) => s.metadata.name === COMPONENTS.gateway);
    assert.deepEqual(gatewayMonitor?.spec.endpoints, [
      { port: "internal", path: "/metrics", interval: "30s" },
    ]);
    assert.deepEqual(
      podMonitors.map((p) => p.spec.podMetricsEndpoints),
      [[{ port: "http", path: "/metrics", interval: "30s" }]],
    );
    const groups = (rules[0]?.spec.groups ?? []) as { rules: { alert: string }[] }[];
    const alerts = groups.flatMap((g) => g.rules.map((r) => r.alert));
    for (const a of [
      "ObolSettleFailures",
      "ObolFacilitatorUnreachable",
      "ObolSignerBalanceLow",
      "ObolBudgetNearlySpent",
    ])
      assert.ok(alerts.includes(a), a);
    const dashboard = await api(cp, "GET", `/api/v1/namespaces/${namespace}/configmaps/obol-stack-dashboard`);
    assert.equal(dashboard.status, 200);
    const cm = dashboard.json<{
      metadata: { labels: Record<string, string> };
      data: Record<string, string>;
    }>();
    assert.equal(cm.metadata.labels.grafana_dashboard, "1");
    assert.equal(JSON.parse(cm.data["obol-stack.json"] ?? "{}").uid, "obol-stack");

    // The metrics port lives on the internal Service only; the public one (the tunnel's origin)
    // has just the public port.
    const svc = async (name: string) =>
      (await api(cp, "GET", `/api/v1/namespaces/${namespace}/services/${name}`))
        .json<{
          spec: { ports: { name: string; port: number }[] };
        }>()
        .spec.ports.map((p) => `${p.name}:${p.port}`);
    assert.deepEqual(await svc(COMPONENTS.gateway), ["http:8080"]);
    assert.deepEqual(await svc(`${COMPONENTS.gateway}-internal`), ["internal:8081"]);
  });

  it("false removes them again", async () => {
    await setServiceMonitors("false");
    const up = await stack.up({ onOutput: log.onOutput });
    assert.equal(up.summary.result, "succeeded", log.text());
    const left = await monitoringObjects();
    assert.deepEqual(
      [left.serviceMonitors, left.podMonitors, left.rules].map((l) => l.length),
      [0, 0, 0],
    );
  });
});
