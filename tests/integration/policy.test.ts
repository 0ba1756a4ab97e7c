import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import type { ConfigMap, EngineEvent, PolicyEvent, Stack } from "@pulumi/pulumi/automation";
import { scratchDir, sharedControlPlane } from "../harness/env";
import { programStack, REPO_ROOT } from "../harness/project";
import { outputCollector, testStack } from "../harness/pulumi";

const POLICY_PACK = path.join(REPO_ROOT, "policy");
const BAD_FIXTURE = path.join(REPO_ROOT, "tests/fixtures/policy-bad");
const PAY_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

interface PolicyRun {
  violations: PolicyEvent[];
  failed: boolean;
  output: string;
}

/** `pulumi preview --policy-pack policy/ [--policy-pack-config file]`, collecting violations. */
async function previewWithPolicy(stack: Stack, policyConfig?: object): Promise<PolicyRun> {
  const log = outputCollector();
  const violations: PolicyEvent[] = [];
  const policyPackConfigs: string[] = [];
  if (policyConfig) {
    const file = path.join(stack.workspace.workDir, "policy-config.json");
    fs.writeFileSync(file, JSON.stringify(policyConfig, null, 2));
    policyPackConfigs.push(file);
  }
  let failed = false;
  try {
    await stack.preview({
      policyPacks: [POLICY_PACK],
      policyPackConfigs,
      onOutput: log.onOutput,
      onEvent: (e: EngineEvent) => {
        if (e.policyEvent) violations.push(e.policyEvent);
      },
    });
  } catch (err) {
    failed = true;
    log.onOutput(`\n${(err as Error).message}`);
  }
  return { violations, failed, output: log.text() };
}

/** Asserts one violation of `policy` whose message matches, and returns it. */
function expectViolation(run: PolicyRun, policy: string, message: RegExp): PolicyEvent {
  const hit = run.violations.find((v) => v.policyName === policy && message.test(v.message));
  assert.ok(
    hit,
    `no ${policy} violation matching ${message}; got:\n${run.violations.map((v) => `  ${v.policyName}: ${v.message}`).join("\n")}\n${run.output}`,
  );
  return hit;
}

async function kubeconfigModeConfig(namespace: string): Promise<ConfigMap> {
  const cluster = await sharedControlPlane();
  return {
    "obol-stack:cluster": { value: JSON.stringify({ mode: "kubeconfig" }) },
    "obol-stack:kubeconfig": { value: cluster.kubeconfig, secret: true },
    "obol-stack:namespace": { value: namespace },
  };
}

/** `f` run at most once, by whoever asks first; later callers share its result. */
function once<T>(f: () => Promise<T>): () => Promise<T> {
  let result: Promise<T> | undefined;
  return () => {
    result ??= f();
    return result;
  };
}

