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
PROG=build-envtest
# shellcheck source=hack/lib-go-build.sh
source "$(dirname "$0")/lib-go-build.sh"

echo "build-envtest: building kube-apiserver and kubectl ${K8S_VERSION} (a cold build takes several minutes)" >&2
build_kubernetes_commands kube-apiserver kubectl

echo "build-envtest: building etcd ${ETCD_VERSION}" >&2
# etcd's server module the same way, its sibling modules replaced to the same tag.
wrapper_module etcd "go.etcd.io/etcd/server/v3 ${ETCD_VERSION}" go.etcd.io/etcd/server/v3
( cd "$work/etcd"
  for m in go.etcd.io/etcd/api/v3 go.etcd.io/etcd/client/pkg/v3 go.etcd.io/etcd/client/v3 go.etcd.io/etcd/pkg/v3; do
    go mod edit -replace "$m=$m@${ETCD_VERSION}"
  done
  go_with_sumdb_fallback go mod tidy
  go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
)

# Rename last, so an interrupted build never leaves a half-written binary in the cache.
for b in kube-apiserver kubectl etcd; do mv -f "$out/$b.tmp" "$out/$b"; done
echo "$out"
