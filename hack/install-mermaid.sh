#!/usr/bin/env bash
# Installs mermaid-cli (mmdc), which renders the diagrams/ sources the way the README's
# Mermaid blocks are rendered, into a cache outside the repository, and prints the path
# of mmdc. It drives Debian's Chromium (hack/install-browser.sh), so puppeteer's own
# browser download is skipped. Needs Node.js with npm. MMDC overrides the path.
set -euo pipefail
if [ -n "${MMDC:-}" ]; then
  echo "$MMDC"
  exit 0
fi
version="11.17.0"  # the 11.x line renders with the Chromium Debian ships today
cache_root="${AGENTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentops}"
dir="$cache_root/mermaid-cli-$version"
mmdc="$dir/node_modules/.bin/mmdc"
if [ -x "$mmdc" ]; then
  echo "$mmdc"
  exit 0
fi
command -v npm >/dev/null || { echo "install-mermaid: npm (Node.js) is needed to install mermaid-cli" >&2; exit 1; }
echo "install-mermaid: installing @mermaid-js/mermaid-cli@$version (once)..." >&2
work="$(mktemp -d "$cache_root/mermaid.XXXXXX")"
trap 'rm -rf "$work"' EXIT
PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix "$work" --no-audit --no-fund --loglevel=error \
  "@mermaid-js/mermaid-cli@$version" >&2
rm -rf "$dir"
mv "$work" "$dir"
trap - EXIT
echo "$mmdc"
