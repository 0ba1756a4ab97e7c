/**
 * The real LiteLLM proxy (the version the stack pins, built from PyPI into a local image) run
 * with the config liteLLMConfig generates, the way the LiteLLM component runs it: the image's
 * entrypoint with the component's args and environment, non-root, read-only root filesystem,
 * a writable /tmp only. Upstreams are the tests' model server and a stand-in for the buyer
 * proxy that counts what reaches it, both on loopback (the container shares the host network).
 */
import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import * as path from "node:path";
import { LITELLM_ENV, liteLLMArgs, liteLLMConfig } from "../../components/litellm";
import { type Dockerd, ensureDockerd } from "../harness/docker";
import { RUN_DIR, scratchDir } from "../harness/env";
import { dockerBin, ensureImages } from "../harness/images";
import { freePort, type ManagedProcess, startProcess, tail, waitFor } from "../harness/processes";
import { answerFor, startModelServer } from "../images/model-server/server";

const MASTER_KEY = "sk-obol-test-0123456789abcdef";
const BOUGHT = "bought-model";

/** Stand-in for the buyer proxy: answers every call with `status`, counting the calls. */
async function startBuyerStandIn() {
  const seen: { path: string; model?: string }[] = [];
  let status = 200;
  const server = http.createServer(async (req, res) => {
    let body = "";
    for await (const chunk of req) body += chunk;
    const model = (JSON.parse(body || "{}") as { model?: string }).model;
    seen.push({ path: req.url ?? "", ...(model ? { model } : {}) });
    res.setHeader("content-type", "application/json");
    if (status !== 200) {
      res.statusCode = status;
      res.end(JSON.stringify({ error: { message: `seller answered ${status}`, type: "upstream_error" } }));
      return;
    }
    res.end(
      JSON.stringify({
        id: "chatcmpl-paid",
        object: "chat.completion",
        created: 0,
        model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: `paid answer from ${model}` },
            finish_reason: "stop",
          },
        ],
        usage: { prompt_tokens: 1, completion_tokens: 4, total_tokens: 5 },
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    answerWith(s: number) {
      status = s;
      seen.length = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function docker(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(dockerBin(), args, (err, out, stderr) =>
      err ? reject(new Error(stderr || err.message)) : resolve(out),
    ),
  );
}

describe("LiteLLM (real proxy, pinned version) with the generated config", function () {
  // A cold image build (apt + pip) and LiteLLM's start-up (it imports for a while) are slow.
  this.timeout(45 * 60_000);

  const container = `obol-litellm-test-${process.pid}`;
  let model: Awaited<ReturnType<typeof startModelServer>>;
  let buyer: Awaited<ReturnType<typeof startBuyerStandIn>>;
  let proxy: ManagedProcess | undefined;
  let base: string;
  let dockerd: Dockerd | undefined;

  const call = (body: unknown) =>
    fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${MASTER_KEY}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
  const ask = (modelName: string, content = "hello there") =>
    call({ model: modelName, messages: [{ role: "user", content }] });

  before(async () => {
    dockerd = await ensureDockerd({ logDir: RUN_DIR });
    const { litellm } = await ensureImages({ only: ["litellm"] });
    model = await startModelServer({ models: ["test-model"] });
    buyer = await startBuyerStandIn();
    const dir = scratchDir("litellm");
    fs.writeFileSync(
      path.join(dir, "config.yaml"),
      liteLLMConfig(
        // Keyless, as the README allows for a local server.
        [{ name: "local", model: "openai/test-model", apiBase: `${model.url}/v1` }],
        `${buyer.url}/v1`,
        [BOUGHT],
      ),
    );
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    // The component's pod: uid 65532, read-only root, no capabilities, an emptyDir at /tmp,
    // the config mounted read-only at /etc/litellm, the master key from the Secret.
    proxy = startProcess(
      "litellm",
      dockerBin(),
      [
        "run",
        "--rm",
        "--name",
        container,
        "--network",
        "host",
        "--user",
        "65532:65532",
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        "--tmpfs",
        "/tmp:rw,mode=1777",
        "-v",
        `${dir}:/etc/litellm:ro`,
        "-e",
        `LITELLM_MASTER_KEY=${MASTER_KEY}`,
        ...LITELLM_ENV.flatMap((e) => ["-e", `${e.name}=${e.value}`]),
        litellm.tag,
        ...liteLLMArgs("/etc/litellm/config.yaml", port),
        // Only here: on the host network it must not listen beyond loopback.
        "--host",
        "127.0.0.1",
      ],
      { logDir: dir },
    );
    const logFile = proxy.logFile;
    await waitFor(
      "LiteLLM readiness",
      async () => {
        if (proxy?.child.exitCode !== null) throw new Error(`LiteLLM exited:\n${tail(logFile)}`);
        return (await fetch(`${base}/health/readiness`)).ok;
      },
      { timeoutMs: 20 * 60_000, intervalMs: 1000, describe: () => tail(logFile) },
    );
  });

  after(async function () {
    this.timeout(120_000);
    await docker(["rm", "-f", container]).catch(() => undefined);
    await proxy?.stop();
    await model?.close();
    await buyer?.close();
    await dockerd?.stop();
  });

  it("runs as the non-root user with a read-only root filesystem", async () => {
    const [user, readOnly] = (
      await docker(["inspect", "--format", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}", container])
    )
      .trim()
      .split(" ");
    assert.equal(user, "65532:65532");
    assert.equal(readOnly, "true");
  });

  it("serves a keyless openai/ model from the model server (no 'Missing credentials')", async () => {
    model.server.seen.length = 0;
    const res = await ask("local");
    const body = (await res.json()) as {
      choices: { message: { content: string } }[];
      usage: { total_tokens: number };
    };
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(
      body.choices[0]?.message.content,
      answerFor("test-model", [{ role: "user", content: "hello there" }]),
    );
    assert.ok(body.usage.total_tokens > 0);
    assert.equal(model.server.seen.length, 1);
    assert.equal(model.server.seen[0]?.model, "test-model");
  });

  it("streams from the model server, with usage in the last chunk when asked for", async () => {
    const res = await call({
      model: "local",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "count these words" }],
    });
    assert.equal(res.status, 200);
    const events = (await res.text())
      .split("\n")
      .filter((l) => l.startsWith("data: ") && l !== "data: [DONE]")
      .map((l) => JSON.parse(l.slice(6)) as { choices: { delta?: { content?: string } }[]; usage?: unknown });
    const text = events.map((e) => e.choices[0]?.delta?.content ?? "").join("");
    assert.equal(text, answerFor("test-model", [{ role: "user", content: "count these words" }]));
    assert.ok(events.length > 3, "several chunks, not one");
    const usage = events.at(-1)?.usage as Record<string, unknown> | undefined;
    assert.deepEqual(
      { prompt: usage?.prompt_tokens, completion: usage?.completion_tokens, total: usage?.total_tokens },
      { prompt: 3, completion: 6, total: 9 },
    );
  });

  it("lists the declared and the purchased models, not LiteLLM's price list", async () => {
    const res = await fetch(`${base}/v1/models`, { headers: { authorization: `Bearer ${MASTER_KEY}` } });
    const ids = ((await res.json()) as { data: { id: string }[] }).data.map((m) => m.id);
    assert.ok(ids.includes("local"), ids.join(", "));
    assert.ok(ids.includes(`paid/${BOUGHT}`), ids.join(", "));
    // LiteLLM also lists the wildcard route itself; nothing else under paid/.
    assert.deepEqual(
      ids.filter((id) => id.startsWith("paid/")).sort(),
      ["paid/*", `paid/${BOUGHT}`],
      `unexpected paid/ models: ${ids.join(", ")}`,
    );
  });

  it("routes paid/<purchased model> and any other paid/<model> to the buyer, without the prefix", async () => {
    buyer.answerWith(200);
    for (const name of [BOUGHT, "bought-at-run-time"]) {
      const res = await ask(`paid/${name}`);
      const body = (await res.json()) as { choices: { message: { content: string } }[] };
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(body.choices[0]?.message.content, `paid answer from ${name}`);
    }
    assert.deepEqual(buyer.seen, [
      { path: "/v1/chat/completions", model: BOUGHT },
      { path: "/v1/chat/completions", model: "bought-at-run-time" },
    ]);
  });

  for (const status of [500, 502, 429]) {
    it(`sends a paid call once when the buyer answers ${status} (a retry could pay the seller again)`, async () => {
      for (const name of [BOUGHT, "bought-at-run-time"]) {
        buyer.answerWith(status);
        const res = await ask(`paid/${name}`);
        await res.text();
        assert.equal(res.status, status);
        assert.equal(
          buyer.seen.length,
          1,
          `paid/${name}: the buyer saw ${buyer.seen.length} requests for one call`,
        );
      }
    });
  }

  it("still serves paid calls after the seller failed (no cooldown locks the route)", async () => {
    buyer.answerWith(200);
    const res = await ask(`paid/${BOUGHT}`);
    assert.equal(res.status, 200, await res.text());
  });
});
