#!/usr/bin/env bash
# The Kubernetes part of the test suite: builds the control plane (build.sh), starts it on
# 127.0.0.1 (plane.sh), runs checks.sh (CRDs, examples, CEL rules, helm, operator processes,
# RBAC), the operator's e2e_cluster tests and the router's Kubernetes discovery (tests/e2e
# contract.rs) against it, and stops it, also on failure or Ctrl-C.
# Needs go (1.25 or newer), openssl, curl, python3 and cargo.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

t0=$SECONDS
BIN="$("$HERE/build.sh")"
echo "== control plane binaries ready in $((SECONDS - t0))s"
export PATH="$BIN:$PATH"

STATE="$(mktemp -d "${TMPDIR:-/tmp}/kube-run.XXXXXX")"
stop() {
  "$HERE/plane.sh" down "$STATE/plane" || true
  rm -rf "$STATE"
}
trap stop EXIT
trap 'exit 130' INT TERM
# kubectl's discovery cache and helm's state stay in the run's own directory.
export KUBECACHEDIR="$STATE/kubectl-cache" HELM_CACHE_HOME="$STATE/helm/cache" \
  HELM_CONFIG_HOME="$STATE/helm/config" HELM_DATA_HOME="$STATE/helm/data"

env_line="$("$HERE/plane.sh" up "$STATE/plane")"
eval "$env_line"

# The operator (checks.sh runs it as processes) and the hub binary (the router discovery test).
cargo build --quiet -p llm-mcp-hub-operator -p llm-mcp-hub --bins
export LLM_MCP_HUB_OPERATOR_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/llm-mcp-hub-operator"

rc=0
t2=$SECONDS
"$HERE/checks.sh" || rc=1
echo "== checks.sh took $((SECONDS - t2))s"

# e2e_cluster runs its controllers with the token of the chart's operator ServiceAccount.
t3=$SECONDS
# Cluster-wide: the tests make their own namespaces.
helm install e2e charts/llm-mcp-hub --namespace llm-mcp-hub-e2e --create-namespace \
  --set operator.watchAllNamespaces=true >/dev/null
LLM_MCP_HUB_E2E_CLUSTER=1 LLM_MCP_HUB_E2E_OPERATOR_SA=llm-mcp-hub-e2e/e2e-operator \
  cargo test -p llm-mcp-hub-operator --test e2e_cluster -- --nocapture || rc=1
echo "== e2e_cluster took $((SECONDS - t3))s"

# The router, started exactly as the operator deploys it, discovers workers through this API
# server (its EndpointSlices), acting as its ServiceAccount. Needs root for a veth pair: the API
# server refuses loopback endpoint addresses.
t4=$SECONDS
LLM_MCP_HUB_E2E_KUBE=1 cargo test -p e2e --test contract -- --nocapture || rc=1
echo "== router discovery took $((SECONDS - t4))s; the Kubernetes part $((SECONDS - t0))s in all"
exit "$rc"
