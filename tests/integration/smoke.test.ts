import * as assert from "node:assert/strict";
import * as path from "node:path";
import { defined } from "../harness/assertions";
import { kubeRequest } from "../harness/controlPlane";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { outputCollector, testStack } from "../harness/pulumi";

describe("foundation smoke: the real engine against the local control plane", () => {
  it("runs up, a no-change preview, and destroy for a Namespace, a ConfigMap and a Deployment", async () => {
    const cluster = await sharedControlPlane();
    const namespace = `smoke-${process.pid}`;
    const stack = await testStack({
      workDir: path.resolve(__dirname, "../fixtures/smoke"),
      stackName: "smoke",
      stateDir: path.join(scratchDir("smoke"), "state"),
      config: {
        kubeconfig: { value: cluster.kubeconfig, secret: true },
        namespace: { value: namespace },
      },
    });
    const log = outputCollector();

    const up = await stack.up({ onOutput: log.onOutput });
    assert.equal(up.summary.result, "succeeded", log.text());
    assert.equal(defined(up.outputs.namespace, "output namespace").value, namespace);
    assert.equal(
      defined(up.outputs.readyReplicas, "output readyReplicas").value,
      2,
      "the Deployment awaited both replicas Ready (kwok)",
    );

    const cm = await kubeRequest(
      cluster.server,
      cluster.token,
      "GET",
      `/api/v1/namespaces/${namespace}/configmaps/settings`,
    );
    assert.equal(cm.status, 200);
    assert.equal(JSON.parse(cm.body).data.greeting, "hello");

    const preview = await stack.preview({ expectNoChanges: true, onOutput: log.onOutput });
    assert.deepEqual(Object.keys(preview.changeSummary).sort(), ["same"], log.text());

    const destroy = await stack.destroy({ onOutput: log.onOutput });
    assert.equal(destroy.summary.result, "succeeded", log.text());
    const gone = await kubeRequest(cluster.server, cluster.token, "GET", `/api/v1/namespaces/${namespace}`);
    assert.equal(gone.status, 404, "the Namespace finished deleting (namespace controller ran)");
    await stack.workspace.removeStack("smoke");
  });
});
