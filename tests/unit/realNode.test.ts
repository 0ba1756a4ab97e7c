import * as assert from "node:assert/strict";
import { listeningUnixPaths, netnsOfPeers, splitRule } from "../harness/nodeHost";
import { normalizeRef } from "../harness/realCluster";

describe("real node harness helpers", () => {
  it("names images the way containerd lists them", () => {
    assert.equal(normalizeRef("obol-test/pause:3.10-abc"), "docker.io/obol-test/pause:3.10-abc");
    assert.equal(normalizeRef("node:22.23.3-bookworm-slim"), "docker.io/library/node:22.23.3-bookworm-slim");
    assert.equal(
      normalizeRef("gcr.io/distroless/nodejs22-debian12:nonroot"),
      "gcr.io/distroless/nodejs22-debian12:nonroot",
    );
    assert.equal(normalizeRef("localhost:5000/x"), "localhost:5000/x:latest");
    assert.equal(normalizeRef("busybox"), "docker.io/library/busybox:latest");
  });

  it("replays `iptables -S` rules as arguments, keeping quoted comments whole", () => {
    assert.deepEqual(
      splitRule('FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD'),
      ["FORWARD", "-m", "comment", "--comment", "kubernetes forwarding rules", "-j", "KUBE-FORWARD"],
    );
    assert.deepEqual(splitRule("OUTPUT -d 10.96.0.0/16 -j REJECT"), [
      "OUTPUT",
      "-d",
      "10.96.0.0/16",
      "-j",
      "REJECT",
    ]);
  });

  it("finds the pods' network namespaces from the pod bridge's veths, and no other", () => {
    // `ip -j link show master <bridge>` and `ip -j netns list` as iproute2 prints them: the
    // bridge's veths name their peers' namespace ids; another runtime's namespace (id 9) and
    // one with no id yet are not the bridge's.
    const links = [{ link_netnsid: 3 }, { link_netnsid: 0 }, {}];
    const namespaces = [
      { name: "cni-a", id: 0 },
      { name: "cni-b", id: 3 },
      { name: "cni-other", id: 9 },
      { name: "cni-noid" },
    ];
    assert.deepEqual(netnsOfPeers(links, namespaces).sort(), ["cni-a", "cni-b"]);
    assert.deepEqual(netnsOfPeers([], namespaces), []);
  });

  it("tells a unix socket something listens on from one only bound, or a file left behind", () => {
    // /proc/net/unix as Linux prints it: flag 00010000 marks a listening socket.
    const table = [
      "Num       RefCount Protocol Flags    Type St Inode Path",
      "00000000dbe972e3: 00000002 00000000 00010000 0001 01 2108667 /var/lib/kubelet/device-plugins/kubelet.sock",
      "00000000dbe972e4: 00000002 00000000 00000000 0001 01 2108668 /tmp/bound-only.sock",
      "00000000dbe972e5: 00000003 00000000 00000000 0001 03 2105914",
      "00000000dbe972e6: 00000002 00000000 00010000 0001 01 2108669 /tmp/with space.sock",
    ].join("\n");
    assert.deepEqual([...listeningUnixPaths(table)].sort(), [
      "/tmp/with space.sock",
      "/var/lib/kubelet/device-plugins/kubelet.sock",
    ]);
    assert.equal(listeningUnixPaths(table.split("\n").slice(0, 1).join("\n")).size, 0);
  });
});