describe("the policy pack on the real engine", function () {
  this.timeout(10 * 60_000);

  // Each preview runs once, in the first test that needs it: every test passes alone (`--grep`)
  // and in any order, and the summary test sees both runs without repeating them.
  const badProgramRun = once(async () => {
    const offer = (name: string, payment: Record<string, unknown>) => ({
      name,
      upstream: { url: `http://${name}.apps.svc:8080` },
      payment: { payTo: PAY_TO, ...payment },
    });
    const stack = await programStack({
      dir: scratchDir("policy-bad-program"),
      stackName: "bad",
      config: {
        ...(await kubeconfigModeConfig(`obol-pb-${process.pid}`)),
        "obol-stack:images": { value: JSON.stringify({ runtime: "ghcr.io/obol-stack/runtime:0.1" }) },
        "obol-stack:offers": {
          value: JSON.stringify([
            offer("pricey", { network: "base-sepolia", price: { perRequest: "0.5" } }),
            offer("on-base", { network: "base", price: { perRequest: "0.01" } }),
            offer("on-anvil", {
              network: "eip155:31337",
              price: { perRequest: "0.01" },
              asset: { address: "0x5FbDB2315678afecb367f032d93F642f64180aa3", eip712Name: "USD Coin" },
            }),
          ]),
        },
      },
    });
    return previewWithPolicy(stack, { "offer-price-bounds": { maxPricePerRequest: "0.1" } });
  });
  const badFixtureRun = once(async () => {
    const dir = scratchDir("policy-bad-fixture");
    const projectDir = path.join(dir, "project");
    fs.mkdirSync(projectDir, { recursive: true });
    const pulumiYaml = fs
      .readFileSync(path.join(BAD_FIXTURE, "Pulumi.yaml"), "utf8")
      .replace(/^runtime:/m, `main: ${path.relative(projectDir, BAD_FIXTURE)}\nruntime:`);
    fs.writeFileSync(path.join(projectDir, "Pulumi.yaml"), pulumiYaml);
    const stack = await testStack({
      workDir: projectDir,
      stackName: "fixture",
      stateDir: path.join(dir, "state"),
    });
    return previewWithPolicy(stack);
  });

  before(() => {
    assert.ok(
      fs.existsSync(path.join(POLICY_PACK, "node_modules/@pulumi/policy")),
      "the policy pack's dependencies are missing: run `npm ci --prefix policy --ignore-scripts`",
    );
  });

  it("passes the documented dev stack (Pulumi.dev.yaml) with no violation at all", async () => {
    const stack = await programStack({
      dir: scratchDir("policy-good"),
      stackName: "good",
      config: await kubeconfigModeConfig(`obol-pg-${process.pid}`),
    });
    const run = await previewWithPolicy(stack);
    assert.equal(run.failed, false, run.output);
    assert.deepEqual(
      run.violations.map((v) => `${v.policyName}: ${v.message}`),
      [],
    );
    assert.match(run.output, /obol-stack@v0\.1\.0/, "the pack ran");
  });

  it("reports what a valid program config can still get wrong: ceiling, allowlist, mainnet, moving tag", async () => {
    const run = await badProgramRun();
    assert.equal(run.failed, true, "mandatory violations fail the preview");
    const expected: [string, RegExp][] = [
      [
        "offer-price-bounds",
        /ServiceOffer "pricey": spec\.payment\.price\.perRequest is 0\.5, above the ceiling of 0\.1/,
      ],
      ["offer-mainnet-opt-in", /ServiceOffer "on-base": spec\.payment\.network eip155:8453 is a mainnet/],
      [
        "offer-network-allowlist",
        /ServiceOffer "on-anvil": spec\.payment\.network eip155:31337 is not in the allowed networks/,
      ],
      ["images-pinned", /Deployment "x402-gateway" container "x402-gateway": .*moving tag "0\.1"/],
    ];
    for (const [policy, message] of expected) {
      const v = expectViolation(run, policy, message);
      assert.equal(v.enforcementLevel, "mandatory");
    }
    assert.match(run.output, /above the ceiling of 0\.1/, "violations are printed for the user too");
  });

  it("reports what only hand-written resources can get wrong (tests/fixtures/policy-bad)", async () => {
    const run = await badFixtureRun();
    assert.equal(run.failed, true, "mandatory violations fail the preview");
    const expected: [string, RegExp][] = [
      ["offer-payto-checksummed", /ServiceOffer "lowercase-payto": .* is not EIP-55 checksummed/],
      ["offer-payto-checksummed", /ServiceOffer "zero-payto": spec\.payment\.payTo is the zero address/],
      ["offer-price-bounds", /ServiceOffer "free-lunch": .*perRequest is 0; prices must be positive/],
      ["offer-path-not-reserved", /ServiceOffer "reserved": spec\.path "\/\.well-known\/agent" is reserved/],
      ["offer-routes-unique", /path "\/services\/shared" overlaps "\/services\/shared"/],
      ["offer-routes-unique", /hostname "api\.example\.com" is already used by/],
      [
        "no-plaintext-secrets",
        /ConfigMap "leaky-config": data\["OPENAI_API_KEY"\] contains an "sk-" API key/,
      ],
      [
        "no-plaintext-secrets",
        /Deployment "leaky" container "app": env SIGNER_PRIVATE_KEY holds a 32-byte hex/,
      ],
      [
        "images-pinned",
        /Deployment "leaky" container "app": image "nginx:latest" uses the moving tag "latest"/,
      ],
      ["workload-non-root", /Deployment "leaky" container "app": runs as root/],
      ["tunnel-gateway-only", /the tunnel exposes "http:\/\/litellm\.obol\.svc:4000"/],
      ["no-external-services", /Service "public-litellm" is of type LoadBalancer/],
      ["k3d-cluster-name", /k3d cluster name "obol-a-cluster-name-far-beyond-k3ds-limit" is 41 characters/],
      ["registration-stable-url", /agentURI .*trycloudflare\.com.* is on a quick tunnel/],
      ["registration-not-on-quick-tunnel", /1 ERC-8004 registration\(s\) while Deployment "cloudflared"/],
    ];
    for (const [policy, message] of expected) {
      assert.equal(expectViolation(run, policy, message).enforcementLevel, "mandatory", policy);
    }
    const advisory = expectViolation(
      run,
      "workload-resources",
      /Deployment "leaky" container "app": sets no/,
    );
    // The SDK's PolicyEvent type says "warning"; the engine reports the level by its name.
    assert.equal(String(advisory.enforcementLevel), "advisory", "advisory policies warn without failing");
    const secrets = run.violations.map((v) => v.message).join("\n");
    assert.ok(!secrets.includes("ab".repeat(32)), "no message repeats the secret it found");
  });

  it("together the runs show every policy of the pack", async () => {
    const runs = [await badProgramRun(), await badFixtureRun()];
    const seen = new Set(runs.flatMap((r) => r.violations.map((v) => v.policyName)));
    assert.ok(seen.size >= 10, `${seen.size} distinct policies violated`);
    assert.deepEqual([...seen].sort(), [
      "images-pinned",
      "k3d-cluster-name",
      "no-external-services",
      "no-plaintext-secrets",
      "offer-mainnet-opt-in",
      "offer-network-allowlist",
      "offer-path-not-reserved",
      "offer-payto-checksummed",
      "offer-price-bounds",
      "offer-routes-unique",
      "registration-not-on-quick-tunnel",
      "registration-stable-url",
      "tunnel-gateway-only",
      "workload-non-root",
      "workload-resources",
    ]);
  });
});
