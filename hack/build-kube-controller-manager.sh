#!/usr/bin/env bash
# Build a real kube-controller-manager from the same Go module as the envtest
# kube-apiserver (k8s.io/kubernetes at the same pin, same flags), once, into a cache of
# its own, and print the binary's path.
#
# Why a script and a cache of its own: the envtest cache (hack/build-envtest.sh) is
# keyed on etcd + kube-apiserver + kubectl, and KUBEBUILDER_ASSETS users bring only
# those three; adding a binary there would force everyone to rebuild. Only the
# kind-path test (tests/integration/test_kind_path.py) needs the controllers.
#
# The wrapper module is the same as build-envtest.sh's: require k8s.io/kubernetes and
# replace every staging module (read off that release's go.mod) with its v0.Y.Z tag.
# A warm Go module cache (after build-envtest.sh) makes this a compile only.
#
# KUBE_CONTROLLER_MANAGER=/path/to/kube-controller-manager uses a binary you already
# have (1.34, like the envtest kube-apiserver) and builds nothing.
set -euo pipefail

if [[ -n "${KUBE_CONTROLLER_MANAGER:-}" ]]; then
  [[ -x "$KUBE_CONTROLLER_MANAGER" ]] || { echo "build-kube-controller-manager: KUBE_CONTROLLER_MANAGER=$KUBE_CONTROLLER_MANAGER is not an executable" >&2; exit 1; }
  echo "$KUBE_CONTROLLER_MANAGER"
  exit 0
fi

K8S_VERSION="${AGENTOPS_K8S_VERSION:-v1.34.4}"
# The wrapper's `go` line follows what Kubernetes itself declares for this release.
K8S_GO_LINE="1.24.0"

cache_root="${AGENTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentops}"
out="$cache_root/kube-controller-manager/k8s-${K8S_VERSION}"

if [[ -x "$out/kube-controller-manager" ]]; then
  echo "$out/kube-controller-manager"
  exit 0
fi

command -v go >/dev/null || { echo "build-kube-controller-manager: Go is required to build kube-controller-manager" >&2; exit 1; }

mkdir -p "$out"
work="$(mktemp -d "$cache_root/build-kcm.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0

# Run `go` and, if only the checksum database is unreachable, say so and retry once
# with it turned off for this build (module hashes still come from go.sum in the cache).
go_with_sumdb_fallback() {
  local log="$work/go.log"
  if "$@" >"$log" 2>&1; then cat "$log" >&2; return 0; fi
  if grep -Eq 'verifying .*(dial tcp|no such host|connection refused|i/o timeout|TLS handshake|403|410|server misbehaving)' "$log"; then
    echo "build-kube-controller-manager: the Go checksum database cannot be reached; building with GOSUMDB=off for this build only" >&2
    GOSUMDB=off "$@" >&2
  else
    cat "$log" >&2
    return 1
  fi
}

minor="${K8S_VERSION#v1.}"
staging_version="v0.${minor}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

echo "build-kube-controller-manager: building kube-controller-manager ${K8S_VERSION} (a cold build takes several minutes)" >&2
( cd "$work"
  printf 'module agentops.dev/kcm\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n' "$K8S_GO_LINE" "$K8S_VERSION" > go.mod
  go_with_sumdb_fallback go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" >/dev/null
  modfile="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging="$(awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$modfile" | sort -u)"
  [[ -n "$staging" ]] || { echo "build-kube-controller-manager: no staging modules found in $modfile" >&2; exit 1; }
  for m in $staging; do
    go mod edit -replace "$m=$m@${staging_version}"
  done
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-controller-manager"
GO
  go_with_sumdb_fallback go mod tidy
  go build -trimpath -ldflags "$ldflags" -o "$out/kube-controller-manager.tmp" k8s.io/kubernetes/cmd/kube-controller-manager
)

# Rename last, so an interrupted build never leaves a half-written binary in the cache.
mv -f "$out/kube-controller-manager.tmp" "$out/kube-controller-manager"
echo "$out/kube-controller-manager"
