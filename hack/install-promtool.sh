#!/usr/bin/env bash
# Makes sure promtool is there for the metrics and alerting-rule checks
# (tests/integration/test_metrics_promtool.py, tests/unit/test_monitoring_overlay.py).
# PROMTOOL overrides the path. Idempotent: an existing promtool is only printed. As root
# with apt-get, a missing promtool is installed from Debian's `prometheus` package
# (which ships it); otherwise the script says what to install and fails.
set -euo pipefail
found="${PROMTOOL:-$(command -v promtool || true)}"
if [ -n "$found" ] && [ -x "$found" ]; then
  echo "$found"
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's prometheus package for promtool..." >&2
  apt-get update -qq >&2
  # --no-install-recommends: promtool is all we need, not the server's web assets.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >&2
  command -v promtool
  exit 0
fi
echo "promtool is missing: install Debian's 'prometheus' package (apt-get install prometheus)," \
     "or a Prometheus release's promtool, and put it on PATH or set PROMTOOL=/path/to/promtool" >&2
exit 1
