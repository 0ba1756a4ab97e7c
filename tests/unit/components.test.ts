import * as assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { currentServer } from "../../components/cluster";
import { KEYLESS_API_KEY, liteLLMConfig } from "../../components/litellm";
import { cloudflaredArgs } from "../../components/tunnel";
import { k3dClusterState, k3dCreateArgs, k3dImageImportArgs } from "../../providers/k3dArgs";

describe("k3d command lines", () => {
  it("creates a cluster without touching the user's kubeconfig and without Traefik", () => {
    assert.deepEqual(
      k3dCreateArgs({ name: "obol-dev", servers: 1, agents: 2, k3sImage: "rancher/k3s:v1.33.1-k3s1" }),
      [
        "cluster",
        "create",
        "obol-dev",
        "--servers",
        "1",
        "--agents",
        "2",
        "--wait",
        "--timeout",
        "300s",
        "--kubeconfig-update-default=false",
        "--kubeconfig-switch-context=false",
        "--k3s-arg",
        "--disable=traefik@server:*",
        "--image",
        "rancher/k3s:v1.33.1-k3s1",
      ],
    );
    assert.deepEqual(k3dImageImportArgs("obol-dev", ["a:1", "b:2"]), [
      "image",
      "import",
      "a:1",
      "b:2",
      "--cluster",
      "obol-dev",
    ]);
  });

  it("tells running, stopped and deleted clusters apart", () => {
    const list = JSON.stringify([
      { name: "up", serversRunning: 1, serversCount: 1 },
      { name: "down", serversRunning: 0, serversCount: 1 },
      { name: "old", nodes: [{ role: "server", State: { Running: true } }] },
    ]);
    assert.equal(k3dClusterState(list, "up"), "running");
    assert.equal(k3dClusterState(list, "down"), "stopped");
    assert.equal(k3dClusterState(list, "old"), "running");
    assert.equal(k3dClusterState(list, "gone"), "absent");
    assert.equal(k3dClusterState("[]", "gone"), "absent");
    assert.throws(() => k3dClusterState("FATA cannot connect to docker", "x"), /not JSON/);
  });
});

describe("component helpers", () => {
  it("LiteLLM config: declared models, API keys from env, one static paid/* route to the buyer", () => {
    const cfg = parseYaml(
      liteLLMConfig(
        [{ name: "llama", model: "ollama/llama3", apiBase: "http://ollama:11434", apiKeyEnv: "K" }],
        "http://buyer:8402/v1",
      ),
    );
    assert.deepEqual(cfg.model_list[0], {
      model_name: "llama",
      litellm_params: { model: "ollama/llama3", api_base: "http://ollama:11434", api_key: "os.environ/K" },
    });
    assert.equal(cfg.model_list.length, 2);
    assert.equal(cfg.model_list[1].model_name, "paid/*");
    assert.equal(cfg.model_list[1].litellm_params.api_base, "http://buyer:8402/v1");
    assert.equal(
      cfg.general_settings.master_key,
      "os.environ/LITELLM_MASTER_KEY",
      "the key itself is never in the ConfigMap",
    );
  });

  it("LiteLLM config: a keyless upstream gets a placeholder key (the OpenAI client refuses none)", () => {
    const cfg = parseYaml(
      liteLLMConfig([{ name: "local", model: "openai/qwen", apiBase: "http://vllm:8000/v1" }], "http://b/v1"),
    );
    assert.deepEqual(cfg.model_list[0].litellm_params, {
      model: "openai/qwen",
      api_base: "http://vllm:8000/v1",
      api_key: KEYLESS_API_KEY,
    });
  });

  it("LiteLLM config: one paid/<model> entry per purchased model, then a wildcard that lists nothing", () => {
    const cfg = parseYaml(liteLLMConfig([], "http://buyer:8402/v1", ["qwen3", "llama", "qwen3"]));
    const paid = cfg.model_list.map((m: { model_name: string }) => m.model_name);
    assert.deepEqual(paid, ["paid/llama", "paid/qwen3", "paid/*"], "sorted, each model once, wildcard last");
    assert.equal(cfg.model_list[1].litellm_params.model, "openai/qwen3");
    // A provider-prefixed wildcard (openai/*) makes LiteLLM list its whole price list for it.
    assert.equal(cfg.model_list[2].litellm_params.model, "*");
    assert.equal(cfg.model_list[2].litellm_params.custom_llm_provider, "openai");
    for (const route of cfg.model_list) {
      assert.equal(route.litellm_params.api_base, "http://buyer:8402/v1");
      assert.equal(route.litellm_params.num_retries, 0, `${route.model_name}: a retry can pay twice`);
      assert.equal(
        route.litellm_params.max_retries,
        0,
        `${route.model_name}: nor may the OpenAI client retry`,
      );
    }
  });

  it("cloudflared points only at the gateway", () => {
    assert.deepEqual(cloudflaredArgs("quick", "http://gw:8080"), [
      "tunnel",
      "--no-autoupdate",
      "--metrics",
      "0.0.0.0:2000",
      "--url",
      "http://gw:8080",
    ]);
    assert.deepEqual(cloudflaredArgs("named", "http://gw:8080").slice(-3), [
      "run",
      "--url",
      "http://gw:8080",
    ]);
  });

  it("reads the current server of a kubeconfig", () => {
    const kubeconfig = `
apiVersion: v1
clusters:
- {name: a, cluster: {server: https://a:6443}}
- {name: b, cluster: {server: https://b:6443}}
contexts:
- {name: ca, context: {cluster: a}}
- {name: cb, context: {cluster: b}}
current-context: cb
`;
    assert.equal(currentServer(kubeconfig), "https://b:6443");
    assert.throws(() => currentServer("apiVersion: v1\nclusters: []\n"), /no cluster/);
  });
});
