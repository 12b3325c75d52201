#!/usr/bin/env bash
# Builds the Kubernetes the tests run against, from the Go module proxy:
#   target/kube/bin/kube-plane   etcd, kube-apiserver, kube-controller-manager, kubectl,
#                                kube-scheduler, kube-proxy and kubelet in one binary (main.go),
#                                with symlinks under those names
#   target/kube/bin/helm         helm v4 (go install of its released module)
# and with `build.sh node`, what the real node (cluster.sh) needs beside them:
#   target/kube/bin/coredns      CoreDNS with the plugins its Corefile uses (coredns/)
#   target/kube/bin/traefik      the Ingress controller (traefik/)
# The first build takes several minutes (about 8 on 2 cores, plus the module download); Go's module
# and build caches make the next ones take seconds. Prints the bin directory on stdout.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${LLM_MCP_HUB_KUBE_BIN:-$ROOT/target/kube/bin}"
HELM_VERSION="v4.3.2"

log() { printf '== %s\n' "$*" >&2; }

command -v go >/dev/null || { echo "tests/kube/build.sh: the Go toolchain (go 1.25 or newer) is needed" >&2; exit 1; }
mkdir -p "$BIN"

# The version the binaries report (helm checks the chart's kubeVersion against it) is the one of
# the k8s.io/kubernetes module this builds.
kver="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$HERE/go.mod")"
[[ "$kver" =~ ^v1\.([0-9]+)\. ]] || { echo "tests/kube/build.sh: no k8s.io/kubernetes version in go.mod" >&2; exit 1; }
minor="${BASH_REMATCH[1]}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$kver -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
done

# `go install` relinks only when a dependency or a flag changed; it refuses to replace a file
# that is not a Go binary (a broken earlier build).
if [ -e "$BIN/kube-plane" ] && ! go version "$BIN/kube-plane" 2>&1 | grep -q ": go1"; then
  rm -f "$BIN/kube-plane"
fi
log "kube-plane $kver (go install; cached after the first build)"
(cd "$HERE" && GOBIN="$BIN" GOFLAGS=-mod=readonly nice -n 10 go install -trimpath -ldflags="$ldflags" .)
for name in etcd kube-apiserver kube-controller-manager kubectl kube-scheduler kube-proxy kubelet; do
  ln -sf kube-plane "$BIN/$name"
done

if [ "$("$BIN/helm" version --template '{{.Version}}' 2>/dev/null)" != "$HELM_VERSION" ]; then
  log "helm $HELM_VERSION (go install)"
  GOBIN="$BIN" nice -n 10 go install -trimpath \
    -ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
fi
if [ "${1:-}" = node ]; then
  # Each is its own module (its own dependency versions); `go build` relinks only when needed.
  log "coredns (go build of tests/kube/coredns; cached after the first build)"
  (cd "$HERE/coredns" && GOFLAGS=-mod=readonly nice -n 10 go build -trimpath -ldflags="-s -w" -o "$BIN/coredns" .)
  log "traefik (go build of the tool in tests/kube/traefik; cached after the first build)"
  (cd "$HERE/traefik" && GOFLAGS=-mod=readonly nice -n 10 go build -trimpath -ldflags="-s -w" -o "$BIN/traefik" github.com/traefik/traefik/v3/cmd/traefik)
fi
echo "$BIN"
