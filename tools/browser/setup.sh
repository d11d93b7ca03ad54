#!/usr/bin/env bash
# Install what decomp's browser tools need, only what is missing:
#   - Node.js >= 20 and npm (Debian packages `nodejs npm` when absent);
#   - tools/browser/node_modules (playwright-core, katex) with `npm ci` from package-lock.json;
#   - Debian's Chromium at /usr/bin/chromium (`apt-get install chromium`), unless --node-only.
#
#   bash tools/browser/setup.sh              # everything (docs-check, dashboards-check)
#   bash tools/browser/setup.sh --node-only  # node_modules only (make docs vendors KaTeX from it)
# Needs root (or sudo) only when a Debian package is missing. Never downloads a browser build of its own.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
NODE_ONLY=0
[ "${1:-}" = "--node-only" ] && NODE_ONLY=1

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else echo "browser/setup: need root to run: $*" >&2; return 1
  fi
}

APT_UPDATED=0
apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "browser/setup: installing nodejs and npm (Debian)"
  apt_install nodejs npm
fi
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$NODE_MAJOR" -lt 20 ]; then
  echo "browser/setup: Node.js $(node --version) is too old: playwright-core needs >= 20" >&2
  exit 1
fi

# npm ci only when node_modules is missing or older than package-lock.json (npm ci rewrites node_modules whole).
NM="$HERE/node_modules"
if [ ! -d "$NM/playwright-core" ] || [ ! -d "$NM/katex" ] || [ ! -f "$NM/.package-lock.json" ] \
   || [ "$HERE/package-lock.json" -nt "$NM/.package-lock.json" ]; then
  echo "browser/setup: npm ci in tools/browser"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi

if [ "$NODE_ONLY" = 0 ]; then
  CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
  if [ ! -x "$CHROMIUM" ]; then
    echo "browser/setup: installing chromium (Debian)"
    apt_install chromium fonts-liberation
  fi
  if [ ! -x "$CHROMIUM" ]; then
    echo "browser/setup: $CHROMIUM still missing after apt-get install chromium" >&2
    exit 1
  fi
fi
