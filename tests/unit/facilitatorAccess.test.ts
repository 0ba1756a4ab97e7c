import * as assert from "node:assert/strict";
import {
  facilitatorAuthHeaders,
  presentsToken,
  validAccessToken,
} from "../../controller/shared/facilitatorAccess";

const TOKEN = "3f9a0c1d2e4b5a6978c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2";

describe("the facilitator's access token (bearer, RFC 6750)", () => {
  it("accepts exactly the token, with the scheme in any case and spaces around", () => {
    assert.equal(presentsToken(`Bearer ${TOKEN}`, TOKEN), true);
    assert.equal(presentsToken(`bearer ${TOKEN}`, TOKEN), true);
    assert.equal(presentsToken(`BEARER   ${TOKEN} `, TOKEN), true);
  });

  it("refuses no header, another scheme, another token, a prefix or an extension of it", () => {
    for (const header of [
      undefined,
      "",
      TOKEN,
      `Basic ${TOKEN}`,
      `Bearer`,
      `Bearer `,
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Bearer ${TOKEN}0`,
      `Bearer ${TOKEN.toUpperCase()}`,
      `Bearer ${TOKEN} ${TOKEN}`,
      `Bearer ${TOKEN},Bearer ${TOKEN}`,
      `Bearer\t${TOKEN}`,
      `xBearer ${TOKEN}`,
    ])
      assert.equal(presentsToken(header, TOKEN), false, JSON.stringify(header));
  });

  it("the client sends it on every path the facilitator client calls", async () => {
    const headers = await facilitatorAuthHeaders(TOKEN)();
    for (const path of ["verify", "settle", "supported"] as const) {
      assert.deepEqual(headers[path], { Authorization: `Bearer ${TOKEN}` });
      assert.equal(presentsToken(headers[path].Authorization, TOKEN), true);
    }
  });

  it("a token must be sendable as a bearer credential", () => {
    assert.equal(validAccessToken(TOKEN), true);
    assert.equal(validAccessToken("a.b-c_d~e+f/g=="), true);
    for (const bad of ["", " ", "two words", 'quote"d', "semi;colon", "new\nline", "=leading"])
      assert.equal(validAccessToken(bad), false, JSON.stringify(bad));
  });
});
