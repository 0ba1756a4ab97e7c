#!/usr/bin/env bash
# package-lock.json is installed by two npms: the developer's (any version) and the runtime
# image's (`npm ci` in controller/Dockerfile, the npm bundled with the pinned Node.js). A newer npm
# writes locks without optional peer entries that the older one requires, and the image build
# then fails minutes into the tests. So the lock is checked, and written, with the image's npm:
#
#   scripts/lockfile.sh check              does the image's npm accept the lock? (part of `npm run lint`)
#   scripts/lockfile.sh write [pkg@ver…]   rewrite the lock with it (after editing package.json, or
#                                          to add or change dependencies)
set -euo pipefail
# shellcheck source=toolchain/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/toolchain/lib.sh"
node="$(node_dir)/node"
npm_js="$(npm_cli)"
if [ ! -x "$node" ] || [ ! -f "$npm_js" ]; then
  echo "lockfile: npm $NPM_VERSION (the runtime image's) is not installed yet: run \`npm run tools\`" >&2
  exit 1
fi
npm10() { "$node" "$npm_js" --no-audit --no-fund --ignore-scripts "$@"; }

case "${1:-check}" in
  check)
    # In an empty directory: with no node_modules, `ci --dry-run` only reads the lock against
    # package.json, as the image's `npm ci` does before installing.
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    cp "$REPO_ROOT/package.json" "$REPO_ROOT/package-lock.json" "$scratch/"
    if ! out=$(cd "$scratch" && npm10 ci --dry-run 2>&1); then
      echo "lockfile: package-lock.json is not accepted by npm $NPM_VERSION, the runtime image's npm:" >&2
      echo "$out" | grep -E '^npm error' | grep -v -E 'npm error (Clean install|$|aliases|Run "npm help|A complete log|Usage|npm ci|Options|\[)' | awk '!seen[$0]++' | head -8 >&2
      echo "lockfile: rewrite it with that npm: scripts/lockfile.sh write" >&2
      exit 1
    fi
    echo "lockfile: package-lock.json is accepted by npm $NPM_VERSION"
    ;;
  write)
    shift
    cd "$REPO_ROOT"
    npm10 install --package-lock-only "$@"
    echo "lockfile: package-lock.json written by npm $NPM_VERSION; run \`npm ci --ignore-scripts\` to install it"
    ;;
  *)
    echo "usage: scripts/lockfile.sh check | write [pkg@version ...]" >&2
    exit 2
    ;;
esac
