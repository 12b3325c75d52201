#!/usr/bin/env bash
# Starts and stops a Kubernetes control plane on 127.0.0.1 for the tests: etcd, kube-apiserver
# (RBAC, ServiceAccount tokens) and kube-controller-manager (garbage collector, namespaces,
# ServiceAccounts and their tokens). No kubelet and no scheduler: pods never run.
#
#   tests/kube/plane.sh up [DIR]    start it, state and logs in DIR (default: a new temp dir);
#                                   prints `export KUBECONFIG=DIR/admin.kubeconfig`
#   tests/kube/plane.sh down DIR    stop it and remove DIR
#
# For a real node (cluster.sh), PLANE_ADDRESS=<the node's bridge address> makes the API server
# bind and advertise that address (pods reach it as the `kubernetes` Service), with the default
# endpoint reconciler, every controller, and the certificates and kubeconfigs of the node's parts
# (kubelet, kube-scheduler, kube-proxy, and the API server's client certificate for the kubelet).
#
# The binaries come from tests/kube/build.sh (LLM_MCP_HUB_KUBE_BIN, default target/kube/bin).
# Everything listens on free loopback ports; DIR holds the CA, the serving and client
# certificates, the ServiceAccount signing key, etcd's data, the logs and the process ids.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${LLM_MCP_HUB_KUBE_BIN:-$ROOT/target/kube/bin}"

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'plane.sh: %s\n' "$*" >&2; exit 1; }

# shellcheck source=lib.sh
. "$HERE/lib.sh"

# openssl: a key and a certificate signed by the CA. $1 name, $2 subject, $3 extensions.
cert() {
  local name="$1" subj="$2" ext="$3"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$D/$name.key" -subj "$subj" -out "$D/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$D/$name.ext"
  openssl x509 -req -in "$D/$name.csr" -CA "$D/ca.crt" -CAkey "$D/ca.key" -CAcreateserial -days 2 \
    -extfile "$D/$name.ext" -out "$D/$name.crt" 2>/dev/null
  rm -f "$D/$name.csr" "$D/$name.ext"
}

kubeconfig() { # $1 file, $2 client cert name
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: plane
  cluster:
    server: https://$ADDR:$API_PORT
    certificate-authority: $D/ca.crt
users:
- name: $2
  user:
    client-certificate: $D/$2.crt
    client-key: $D/$2.key
contexts:
- name: plane
  context: {cluster: plane, user: $2}
current-context: plane
EOF
}

# A part of the plane, run in the background: its output in DIR/NAME.log, its pid in DIR/pids.
start() { local name="$1"; shift; start_part "$D/pids" "$name" "$BIN/$name" "$@"; }
wait_for() { wait_part "$D/pids" "$@"; } # what, seconds, command...

