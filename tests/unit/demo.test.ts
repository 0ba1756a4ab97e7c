import * as assert from "node:assert/strict";
import { type DemoHost, MissingPrerequisite, missingPrerequisite } from "../../scripts/demo/prerequisites";
import { parseDemoState } from "../../scripts/demo/state";

const ANVIL = "/repo/node_modules/.bin/anvil";
/** A host with everything but `without`. */
const host = (opts: { uid?: number; without?: string[] } = {}): DemoHost => ({
  uid: opts.uid ?? 0,
  has: (bin) => !(opts.without ?? []).includes(bin),
});

describe("npm run demo: prerequisites", () => {
  it("finds nothing missing on a ready host", () => {
    assert.equal(missingPrerequisite(host(), ANVIL), undefined);
  });

  it("names root first, with the command to run instead", () => {
    const problem = missingPrerequisite(host({ uid: 1000, without: ["dockerd", "kubelet"] }), ANVIL);
    assert.ok(problem instanceof MissingPrerequisite);
    assert.equal(problem.what, "not root");
    assert.match(problem.message, /sudo npm run demo/);
    assert.equal(missingPrerequisite({ uid: undefined, has: () => true }, ANVIL)?.what, "not root");
  });

  it("sends an unbuilt toolchain to `npm run tools`, naming the missing binaries", () => {
    const problem = missingPrerequisite(host({ without: ["pulumi", "kubelet", "dockerd"] }), ANVIL);
    assert.equal(problem?.what, "the pinned toolchain is not built (no pulumi, kubelet)");
    assert.match(problem?.fix ?? "", /npm run tools/);
  });

  it("sends missing npm dependencies to `npm ci`", () => {
    assert.match(missingPrerequisite(host({ without: [ANVIL] }), ANVIL)?.message ?? "", /no anvil.*npm ci/);
  });

  it("names each missing Debian package, with one apt-get line for all of them", () => {
    assert.equal(
      missingPrerequisite(host({ without: ["dockerd"] }), ANVIL)?.message,
      "no Docker engine (dockerd, docker, runc): apt-get install -y docker.io",
    );
    assert.equal(
      missingPrerequisite(host({ without: ["debootstrap"] }), ANVIL)?.message,
      "no debootstrap (the test images' Debian base): apt-get install -y debootstrap",
    );
    assert.equal(
      missingPrerequisite(host({ without: ["/usr/lib/cni/portmap"] }), ANVIL)?.message,
      "the CNI plugins are missing (/usr/lib/cni): apt-get install -y containernetworking-plugins",
    );
    const several = missingPrerequisite(
      host({ without: ["runc", "/usr/lib/cni/bridge", "iptables"] }),
      ANVIL,
    );
    assert.equal(several?.fix, "apt-get install -y docker.io containernetworking-plugins iptables");
    assert.ok(!several?.message.includes("\n"), "one line");
  });
});

describe("npm run demo: the state --down reads", () => {
  const kept = {
    pid: 41,
    runDir: "/repo/.tmp/run-41",
    clusterDir: "/repo/.tmp/run-41/real-cluster",
    kept: { pids: [50, 51], sysctls: { "net.ipv4.ip_forward": "0" } },
    anvilPid: 60,
    forwardPids: [70],
  };

  it("reads what a kept demo recorded", () => {
    assert.deepEqual(parseDemoState(JSON.stringify(kept)), kept);
    const { kept: _, anvilPid: __, forwardPids: ___, ...started } = kept;
    assert.deepEqual(parseDemoState(JSON.stringify(started)), started);
  });

  it("refuses a damaged file, naming it, the field and what to do", () => {
    assert.throws(
      () => parseDemoState(JSON.stringify({ ...kept, kept: { pids: ["x"], sysctls: {} } }), "/f.json"),
      /^Error: \/f\.json: kept\.pids\.0: .*delete it if no demo is running$/,
    );
    assert.throws(() => parseDemoState("{", "/f.json"), /\/f\.json is not JSON .*delete it/);
  });
});
