# Shared by hack/build-envtest.sh and hack/build-kube-controller-manager.sh (sourced, not
# run): how this project builds Kubernetes and etcd commands from Go modules.
#
# Kubernetes publishes its staging repositories (k8s.io/api, apimachinery, ...) as
# separate modules and refers to them as `v0.0.0` plus a local `replace`; replace lines
# are ignored in a dependency, so a wrapper module repeats them, pointing each at the
# matching published v0.Y.Z tag (the list is read off that release's own go.mod).
#
# The caller sets: PROG (name for messages), K8S_VERSION, K8S_GO_LINE (the wrapper's
# `go` line: what Kubernetes itself declares for this release), out (the cache
# directory) and work (a scratch directory it removes).

export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0

# Run `go` and, if only the checksum database is unreachable, say so and retry once
# with it turned off for this build (module hashes still come from go.sum in the cache).
go_with_sumdb_fallback() {
  local log="$work/go.log"
  if "$@" >"$log" 2>&1; then cat "$log" >&2; return 0; fi
  if grep -Eq 'verifying .*(dial tcp|no such host|connection refused|i/o timeout|TLS handshake|403|410|server misbehaving)' "$log"; then
    echo "$PROG: the Go checksum database cannot be reached; building with GOSUMDB=off for this build only" >&2
    GOSUMDB=off "$@" >&2
  else
    cat "$log" >&2
    return 1
  fi
}

# A wrapper module in $work/$1 importing each package given after it (as tools.go).
wrapper_module() {
  local dir="$work/$1" module="$1" require="$2"; shift 2
  mkdir -p "$dir"
  printf 'module agentops.dev/%s\n\ngo %s\n\nrequire %s\n' "$module" "$K8S_GO_LINE" "$require" > "$dir/go.mod"
  { printf '//go:build tools\n\npackage tools\n\nimport (\n'
    printf '\t_ "%s"\n' "$@"
    printf ')\n'; } > "$dir/tools.go"
}

# Build each k8s.io/kubernetes/cmd/NAME given into "$out/NAME.tmp"; the caller renames
# them when all are built, so an interrupted build never leaves a half-written binary.
build_kubernetes_commands() {
  local minor="${K8S_VERSION#v1.}" pkg m cmd
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=${K8S_VERSION} -X $pkg.gitMajor=1 -X $pkg.gitMinor=${minor%%.*}"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  wrapper_module "k8s-$1" "k8s.io/kubernetes ${K8S_VERSION}" "${@/#/k8s.io/kubernetes/cmd/}"
  ( cd "$work/k8s-$1"
    go_with_sumdb_fallback go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" >/dev/null
    local modfile staging
    modfile="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    staging="$(awk '$2 == "v0.0.0" && $1 ~ /^k8s\.io\// {print $1}' "$modfile" | sort -u)"
    [[ -n "$staging" ]] || { echo "$PROG: no staging modules found in $modfile" >&2; exit 1; }
    for m in $staging; do
      go mod edit -replace "$m=$m@v0.${minor}"
    done
    go_with_sumdb_fallback go mod tidy
    for cmd in "$@"; do
      go build -trimpath -ldflags "$ldflags" -o "$out/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd"
    done
  )
}
