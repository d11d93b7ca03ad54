#!/usr/bin/env bash
# Check the built docs site (_docs/, from `make docs`) in headless Chromium: every page opened, none with a console
# or page error, a failed local file, a broken image or unrendered maths; a screenshot of the home page saved to
# output/docs_home.png. `make docs-check` builds the site first.
#
#   bash tools/docs_check.sh [extra options of tools/docs_check.mjs, e.g. --all-screenshots output/docs_pages]
# Installs what it needs first (tools/browser/setup.sh: Debian chromium, npm ci for playwright-core).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${VENV:-.venv}/bin/python"
[ -x "$PY" ] || PY=python3
if [ ! -d _docs ]; then
  echo "docs_check: no _docs/: run 'make docs' (or bash tools/build_docs.sh) first" >&2
  exit 2
fi
bash tools/browser/setup.sh
exec node tools/docs_check.mjs --site _docs --screenshot output/docs_home.png --python "$PY" "$@"
