#!/usr/bin/env bash
# Rebuilds constraints.txt from scratch: a fresh virtualenv in a temporary directory,
# `pip install -e '.[test]'` with no constraints (so pip resolves pyproject.toml's
# ranges to today's newest releases), then `pip freeze` of the result. `make install`
# and the image's builder stage install with `-c constraints.txt`, so everyone gets
# these exact versions until this script runs again; review its diff like code.
#
#   make constraints            (or: bash hack/refresh-constraints.sh)
#
# PYTHON picks the interpreter (default python3). It must be Python 3.11, the image's
# version: pip resolves some packages differently per Python version.
# The project's own .venv is never touched; only constraints.txt is rewritten.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "$python is $("$python" -V 2>&1), not Python 3.11 (the image's): set PYTHON=python3.11" >&2
  exit 1
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check --upgrade pip
"$work/venv/bin/pip" install --quiet --disable-pip-version-check -e "$repo[test]"
{
  cat <<EOF
# Exact versions of every package the project installs: pyproject.toml's dependencies
# and its test extra, with everything they pull in. \`make install\` and the Dockerfile
# install with \`pip install -c constraints.txt\`, so every machine and the image get
# the same versions. Do not edit by hand; to move to newer releases run
#   make constraints        (hack/refresh-constraints.sh)
# which resolves from scratch in a fresh Python $("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') virtualenv and rewrites this file.
EOF
  "$work/venv/bin/pip" freeze --exclude-editable
} >"$work/constraints.txt"
mv "$work/constraints.txt" "$repo/constraints.txt"
echo "wrote $repo/constraints.txt ($(grep -c '==' "$repo/constraints.txt") pins)" >&2
