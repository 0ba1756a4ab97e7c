import * as assert from "node:assert/strict";
import { keccak256, getAddress as viemGetAddress } from "viem";
import { CHAINS } from "../../api/chains";
import { PORTS, isReservedPath as programIsReservedPath, RESERVED_PATHS } from "../../api/contract";
import { cloudflaredArgs } from "../../components/tunnel";
import { toChecksumAddress } from "../../policy/checks/address";
import * as constants from "../../policy/checks/constants";
import { compareDecimal } from "../../policy/checks/decimal";
import { keccak256Hex } from "../../policy/checks/keccak";
import { isReservedPath } from "../../policy/checks/offers";
import { isSecretName, secretValueKind } from "../../policy/checks/secrets";
import { isUnknown, type JsonObject } from "../../policy/checks/values";
import type {
  PolicyResource,
  ReportViolation,
  ResourceValidationArgs,
  ResourceValidationPolicy,
  StackValidationArgs,
  StackValidationPolicy,
} from "../../policy/policies";
import * as pack from "../../policy/policies";
import { K3D_MAX_NAME } from "../../program/config/types";
import { at, first, only } from "../harness/assertions";

const PAY_TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** Calls a resource policy the way the engine does, collecting the reported messages. */
function runResourcePolicy(
  policy: ResourceValidationPolicy,
  type: string,
  props: Record<string, unknown>,
  config: object = {},
): string[] {
  const messages: string[] = [];
  const report: ReportViolation = (message: string) => messages.push(message);
  const args: ResourceValidationArgs = {
    type,
    props,
    urn: `urn:pulumi:test::test::${type}::res`,
    name: "res",
    opts: {
      protect: false,
      ignoreChanges: [],
      aliases: [],
      customTimeouts: {} as never,
      additionalSecretOutputs: [],
    },
    stackTags: new Map(),
    isType: () => false,
    asType: () => undefined,
    getConfig: <T extends object>() => config as T,
    notApplicable: (reason?: string): never => {
      throw new Error(`not applicable: ${reason}`);
    },
  };
  const validations = policy.validateResource;
  for (const validate of Array.isArray(validations) ? validations : validations ? [validations] : []) {
    void validate(args, report);
  }
  return messages;
}

function runStackPolicy(
  policy: StackValidationPolicy,
  resources: { type: string; props: Record<string, unknown> }[],
  config: object = {},
): string[] {
  const messages: string[] = [];
  const args: StackValidationArgs = {
    resources: resources.map(
      (r, i) =>
        ({ ...r, urn: `urn:${i}`, name: `r${i}`, dependencies: [], propertyDependencies: {} }) as never,
    ) as PolicyResource[],
    stackTags: new Map(),
    getConfig: <T extends object>() => config as T,
    notApplicable: (reason?: string): never => {
      throw new Error(`not applicable: ${reason}`);
    },
  };
  void policy.validateStack(args, (message: string) => messages.push(message));
  return messages;
}

function serviceOffer(spec: Record<string, unknown> = {}, name = "weather", namespace = "obol"): JsonObject {
  return {
    apiVersion: "obol.org/v1alpha1",
    kind: "ServiceOffer",
    metadata: { name, namespace },
    spec: {
      type: "http",
      payment: { scheme: "exact", network: "eip155:84532", payTo: PAY_TO, price: { perRequest: "0.001" } },
      path: `/services/${name}`,
      ...spec,
    } as JsonObject,
  };
}

function payment(overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    scheme: "exact",
    network: "eip155:84532",
    payTo: PAY_TO,
    price: { perRequest: "0.001" },
    ...overrides,
  };
}

/** A Deployment shaped like components/runtimeWorkload.ts renders it (all rules pass). */
function deployment(
  container: Record<string, unknown> = {},
  pod: Record<string, unknown> = {},
  name = "x402-gateway",
): JsonObject {
  return {
    metadata: { name, namespace: "obol" },
    spec: {
      template: {
        spec: {
          securityContext: { runAsNonRoot: true, runAsUser: 65532 },
          containers: [
            {
              name,
              image: "ghcr.io/obol-stack/runtime:0.1.0",
              args: ["gateway"],
              env: [{ name: "SIGNER_KEY_FILE", value: "/var/run/secrets/obol/signer-key" }],
              resources: { requests: { cpu: "50m", memory: "96Mi" }, limits: { memory: "256Mi" } },
              ...container,
            },
          ],
          ...pod,
        },
      },
    },
  } as JsonObject;
}

