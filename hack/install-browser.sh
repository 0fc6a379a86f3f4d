#!/usr/bin/env bash
# Makes sure Debian's Chromium is there for the browser tests (Playwright drives it
# through executable_path; Playwright's own browser download is never used).
# CHROMIUM overrides the path. As root with apt-get, a missing Chromium is installed;
# otherwise the script says what to install and fails.
set -euo pipefail
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ -x "$chromium" ]; then
  echo "$chromium"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the browser tests..." >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  echo "$chromium"
  exit 0
fi
echo "the browser tests need Chromium at $chromium: install Debian's 'chromium' package (or set CHROMIUM=/path/to/chromium)" >&2
exit 1
