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
PROG=build-kube-controller-manager
# shellcheck source=hack/lib-go-build.sh
source "$(dirname "$0")/lib-go-build.sh"

echo "build-kube-controller-manager: building kube-controller-manager ${K8S_VERSION} (a cold build takes several minutes)" >&2
build_kubernetes_commands kube-controller-manager

# Rename last, so an interrupted build never leaves a half-written binary in the cache.
mv -f "$out/kube-controller-manager.tmp" "$out/kube-controller-manager"
echo "$out/kube-controller-manager"
