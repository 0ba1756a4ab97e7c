import * as assert from "node:assert/strict";
import * as pulumi from "@pulumi/pulumi";
import { Gateway } from "../../components/gateway";

/** Resources declared under the mocks, by type and name, with their inputs. */
const declared: { type: string; name: string; inputs: Record<string, unknown> }[] = [];

describe("the Gateway component's facilitator credentials (Pulumi mocks)", () => {
  before(() => {
    pulumi.runtime.setMocks(
      {
        newResource: (args) => {
          declared.push({ type: args.type, name: args.name, inputs: args.inputs });
          return { id: `${args.name}-id`, state: args.inputs };
        },
        call: (args) => args.inputs,
      },
      "obol",
      "test",
      false,
    );
  });

  const outputOf = <T>(o: pulumi.Output<T>) => new Promise<T>((resolve) => o.apply(resolve));

  it("mounts a CDP API key as two Secret files and names them in the environment, never as values", async () => {
    const gateway = new Gateway("gw-cdp", {
      namespace: "obol",
      image: "runtime:test",
      facilitatorUrl: "https://api.cdp.coinbase.com/platform/v2/x402",
      cdpApiKey: { id: pulumi.secret("KEY-ID-VALUE-7f3"), secret: pulumi.secret("KEY-SECRET-VALUE-9c1") },
    });
    await outputOf(gateway.url);
    const secret = declared.find(
      (r) => r.type === "kubernetes:core/v1:Secret" && r.name.startsWith("gw-cdp"),
    );
    assert.ok(secret, `a Secret: ${declared.map((r) => `${r.type} ${r.name}`).join(", ")}`);
    // Pulumi's wire form of a secret: its signature key, and the value.
    const SECRET_SIG = "4dabf18193072939515e22adb298388d";
    const stringData = secret.inputs.stringData as Record<string, unknown>;
    assert.ok(SECRET_SIG in stringData, "the Secret's data is a Pulumi secret (encrypted in state)");
    assert.deepEqual(Object.keys(stringData.value as object).sort(), [
      "cdp-api-key-id",
      "cdp-api-key-secret",
    ]);
    // The Deployment is declared once the Secret's name is known: wait for it.
    for (let i = 0; i < 100 && !declared.some((r) => r.type === "kubernetes:apps/v1:Deployment"); i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    const deployment = declared.find(
      (r) => r.type === "kubernetes:apps/v1:Deployment" && r.name.startsWith("gw-cdp"),
    );
    const env = JSON.stringify(deployment?.inputs);
    assert.match(env, /"name":"CDP_API_KEY_ID_FILE","value":"\/var\/run\/secrets\/obol\/cdp-api-key-id"/);
    assert.match(
      env,
      /"name":"CDP_API_KEY_SECRET_FILE","value":"\/var\/run\/secrets\/obol\/cdp-api-key-secret"/,
    );
    for (const value of ["KEY-ID-VALUE-7f3", "KEY-SECRET-VALUE-9c1"])
      assert.ok(!env.includes(value), "the key's values are not in the Deployment");
  });
});