const DEPLOYMENT = constants.TYPES.deployment;
const OFFER = constants.TYPES.serviceOffer;

describe("policy pack", () => {
  describe("shared facts stay equal to the program's", () => {
    it("reserved paths equal api/contract.ts RESERVED_PATHS, with the same matching", () => {
      assert.deepEqual([...constants.RESERVED_PATHS], [...RESERVED_PATHS]);
      for (const p of ["/", "/api", "/api/x", "/apix", "/services/a", "/.well-known/", "/metrics/x", "//"]) {
        assert.equal(isReservedPath(p), programIsReservedPath(p), p);
      }
    });
    it("the k3d name limit equals program/config/parse.ts K3D_MAX_NAME", () => {
      assert.equal(constants.K3D_MAX_NAME, K3D_MAX_NAME);
    });
    it("mainnets and default networks match api/chains.ts", () => {
      assert.deepEqual(
        [...constants.MAINNET_NETWORKS].sort(),
        CHAINS.filter((c) => c.mainnet)
          .map((c) => c.caip2)
          .sort(),
      );
      // Public chains (those with an ERC-8004 registry); the local anvil chain is left out.
      assert.deepEqual(
        [...constants.DEFAULT_ALLOWED_NETWORKS].sort(),
        CHAINS.filter((c) => c.identityRegistry)
          .map((c) => c.caip2)
          .sort(),
      );
    });
    it("the unknown sentinels are @pulumi/policy's", () => {
      const proxy = require("../../policy/node_modules/@pulumi/policy/proxy") as Record<string, unknown>;
      const sentinels = Object.entries(proxy).filter(([k]) => /^unknown[A-Z]\w*Value$/.test(k));
      assert.equal(sentinels.length, 7);
      for (const [name, value] of sentinels) assert.ok(isUnknown(value), name);
    });
    it("the gateway Service name and the tunnel's args are those of components/", () => {
      const args = cloudflaredArgs("quick", `http://x402-gateway.obol.svc:${PORTS.gateway}`);
      const props = deployment(
        { name: "cloudflared", image: "cloudflare/cloudflared:2025.7.0", args },
        {},
        "cloudflared",
      );
      assert.deepEqual(runResourcePolicy(pack.tunnelGatewayOnly, DEPLOYMENT, props), []);
    });
  });

  describe("helpers", () => {
    it("keccak-256 agrees with viem", () => {
      for (const s of ["", "abc", "a".repeat(135), "b".repeat(136), "c".repeat(500)]) {
        assert.equal(
          keccak256Hex(new TextEncoder().encode(s)),
          keccak256(new TextEncoder().encode(s)).slice(2),
        );
      }
    });
    it("EIP-55 checksums agree with viem", () => {
      for (const a of [PAY_TO, "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", `0x${"de".repeat(20)}`]) {
        assert.equal(toChecksumAddress(a.toLowerCase()), viemGetAddress(a));
      }
      assert.equal(toChecksumAddress("0x12"), undefined);
    });
    it("compares decimals exactly", () => {
      assert.equal(compareDecimal("10", "10.000"), 0);
      assert.equal(compareDecimal("0.1", "0.09999999999999999999"), 1);
      assert.equal(compareDecimal("9.5", "10"), -1);
    });
    it("tells secret names from references to secrets", () => {
      for (const n of ["API_KEY", "tunnelToken", "db-password", "SIGNER_PRIVATE_KEY", "OPENAI_API_KEY"]) {
        assert.ok(isSecretName(n), n);
      }
      for (const n of ["SIGNER_KEY_FILE", "config.yaml", "GATEWAY_URL", "monkey", "KEY_ID", "HOME"]) {
        assert.ok(!isSecretName(n), n);
      }
      assert.ok(secretValueKind(`key: 0x${"ab".repeat(32)}`));
      assert.ok(secretValueKind("api_key: sk-abcdefghijklmnop1234"));
      assert.equal(secretValueKind(`tx 0x${"ab".repeat(33)}`), undefined);
      assert.equal(secretValueKind("api_key: os.environ/MODEL_KEY_OPENAI"), undefined);
    });
  });

  describe("offer-payto-checksummed", () => {
    const run = (props: JsonObject) => runResourcePolicy(pack.offerPayToChecksummed, OFFER, props);
    it("passes a checksummed payee, in payment and payments[]", () => {
      assert.deepEqual(run(serviceOffer({ payments: [payment({ network: "eip155:11155111" })] })), []);
    });
    it("rejects a lowercase (unchecksummed) payee and names the checksummed form", () => {
      const m = only(run(serviceOffer({ payment: payment({ payTo: PAY_TO.toLowerCase() }) })));
      assert.match(m, /ServiceOffer "weather": spec\.payment\.payTo .* is not EIP-55 checksummed/);
      assert.ok(m.includes(PAY_TO));
    });
    it("rejects a bad checksum and the zero address in payments[]", () => {
      const badCase = `${PAY_TO.slice(0, 10)}${PAY_TO.slice(10, 11).toLowerCase()}${PAY_TO.slice(11)}`;
      const messages = run(
        serviceOffer({
          payments: [
            payment({ payTo: `0x${"0".repeat(40)}` }),
            payment({ payTo: badCase }),
            payment({ payTo: "0x12" }),
          ],
        }),
      );
      assert.equal(messages.length, 3);
      assert.match(at(messages, 0), /spec\.payments\[0\]\.payTo is the zero address/);
      assert.match(at(messages, 1), /spec\.payments\[1\]\.payTo .* not EIP-55 checksummed/);
      assert.match(at(messages, 2), /spec\.payments\[2\]\.payTo "0x12" is not an address/);
    });
    it("skips a payee unknown during preview, and ignores other types", () => {
      assert.deepEqual(run(serviceOffer({ payment: payment({ payTo: UNKNOWN_STRING }) })), []);
      assert.deepEqual(
        runResourcePolicy(pack.offerPayToChecksummed, DEPLOYMENT, { spec: { payment: {} } }),
        [],
      );
    });
  });

  describe("offer-price-bounds", () => {
    const run = (props: JsonObject, config: object = {}) =>
      runResourcePolicy(pack.offerPriceBounds, OFFER, props, config);
    it("passes prices under the default ceilings", () => {
      assert.deepEqual(run(serviceOffer()), []);
      assert.deepEqual(run(serviceOffer({ payment: payment({ price: { perMTok: "100" } }) })), []);
    });
    it("rejects zero, non-decimal and missing prices", () => {
      const messages = run(
        serviceOffer({
          payment: payment({ price: { perRequest: "0.000" } }),
          payments: [payment({ price: { perRequest: 1 } }), payment({ price: {} })],
        }),
      );
      assert.equal(messages.length, 3);
      assert.match(at(messages, 0), /spec\.payment\.price\.perRequest is 0\.000; prices must be positive/);
      assert.match(at(messages, 1), /perRequest 1 is not a decimal amount written as a string/);
      assert.match(at(messages, 2), /sets neither perRequest nor perMTok/);
    });
    it("rejects a price above the default ceiling of 10", () => {
      const m = first(run(serviceOffer({ payment: payment({ price: { perRequest: "10.01" } }) })));
      assert.match(m, /perRequest is 10\.01, above the ceiling of 10 \(policy config maxPricePerRequest\)/);
    });
    it("checks a route's own price too", () => {
      const m = first(
        run(
          serviceOffer({
            routes: [
              { path: "/a", gate: "paid" },
              { path: "/b", gate: "paid", price: { perRequest: "50" } },
            ],
          }),
        ),
      );
      assert.match(m, /spec\.routes\[1\]\.price\.perRequest is 50, above the ceiling of 10/);
    });
    it("uses the configured ceilings", () => {
      const config = { maxPricePerRequest: "0.0001", maxPricePerMTok: "1" };
      const m1 = first(run(serviceOffer(), config));
      assert.match(m1, /perRequest is 0\.001, above the ceiling of 0\.0001/);
      const m2 = first(run(serviceOffer({ payment: payment({ price: { perMTok: "1.5" } }) }), config));
      assert.match(m2, /perMTok is 1\.5, above the ceiling of 1 \(policy config maxPricePerMTok\)/);
    });
  });

  describe("offer-network-allowlist and offer-mainnet-opt-in", () => {
    it("passes testnets by default", () => {
      assert.deepEqual(runResourcePolicy(pack.offerNetworkAllowlist, OFFER, serviceOffer()), []);
      assert.deepEqual(runResourcePolicy(pack.offerMainnetOptIn, OFFER, serviceOffer()), []);
    });
    it("rejects a network outside the allowlist (default and configured)", () => {
      const local = serviceOffer({ payment: payment({ network: "eip155:31337" }) });
      const m = first(runResourcePolicy(pack.offerNetworkAllowlist, OFFER, local));
      assert.match(m, /spec\.payment\.network eip155:31337 is not in the allowed networks/);
      const m2 = first(
        runResourcePolicy(pack.offerNetworkAllowlist, OFFER, serviceOffer(), {
          allowedNetworks: ["eip155:11155111"],
        }),
      );
      assert.match(m2, /eip155:84532 is not in the allowed networks \(eip155:11155111\)/);
      assert.deepEqual(
        runResourcePolicy(pack.offerNetworkAllowlist, OFFER, local, { allowedNetworks: ["eip155:31337"] }),
        [],
      );
    });
    it("rejects a mainnet unless allowMainnet is set", () => {
      const base = serviceOffer({ payments: [payment({ network: "eip155:8453" })] });
      const m = first(runResourcePolicy(pack.offerMainnetOptIn, OFFER, base));
      assert.match(m, /spec\.payments\[0\]\.network eip155:8453 is a mainnet.*allowMainnet: true/);
      assert.deepEqual(runResourcePolicy(pack.offerMainnetOptIn, OFFER, base, { allowMainnet: true }), []);
    });
  });

  describe("offer-path-not-reserved and offer-routes-unique", () => {
    it("passes the default path and rejects reserved ones", () => {
      assert.deepEqual(runResourcePolicy(pack.offerPathNotReserved, OFFER, serviceOffer()), []);
      const m = first(
        runResourcePolicy(pack.offerPathNotReserved, OFFER, serviceOffer({ path: "/.well-known/x" })),
      );
      assert.match(m, /spec\.path "\/\.well-known\/x" is reserved/);
      assert.equal(
        runResourcePolicy(pack.offerPathNotReserved, OFFER, serviceOffer({ path: "/" })).length,
        1,
      );
    });
    it("passes distinct offers, and the same path in two namespaces", () => {
      const offers = [
        serviceOffer({}, "a"),
        serviceOffer({ hostname: "a.example.com" }, "b"),
        serviceOffer({}, "a", "other"),
      ];
      assert.deepEqual(
        runStackPolicy(
          pack.offerRoutesUnique,
          offers.map((props) => ({ type: OFFER, props })),
        ),
        [],
      );
    });
    it("rejects overlapping paths and a shared hostname", () => {
      const offers = [
        serviceOffer({ path: "/services/x", hostname: "api.example.com" }, "a"),
        serviceOffer({ path: "/services/x/y" }, "b"),
        serviceOffer({ path: "/services/z", hostname: "API.example.com" }, "c"),
      ];
      const messages = runStackPolicy(pack.offerRoutesUnique, [
        ...offers.map((props) => ({ type: OFFER, props })),
        { type: DEPLOYMENT, props: deployment() },
      ]);
      assert.equal(messages.length, 2);
      assert.match(
        at(messages, 0),
        /ServiceOffer "b": path "\/services\/x\/y" overlaps "\/services\/x" of ServiceOffer "a"/,
      );
      assert.match(
        at(messages, 1),
        /ServiceOffer "c": hostname "API\.example\.com" is already used by ServiceOffer "a"/,
      );
    });
  });

  describe("no-plaintext-secrets", () => {
    const CONFIG_MAP = constants.TYPES.configMap;
    it("passes the program's LiteLLM config and runtime env", () => {
      const configYaml = "model_list:\n  - litellm_params:\n      api_key: os.environ/MODEL_KEY_OPENAI\n";
      assert.deepEqual(
        runResourcePolicy(pack.noPlaintextSecrets, CONFIG_MAP, {
          metadata: { name: "c" },
          data: { "config.yaml": configYaml },
        }),
        [],
      );
      const env = [
        { name: "SIGNER_KEY_FILE", value: "/var/run/secrets/obol/signer-key" },
        { name: "TUNNEL_TOKEN", valueFrom: { secretKeyRef: { name: "cloudflared-token", key: "token" } } },
        { name: "API_TOKEN", value: "" },
      ];
      assert.deepEqual(runResourcePolicy(pack.noPlaintextSecrets, DEPLOYMENT, deployment({ env })), []);
    });
    it("rejects secrets in ConfigMaps by name or by value, without echoing the value", () => {
      const key = `0x${"cd".repeat(32)}`;
      const messages = runResourcePolicy(pack.noPlaintextSecrets, CONFIG_MAP, {
        metadata: { name: "leaky" },
        data: { DB_PASSWORD: "hunter2", "app.yaml": `signer: ${key}\n` },
        binaryData: { "tls.privateKey": "AAAA" },
      });
      assert.equal(messages.length, 3);
      assert.match(
        at(messages, 0),
        /ConfigMap "leaky": data\["DB_PASSWORD"\] looks like a secret by its name/,
      );
      assert.match(at(messages, 1), /data\["app\.yaml"\] contains a 32-byte hex private key/);
      assert.match(at(messages, 2), /binaryData\["tls\.privateKey"\]/);
      assert.ok(!messages.join().includes(key) && !messages.join().includes("hunter2"));
    });
    it("rejects env literals that carry secrets", () => {
      const env = [
        { name: "OPENAI_API_KEY", value: "not-shaped-like-a-key" },
        { name: "UPSTREAM", value: "sk-abcdefghijklmnopqrstuvwx" },
      ];
      const messages = runResourcePolicy(pack.noPlaintextSecrets, DEPLOYMENT, deployment({ env }));
      assert.equal(messages.length, 2);
      assert.match(
        at(messages, 0),
        /env OPENAI_API_KEY holds a secret \(by its name\) as a literal value; use valueFrom/,
      );
      assert.match(at(messages, 1), /env UPSTREAM holds an "sk-" API key as a literal value/);
    });
  });

  describe("images-pinned", () => {
    const run = (image: string, config: object = {}) =>
      runResourcePolicy(pack.imagesPinned, DEPLOYMENT, deployment({ image }), config);
    it("passes exact tags and digests", () => {
      for (const image of [
        "ghcr.io/obol-stack/runtime:0.1.0",
        "ghcr.io/berriai/litellm:main-v1.74.9-stable",
        "localhost:5000/x:1.2.3",
        `nginx@sha256:${"a".repeat(64)}`,
        UNKNOWN_STRING,
      ]) {
        assert.deepEqual(run(image), [], image);
      }
    });
    it("rejects latest, a missing tag and moving tags", () => {
      assert.match(first(run("nginx:latest")), /moving tag "latest"/);
      assert.match(first(run("localhost:5000/nginx")), /has no tag, which means latest/);
      assert.match(first(run("ghcr.io/obol-stack/runtime:0.1")), /moving tag "0\.1"/);
      assert.match(first(run("cloudflare/cloudflared:stable")), /moving tag "stable"/);
    });
    it("requires digests when configured", () => {
      assert.match(first(run("nginx:1.27.3", { requireDigest: true })), /not pinned by digest/);
      assert.deepEqual(run(`nginx:1.27.3@sha256:${"b".repeat(64)}`, { requireDigest: true }), []);
    });
    it("checks init containers too", () => {
      const props = deployment({}, { initContainers: [{ name: "init", image: "busybox" }] });
      assert.match(
        first(runResourcePolicy(pack.imagesPinned, DEPLOYMENT, props)),
        /container "init": image "busybox"/,
      );
    });
  });

  describe("workload-resources and workload-non-root", () => {
    it("pass a Deployment shaped like the program's", () => {
      assert.deepEqual(runResourcePolicy(pack.workloadResources, DEPLOYMENT, deployment()), []);
      assert.deepEqual(runResourcePolicy(pack.workloadNonRoot, DEPLOYMENT, deployment()), []);
    });
    it("report missing requests and limits", () => {
      const m = first(
        runResourcePolicy(
          pack.workloadResources,
          DEPLOYMENT,
          deployment({ resources: { requests: { cpu: "10m" } } }),
        ),
      );
      assert.match(m, /sets no resources\.requests\.memory, resources\.limits\.memory/);
      assert.equal(pack.workloadResources.enforcementLevel, "advisory");
    });
    it("reject root, a missing runAsNonRoot and privileged containers", () => {
      assert.match(
        first(
          runResourcePolicy(
            pack.workloadNonRoot,
            DEPLOYMENT,
            deployment({}, { securityContext: { runAsUser: 0 } }),
          ),
        ),
        /runs as root \(runAsUser: 0\)/,
      );
      assert.match(
        first(runResourcePolicy(pack.workloadNonRoot, DEPLOYMENT, deployment({}, { securityContext: {} }))),
        /does not set runAsNonRoot: true/,
      );
      const overridden = deployment({ securityContext: { runAsUser: 0, privileged: true } });
      assert.deepEqual(
        runResourcePolicy(pack.workloadNonRoot, DEPLOYMENT, overridden).map((m) => m.split(": ")[1]),
        ["runs as root (runAsUser", "is privileged; no obol-stack workload needs that"],
      );
    });
  });

  describe("tunnel-gateway-only and no-external-services", () => {
    const tunnel = (args: string[]) =>
      deployment({ name: "cloudflared", image: "cloudflare/cloudflared:2025.7.0", args }, {}, "cloudflared");
    it("passes quick and named tunnels to the gateway", () => {
      for (const args of [
        ["tunnel", "--url", "http://x402-gateway.obol.svc:8080"],
        ["tunnel", "run", "--url=http://x402-gateway:8080"],
      ]) {
        assert.deepEqual(runResourcePolicy(pack.tunnelGatewayOnly, DEPLOYMENT, tunnel(args)), []);
      }
    });
    it("rejects a tunnel to anything else, or with no origin", () => {
      const m = first(
        runResourcePolicy(
          pack.tunnelGatewayOnly,
          DEPLOYMENT,
          tunnel(["tunnel", "--url", "http://litellm.obol.svc:4000"]),
        ),
      );
      assert.match(m, /the tunnel exposes "http:\/\/litellm\.obol\.svc:4000"; only the x402-gateway Service/);
      assert.match(
        first(runResourcePolicy(pack.tunnelGatewayOnly, DEPLOYMENT, tunnel(["tunnel", "run"]))),
        /cloudflared has no --url/,
      );
      assert.equal(
        runResourcePolicy(pack.tunnelGatewayOnly, DEPLOYMENT, tunnel(["tunnel", "--url", "http://gw:1"]), {
          gatewayService: "gw",
        }).length,
        0,
      );
    });
    it("rejects LoadBalancer and NodePort Services", () => {
      const SERVICE = constants.TYPES.service;
      assert.deepEqual(runResourcePolicy(pack.noExternalServices, SERVICE, { spec: { ports: [] } }), []);
      for (const type of ["LoadBalancer", "NodePort"]) {
        const m = first(
          runResourcePolicy(pack.noExternalServices, SERVICE, {
            metadata: { name: "s" },
            spec: { type },
          }),
        );
        assert.match(m, new RegExp(`Service "s" is of type ${type}`));
      }
    });
  });

  describe("registration-stable-url and registration-not-on-quick-tunnel", () => {
    const REG = constants.TYPES.agentRegistration;
    it("passes a stable https agentURI", () => {
      assert.deepEqual(
        runResourcePolicy(pack.registrationStableUrl, REG, {
          agentURI: "https://api.example.com/.well-known/agent-registration.json",
        }),
        [],
      );
    });
    it("rejects a quick-tunnel or plain-http agentURI", () => {
      assert.match(
        first(
          runResourcePolicy(pack.registrationStableUrl, REG, {
            agentURI: "https://a-b-c.trycloudflare.com/x.json",
          }),
        ),
        /is on a quick tunnel \(trycloudflare\.com\)/,
      );
      assert.match(
        first(
          runResourcePolicy(pack.registrationStableUrl, REG, { agentURI: "http://api.example.com/x.json" }),
        ),
        /must be https/,
      );
    });
    const quickTunnel = {
      type: DEPLOYMENT,
      props: deployment(
        {
          name: "cloudflared",
          image: "cloudflare/cloudflared:2025.7.0",
          args: ["tunnel", "--url", "http://x"],
        },
        {},
        "cloudflared",
      ),
    };
    const registration = { type: REG, props: { agentURI: "https://api.example.com/a.json" } };
    it("rejects a registration while the only public URL is a quick tunnel", () => {
      const m = first(runStackPolicy(pack.registrationNotOnQuickTunnel, [quickTunnel, registration]));
      assert.match(m, /1 ERC-8004 registration\(s\) while Deployment "cloudflared" .* runs a quick tunnel/);
    });
    it("passes with a stable PUBLIC_BASE_URL, a named tunnel, or no registration", () => {
      const gateway = {
        type: DEPLOYMENT,
        props: deployment({ env: [{ name: "PUBLIC_BASE_URL", value: "https://api.example.com" }] }),
      };
      assert.deepEqual(
        runStackPolicy(pack.registrationNotOnQuickTunnel, [quickTunnel, registration, gateway]),
        [],
      );
      assert.deepEqual(runStackPolicy(pack.registrationNotOnQuickTunnel, [quickTunnel]), []);
      const named = {
        type: DEPLOYMENT,
        props: deployment({
          args: ["tunnel", "run", "--url", "http://x"],
          image: "cloudflare/cloudflared:1.2.3",
        }),
      };
      assert.deepEqual(runStackPolicy(pack.registrationNotOnQuickTunnel, [named, registration]), []);
    });
  });

  describe("k3d-cluster-name", () => {
    const K3D = constants.TYPES.k3dCluster;
    it("passes a 32-character name and rejects 33 characters or a non-DNS name", () => {
      assert.deepEqual(runResourcePolicy(pack.k3dClusterName, K3D, { name: `obol-${"a".repeat(27)}` }), []);
      assert.match(
        first(runResourcePolicy(pack.k3dClusterName, K3D, { name: `obol-${"a".repeat(28)}` })),
        /is 33 characters; k3d allows at most 32/,
      );
      assert.match(
        first(runResourcePolicy(pack.k3dClusterName, K3D, { name: "Obol_Dev" })),
        /must be lowercase/,
      );
    });
  });

  describe("the pack", () => {
    it("has unique names, descriptions and an explicit enforcement level on every policy", () => {
      const names = pack.policies.map((p) => p.name);
      assert.equal(new Set(names).size, names.length);
      for (const p of pack.policies) {
        assert.ok(p.description.length > 10, p.name);
        assert.ok(p.enforcementLevel === "mandatory" || p.enforcementLevel === "advisory", p.name);
      }
    });
    it("declares every config default in its JSON schema", () => {
      for (const [name, defaults] of Object.entries(pack.CONFIG_DEFAULTS)) {
        const policy = pack.policies.find((p) => p.name === name);
        assert.ok(policy?.configSchema, name);
        for (const [key, value] of Object.entries(defaults)) {
          assert.deepEqual(policy.configSchema.properties[key]?.default, value, `${name}.${key}`);
        }
      }
    });
  });
});