up() {
  D="${1:-$(mktemp -d "${TMPDIR:-/tmp}/kube-plane.XXXXXX")}"
  mkdir -p "$D"
  D="$(cd "$D" && pwd)"
  : >"$D/pids"
  # If it does not come up, stop what did start (the logs stay in DIR).
  trap '[ $? -eq 0 ] || stop_processes' EXIT
  for b in etcd kube-apiserver kube-controller-manager kubectl; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: run tests/kube/build.sh"
  done
  command -v openssl >/dev/null || die "openssl is needed"
  local t0=$SECONDS
  ADDR="${PLANE_ADDRESS:-127.0.0.1}"
  local node=""; [ "$ADDR" = 127.0.0.1 ] || node=1

  # Certificates: a CA, the API server's serving certificate, an admin (system:masters) and the
  # controller-manager's client certificates, and the ServiceAccount token signing key.
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$D/ca.key" -subj "/CN=kube-plane-ca" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$D/ca.crt" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" "$(printf '%s\n' \
    "subjectAltName=IP:127.0.0.1,IP:$ADDR,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
    "extendedKeyUsage=serverAuth" "keyUsage=critical,digitalSignature,keyEncipherment")"
  cert admin "/O=system:masters/CN=kube-plane-admin" "extendedKeyUsage=clientAuth"
  cert controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
  if [ -n "$node" ]; then
    cert kubelet "/O=system:nodes/CN=system:node:${PLANE_NODE_NAME:-llm-mcp-hub-node}" "extendedKeyUsage=clientAuth"
    cert kubelet-serving "/CN=${PLANE_NODE_NAME:-llm-mcp-hub-node}" "$(printf '%s\n' \
      "subjectAltName=IP:$ADDR,DNS:${PLANE_NODE_NAME:-llm-mcp-hub-node}" "extendedKeyUsage=serverAuth" \
      "keyUsage=critical,digitalSignature,keyEncipherment")"
    cert scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
    cert kube-proxy "/CN=system:kube-proxy" "extendedKeyUsage=clientAuth"
    # The API server's identity towards the kubelet (logs, exec): bound to system:kubelet-api-admin below.
    cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
  fi
  openssl genrsa -out "$D/sa.key" 2048 2>/dev/null
  openssl rsa -in "$D/sa.key" -pubout -out "$D/sa.pub" 2>/dev/null

  local etcd_port peer_port
  etcd_port="$(free_port)"; peer_port="$(free_port)"; API_PORT="${PLANE_API_PORT:-$(free_port)}"
  local kcm_port; kcm_port="$(free_port)"
  local node_args=(--endpoint-reconciler-type none)
  local controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller
  if [ -n "$node" ]; then
    node_args=(--kubelet-client-certificate "$D/apiserver-kubelet-client.crt"
      --kubelet-client-key "$D/apiserver-kubelet-client.key" --kubelet-certificate-authority "$D/ca.crt"
      --kubelet-preferred-address-types InternalIP --allow-privileged=false)
    controllers='*'
  fi

  start etcd --name plane --data-dir "$D/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "plane=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --log-level warn
  wait_for "etcd" 30 curl -fsS "http://127.0.0.1:$etcd_port/health"

  start kube-apiserver \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$ADDR" --advertise-address "$ADDR" --secure-port "$API_PORT" \
    --tls-cert-file "$D/apiserver.crt" --tls-private-key-file "$D/apiserver.key" \
    --client-ca-file "$D/ca.crt" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$D/sa.pub" --service-account-signing-key-file "$D/sa.key" \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.96.0.0/16 \
    "${node_args[@]}" \
    --cert-dir "$D/apiserver-certs"
  kubeconfig "$D/admin.kubeconfig" admin
  kubeconfig "$D/controller-manager.kubeconfig" controller-manager
  if [ -n "$node" ]; then
    for part in kubelet scheduler kube-proxy; do kubeconfig "$D/$part.kubeconfig" "$part"; done
  fi
  wait_for "kube-apiserver /readyz" 90 "$BIN/kubectl" --kubeconfig "$D/admin.kubeconfig" get --raw /readyz

  start kube-controller-manager \
    --kubeconfig "$D/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$D/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$D/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --cert-dir "$D/controller-manager-certs" \
    --leader-elect=false \
    --use-service-account-credentials \
    --service-account-private-key-file "$D/sa.key" --root-ca-file "$D/ca.crt" \
    --cluster-signing-cert-file "$D/ca.crt" --cluster-signing-key-file "$D/ca.key" \
    --controllers "$controllers"
  wait_for "kube-controller-manager /healthz" 60 curl -fsSk "https://127.0.0.1:$kcm_port/healthz"
  # The controller-manager is ready once it has made the default namespace's ServiceAccount.
  wait_for "ServiceAccount default/default" 60 "$BIN/kubectl" --kubeconfig "$D/admin.kubeconfig" -n default get serviceaccount default

  if [ -n "$node" ]; then
    "$BIN/kubectl" --kubeconfig "$D/admin.kubeconfig" create clusterrolebinding kube-apiserver-kubelet-client \
      --clusterrole system:kubelet-api-admin --user kube-apiserver-kubelet-client >/dev/null
  fi
  log "control plane up in $((SECONDS - t0))s (API server https://$ADDR:$API_PORT, state in $D)"
  echo "export KUBECONFIG=$D/admin.kubeconfig KUBE_PLANE_API_PORT=$API_PORT"
}

# Controller-manager, API server, etcd: the reverse order of start.
stop_processes() { stop_parts "$D/pids"; }

down() {
  D="${1:?usage: plane.sh down DIR}"
  [ -f "$D/pids" ] || die "$D/pids: not a plane directory"
  stop_processes
  rm -rf "$D"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) shift; down "$@" ;;
  *) echo "usage: $0 up [DIR] | down DIR" >&2; exit 2 ;;
esac
