#!/usr/bin/env bash
# Build a real etcd, kube-apiserver and kubectl from Go modules, once, into a cache
# outside the repository, and print the directory (usable as KUBEBUILDER_ASSETS).
#
# Why build instead of download: the only sources reachable from CI are package
# registries, and the Go module proxy carries Kubernetes and etcd as modules.
#
# Kubernetes publishes its staging repositories (k8s.io/api, apimachinery, ...) as
# separate modules and refers to them as `v0.0.0` plus a local `replace`; replace lines
# are ignored in a dependency, so the wrapper module below repeats them, pointing
# each at the matching published v0.Y.Z tag. etcd's server module is built the same way
# in a wrapper of its own (its sibling modules are replaced to the same tag).
#
# The cache key is the pinned versions: change a pin and the next run rebuilds.
set -euo pipefail

K8S_VERSION="${AGENTOPS_K8S_VERSION:-v1.34.4}"
ETCD_VERSION="${AGENTOPS_ETCD_VERSION:-v3.6.8}"
# The wrapper's `go` line follows what Kubernetes itself declares for this release.
K8S_GO_LINE="1.24.0"

cache_root="${AGENTOPS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/agentops}"
out="$cache_root/envtest/k8s-${K8S_VERSION}-etcd-${ETCD_VERSION}"

have_all() { [[ -x "$out/etcd" && -x "$out/kube-apiserver" && -x "$out/kubectl" ]]; }
if have_all; then
  echo "$out"
  exit 0
fi

command -v go >/dev/null || { echo "build-envtest: Go is required to build the control plane (or set KUBEBUILDER_ASSETS)" >&2; exit 1; }

mkdir -p "$out"
work="$(mktemp -d "$cache_root/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0

# Run `go` and, if only the checksum database is unreachable, say so and retry once
# with it turned off for this build (module hashes still come from go.sum in the cache).
go_with_sumdb_fallback() {
  local log="$work/go.log"
  if "$@" >"$log" 2>&1; then cat "$log" >&2; return 0; fi
  if grep -Eq 'verifying .*(dial tcp|no such host|connection refused|i/o timeout|TLS handshake|403|410|server misbehaving)' "$log"; then
    echo "build-envtest: the Go checksum database cannot be reached; building with GOSUMDB=off for this build only" >&2
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

echo "build-envtest: building kube-apiserver and kubectl ${K8S_VERSION} (a cold build takes several minutes)" >&2
k8s="$work/k8s"
mkdir -p "$k8s"
# The list of staging modules is read off this release's own go.mod (every k8s.io/* v0.0.0 line).
( cd "$k8s"
  printf 'module agentops.dev/envtest-k8s\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n' "$K8S_GO_LINE" "$K8S_VERSION" > go.mod
  go_with_sumdb_fallback go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" >/dev/null
  modfile="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  staging="$(awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$modfile" | sort -u)"
  [[ -n "$staging" ]] || { echo "build-envtest: no staging modules found in $modfile" >&2; exit 1; }
  for m in $staging; do
    go mod edit -replace "$m=$m@${staging_version}"
  done
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  go_with_sumdb_fallback go mod tidy
  go build -trimpath -ldflags "$ldflags" -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  go build -trimpath -ldflags "$ldflags" -o "$out/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
)

echo "build-envtest: building etcd ${ETCD_VERSION}" >&2
etcd="$work/etcd"
mkdir -p "$etcd"
( cd "$etcd"
  printf 'module agentops.dev/envtest-etcd\n\ngo %s\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$K8S_GO_LINE" "$ETCD_VERSION" > go.mod
  for m in go.etcd.io/etcd/api/v3 go.etcd.io/etcd/client/pkg/v3 go.etcd.io/etcd/client/v3 go.etcd.io/etcd/pkg/v3; do
    go mod edit -replace "$m=$m@${ETCD_VERSION}"
  done
  cat > tools.go <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  go_with_sumdb_fallback go mod tidy
  go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
)

# Rename last, so an interrupted build never leaves a half-written binary in the cache.
for b in kube-apiserver kubectl etcd; do mv -f "$out/$b.tmp" "$out/$b"; done
echo "$out"
