import * as assert from "node:assert/strict";
import * as crypto from "node:crypto";
import { createFacilitatorConfig } from "@coinbase/x402";
import { CDP_FACILITATOR_URL, isCdpApiKeySecret } from "../../api/contract";
import { facilitatorAuthFromEnv } from "../../controller/shared/facilitatorAccess";

const KEY_ID = "organizations/0f4e/apiKeys/7d1c-test";

/** A CDP-style Ed25519 key secret (base64 of seed ‖ public key) and its public key. */
function ed25519Key(): { secret: string; publicKey: crypto.KeyObject } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519");
  const seed = privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32);
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  return { secret: Buffer.concat([seed, raw]).toString("base64"), publicKey };
}

/** A CDP-style EC key secret (P-256, PKCS#8 PEM) and its public key. */
function ecKey(): { secret: string; publicKey: crypto.KeyObject } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { secret: privateKey.export({ format: "pem", type: "pkcs8" }).toString(), publicKey };
}

interface Jwt {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** Whether the signature verifies with `publicKey`. */
  signedBy(publicKey: crypto.KeyObject): boolean;
}

function decodeJwt(authorization: string | undefined): Jwt {
  const match = /^Bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(authorization ?? "");
  assert.ok(match, `a bearer JWT: ${authorization}`);
  const [, head = "", body = "", signature = ""] = match;
  const json = (part: string) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));
  const header = json(head);
  const data = Buffer.from(`${head}.${body}`);
  const sig = Buffer.from(signature, "base64url");
  return {
    header,
    payload: json(body),
    signedBy: (publicKey) =>
      header.alg === "EdDSA"
        ? crypto.verify(null, data, publicKey, sig)
        : crypto.verify("sha256", data, { key: publicKey, dsaEncoding: "ieee-p1363" }, sig),
  };
}

describe("Coinbase's facilitator (CDP): calls signed with an API key", () => {
  it("the URL the program defaults to is @coinbase/x402's", () => {
    assert.equal(createFacilitatorConfig("id", "secret").url, CDP_FACILITATOR_URL);
  });

  for (const [kind, make, alg] of [
    ["an Ed25519 key", ed25519Key, "EdDSA"],
    ["an EC key (PKCS#8)", ecKey, "ES256"],
  ] as const) {
    it(`signs verify, settle and supported with ${kind}: a JWT per call naming the key and the call`, async () => {
      const key = make();
      assert.equal(isCdpApiKeySecret(key.secret), true);
      const auth = await facilitatorAuthFromEnv({ CDP_API_KEY_ID: KEY_ID, CDP_API_KEY_SECRET: key.secret });
      assert.ok("createAuthHeaders" in auth);
      const headers = await auth.createAuthHeaders();
      const host = new URL(CDP_FACILITATOR_URL).host;
      const base = new URL(CDP_FACILITATOR_URL).pathname;
      for (const [path, method] of [
        ["verify", "POST"],
        ["settle", "POST"],
        ["supported", "GET"],
      ] as const) {
        const jwt = decodeJwt(headers[path].Authorization);
        assert.equal(jwt.header.alg, alg);
        assert.equal(jwt.header.kid, KEY_ID);
        assert.equal(jwt.payload.sub, KEY_ID);
        assert.equal(jwt.payload.iss, "cdp");
        assert.deepEqual(jwt.payload.uris, [`${method} ${host}${base}/${path}`]);
        const nbf = jwt.payload.nbf as number;
        assert.equal((jwt.payload.exp as number) - nbf, 120);
        assert.ok(Math.abs(nbf - Date.now() / 1000) < 60, "issued now");
        assert.equal(jwt.signedBy(key.publicKey), true, `${path}: signed with the key`);
        assert.equal(jwt.signedBy(make().publicKey), false, `${path}: not with another key`);
      }
      // A fresh JWT per call (a random nonce in the header).
      const again = await auth.createAuthHeaders();
      assert.notEqual(again.verify.Authorization, headers.verify.Authorization);
    });
  }

  it("refuses a half-set key, a key with a bearer token, and a secret the signer cannot use, without showing it", async () => {
    const key = ed25519Key();
    await assert.rejects(
      facilitatorAuthFromEnv({ CDP_API_KEY_ID: KEY_ID }),
      /needs both CDP_API_KEY_ID_FILE \(or CDP_API_KEY_ID\) and CDP_API_KEY_SECRET_FILE \(or CDP_API_KEY_SECRET\); CDP_API_KEY_SECRET_FILE \(or CDP_API_KEY_SECRET\) is not set/,
    );
    await assert.rejects(
      facilitatorAuthFromEnv({ CDP_API_KEY_SECRET: key.secret }),
      /CDP_API_KEY_ID_FILE \(or CDP_API_KEY_ID\) is not set/,
    );
    await assert.rejects(
      facilitatorAuthFromEnv({
        CDP_API_KEY_ID: KEY_ID,
        CDP_API_KEY_SECRET: key.secret,
        FACILITATOR_TOKEN: "tok",
      }),
      /FACILITATOR_TOKEN_FILE \(or FACILITATOR_TOKEN\) and a CDP API key are both set/,
    );
    const sec1 = crypto
      .generateKeyPairSync("ec", { namedCurve: "P-256" })
      .privateKey.export({ format: "pem", type: "sec1" })
      .toString();
    for (const bad of ["not-a-key", key.secret.slice(4), sec1]) {
      assert.equal(isCdpApiKeySecret(bad), false);
      await assert.rejects(
        facilitatorAuthFromEnv({ CDP_API_KEY_ID: KEY_ID, CDP_API_KEY_SECRET: bad }),
        (err: Error) => {
          assert.match(
            err.message,
            /CDP_API_KEY_SECRET is not a CDP API key secret: .*the value is not shown/,
          );
          assert.ok(
            !err.message.includes(bad.length > 30 ? bad.slice(10, 30) : bad),
            "the value is not in the message",
          );
          return true;
        },
      );
    }
  });

  it("leaves the bearer token and no authentication as they were", async () => {
    assert.deepEqual(await facilitatorAuthFromEnv({}), {});
    const auth = await facilitatorAuthFromEnv({ FACILITATOR_TOKEN: "tok.en" });
    assert.ok("createAuthHeaders" in auth);
    assert.deepEqual((await auth.createAuthHeaders()).settle, { Authorization: "Bearer tok.en" });
  });
});
