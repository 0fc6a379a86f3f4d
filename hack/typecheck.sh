#!/usr/bin/env bash
# mypy --strict over the project's packages. The folders are named for what they hold
# (operator/, sidecar/, ...) while the import names are agentops_operator, ...; mypy
# cannot follow setuptools' editable-install mapping, so present the folders under
# their import names through symlinks in a temporary directory.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
mypy="${MYPY:-$repo/.venv/bin/mypy}"
tree="$(mktemp -d)"
trap 'rm -rf "$tree"' EXIT
packages=()
for pair in agentops:agentops operator:agentops_operator sidecar:agentops_sidecar agents:agentops_agents ui:agentops_ui; do
  folder="${pair%%:*}" name="${pair##*:}"
  ln -s "$repo/$folder" "$tree/$name"
  packages+=(-p "$name")
done
cd "$tree"
exec "$mypy" --config-file "$repo/pyproject.toml" --cache-dir "$repo/.mypy_cache" "${packages[@]}"
