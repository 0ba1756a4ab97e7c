import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { DEFAULT_IMAGES } from "../../program/config/types";
import { liteLLMVersion, localTag } from "../harness/images";

const root = path.resolve(__dirname, "../..");

describe("test images", () => {
  it("the local base images carry exactly the names controller/Dockerfile's FROM lines use", () => {
    const froms = [
      ...fs.readFileSync(path.join(root, "controller/Dockerfile"), "utf8").matchAll(/^FROM\s+(\S+)/gm),
    ].map((m) => m[1]);
    assert.deepEqual(froms, [localTag("node", "x"), localTag("distroless", "x")]);
  });

  it("the LiteLLM image is the version the stack runs, and its requirements pin that version", () => {
    assert.ok(DEFAULT_IMAGES.litellm.includes(`v${liteLLMVersion()}`), DEFAULT_IMAGES.litellm);
    const requirements = fs.readFileSync(path.join(root, "tests/images/litellm/requirements.txt"), "utf8");
    assert.match(requirements, new RegExp(`^litellm==${liteLLMVersion().replaceAll(".", "\\.")}$`, "m"));
  });

  it("images built from inputs are tagged by their inputs' hash", () => {
    assert.notEqual(localTag("runtime", "aaaa"), localTag("runtime", "bbbb"));
    assert.notEqual(localTag("litellm", "aaaa"), localTag("litellm", "bbbb"));
  });
});
