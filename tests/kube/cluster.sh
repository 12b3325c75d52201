#!/usr/bin/env bash
# Starts and stops a real single-node Kubernetes cluster on this machine for the node tests:
# the control plane of plane.sh bound to a bridge of its own, containerd (Debian's, a private
# socket and root), a kubelet, kube-scheduler, kube-proxy (nftables), CoreDNS and Traefik as the
# Ingress controller (host processes), the bridge CNI plugin with host-local addresses.
#
#   tests/kube/cluster.sh up DIR      start it, state and logs in DIR; prints the environment
#                                     (KUBECONFIG, the node's address, the ingress port) to eval
#   tests/kube/cluster.sh down DIR    stop it, remove DIR and everything it left on the machine
#   tests/kube/cluster.sh import DIR FILE...   import image archives (docker-archive) into the node
#   tests/kube/cluster.sh node-ip     the node's address (the bridge's), where pods reach the host
#
# Pods reach the bridge and the service range only: they get no default route, and an input
# filter on the bridge accepts only the API server, DNS and LLM_MCP_HUB_NODE_OPEN_PORTS (the
# fake model servers) on the host. `up` first cleans up after a run that was killed before its
# `down` (the last state dir is recorded in /run/llm-mcp-hub-kube-node). Needs root, the binaries
# of `build.sh node`, and containerd, runc, containernetworking-plugins, nftables, iptables and
# conntrack (Debian packages, installed when missing). What it runs and checks: docs/kubernetes.md
# ("On a real node").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
BIN="${LLM_MCP_HUB_KUBE_BIN:-$ROOT/target/kube/bin}"

BRIDGE=lmhbr0
NODE_IP=10.244.0.1
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
NODE_NAME=llm-mcp-hub-node
MARK=/run/llm-mcp-hub-kube-node
NFT_TABLE=llm_mcp_hub_node
# The sysctls the kubelet sets on its own; `down` puts back what they were.
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)
# Made by the kubelet and containerd even with private roots; `down` removes those it made.
LEFTOVER_DIRS=(/run/containerd /var/lib/cni /var/log/containers /var/log/pods /var/lib/kubelet)

log() { printf '== cluster: %s\n' "$*" >&2; }
die() { printf 'cluster.sh: %s\n' "$*" >&2; exit 1; }

# shellcheck source=lib.sh
. "$HERE/lib.sh"
# The node's parts, run in the background: output in DIR/NAME.log, pids in DIR/node-pids.
start() { start_part "$D/node-pids" "$@"; } # name, command...
wait_for() { wait_part "$D/node-pids" "$@"; } # what, seconds, command...

ensure_packages() {
  local need=()
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  command -v nft >/dev/null || need+=(nftables)
  command -v iptables >/dev/null || need+=(iptables)
  command -v conntrack >/dev/null || need+=(conntrack)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

network_up() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # Forwarding on the bridge only (the host's ip_forward stays as it is), and the service range
  # onto the bridge, so that a pod's packet to a ClusterIP comes back out of it after kube-proxy.
  sysctl -qw "net.ipv4.conf.$BRIDGE.forwarding=1"
  ip route add "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
  # Pods may reach the host only on the ports the tests need; everything else on this machine
  # that listens on the bridge address or on 0.0.0.0 stays out of their reach.
  local ports="$API_PORT,53${LLM_MCP_HUB_NODE_OPEN_PORTS:+,$LLM_MCP_HUB_NODE_OPEN_PORTS}"
  nft -f - <<EOF
table inet $NFT_TABLE {
  chain input {
    type filter hook input priority -10; policy accept;
    iifname "$BRIDGE" ct state established,related accept
    iifname "$BRIDGE" tcp dport { $ports } accept
    iifname "$BRIDGE" udp dport 53 accept
    iifname "$BRIDGE" drop
  }
}
EOF
}

containerd_up() {
  mkdir -p "$D/containerd" "$D/cni/net.d" "$D/cni/ipam"
  cat >"$D/containerd/config.toml" <<EOF
version = 2
root = "$D/containerd/root"
state = "$D/containerd/state"
[grpc]
  address = "$D/containerd/containerd.sock"
[ttrpc]
  address = "$D/containerd/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/llm-mcp-hub-test/pause:3.10.1"
  stream_server_address = "127.0.0.1"
  # Root in this VM lacks CAP_SYS_RESOURCE: an oom_score_adj below 0 (the sandbox asks for -998)
  # makes runc fail with "can't get final child's PID from pipe".
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$D/cni/net.d"
EOF
  # No default route and no masquerading: pods reach the bridge's /24 and the service range only.
  cat >"$D/cni/net.d/10-llm-mcp-hub.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "llm-mcp-hub", "plugins": [{
  "type": "bridge", "bridge": "$BRIDGE", "isGateway": false, "isDefaultGateway": false,
  "ipMasq": false, "hairpinMode": true,
  "ipam": {"type": "host-local", "dataDir": "$D/cni/ipam",
           "ranges": [[{"subnet": "$POD_CIDR", "gateway": "$NODE_IP"}]],
           "routes": [{"dst": "$SERVICE_CIDR"}]}}]}
EOF
  start containerd containerd --config "$D/containerd/config.toml"
  wait_for containerd 30 ctr --address "$D/containerd/containerd.sock" version
}

dns_up() {
  local health ready
  health="$(free_port)"; ready="$(free_port)"
  cat >"$D/Corefile" <<EOF
.:53 {
  bind $NODE_IP
  errors
  health 127.0.0.1:$health
  ready 127.0.0.1:$ready
  kubernetes cluster.local in-addr.arpa ip6.arpa {
    kubeconfig $D/plane/admin.kubeconfig
    pods insecure
    fallthrough in-addr.arpa ip6.arpa
    ttl 5
  }
  # No upstream: outside names get NXDOMAIN (SERVFAIL makes glibc report a temporary failure).
  template ANY ANY {
    rcode NXDOMAIN
  }
}
EOF
  start coredns "$BIN/coredns" -conf "$D/Corefile"
  wait_for "CoreDNS ready" 60 curl -fsS "http://127.0.0.1:$ready/ready"
}

kubelet_up() {
  mkdir -p "$D/kubelet/root" "$D/kubelet/pod-logs"
  : >"$D/kubelet/resolv.conf"
  local port healthz
  port="$(free_port)"; healthz="$(free_port)"
  cat >"$D/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This VM mounts cgroup v1; kubelet 1.35 refuses it unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$D/containerd/containerd.sock
address: $NODE_IP
port: $port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz
tlsCertFile: $D/plane/kubelet-serving.crt
tlsPrivateKeyFile: $D/plane/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $D/plane/ca.crt}
authorization: {mode: Webhook}
clusterDNS: [$NODE_IP]
clusterDomain: cluster.local
resolvConf: $D/kubelet/resolv.conf
failSwapOn: false
podLogsDir: $D/kubelet/pod-logs
serializeImagePulls: false
# The images were imported, not pulled: nothing may collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
EOF
  start kubelet "$BIN/kubelet" --config "$D/kubelet/config.yaml" --kubeconfig "$D/plane/kubelet.kubeconfig" \
    --root-dir "$D/kubelet/root" --cert-dir "$D/kubelet/pki" --node-ip "$NODE_IP" --hostname-override "$NODE_NAME"
  wait_for "kubelet /healthz" 90 curl -fsS "http://127.0.0.1:$healthz/healthz"
}

scheduler_up() {
  local port; port="$(free_port)"
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$D/plane/scheduler.kubeconfig" \
    --authentication-kubeconfig "$D/plane/scheduler.kubeconfig" --authorization-kubeconfig "$D/plane/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$port" --leader-elect=false
  wait_for "kube-scheduler /healthz" 60 curl -fsSk "https://127.0.0.1:$port/healthz"
}

proxy_up() {
  local healthz metrics
  healthz="$(free_port)"; metrics="$(free_port)"
  cat >"$D/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
clientConnection: {kubeconfig: $D/plane/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$healthz
metricsBindAddress: 127.0.0.1:$metrics
nodePortAddresses: [$NODE_IP/32]
# Service traffic is masqueraded, so replies come back through the host whether or not this
# machine's bridge passes its frames through netfilter.
nftables: {masqueradeAll: true}
# Leave the machine's conntrack settings alone.
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy "$BIN/kube-proxy" --config "$D/kube-proxy.yaml"
  wait_for "kube-proxy /healthz" 60 curl -fsS "http://127.0.0.1:$healthz/healthz"
}

ingress_up() {
  INGRESS_PORT="$(free_port)"
  local ping; ping="$(free_port)"
  "$BIN/kubectl" apply -f - >/dev/null <<EOF
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: traefik}
spec: {controller: traefik.io/ingress-controller}
EOF
  # On the host's loopback: the tests reach the ingress as a user's browser or MCP client would.
  start traefik "$BIN/traefik" \
    --entryPoints.web.address="127.0.0.1:$INGRESS_PORT" --entryPoints.traefik.address="127.0.0.1:$ping" \
    --ping=true --providers.kubernetesIngress=true --log.level=INFO --global.checkNewVersion=false \
    --global.sendAnonymousUsage=false
  wait_for "Traefik /ping" 60 curl -fsS "http://127.0.0.1:$ping/ping"
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (a bridge, nftables, containerd)"
  for b in kube-plane kubelet kube-scheduler kube-proxy coredns traefik; do
    [ -x "$BIN/$b" ] || die "$BIN/$b missing: run tests/kube/build.sh node"
  done
  ensure_packages
  if [ -f "$MARK" ]; then
    log "cleaning up after an earlier run that did not stop ($(cat "$MARK"))"
    down "$(cat "$MARK")" || true
  fi
  ip link show "$BRIDGE" >/dev/null 2>&1 && { log "removing a stale $BRIDGE"; ip link del "$BRIDGE"; }
  D="${1:?usage: cluster.sh up DIR}"
  mkdir -p "$D"
  D="$(cd "$D" && pwd)"
  echo "$D" >"$MARK"
  : >"$D/node-pids"
  for s in "${SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")"; done >"$D/sysctls"
  for dir in "${LEFTOVER_DIRS[@]}"; do [ -e "$dir" ] && echo "$dir"; done >"$D/preexisting" || true
  # The kubelet's iptables (nft backend) makes tables of its own; `down` removes the new ones.
  nft list tables >"$D/nft-tables" 2>/dev/null || true
  trap '[ $? -eq 0 ] || { log "start failed; stopping what started"; down "$D" keep-logs || true; }' EXIT
  local t0=$SECONDS

  # The API server's port is picked before the filter that opens it.
  API_PORT="$(free_port)"
  network_up
  local env_line
  env_line="$(PLANE_ADDRESS="$NODE_IP" PLANE_NODE_NAME="$NODE_NAME" PLANE_API_PORT="$API_PORT" "$HERE/plane.sh" up "$D/plane")"
  eval "$env_line"
  [ "$KUBE_PLANE_API_PORT" = "$API_PORT" ] || die "the API server is on $KUBE_PLANE_API_PORT, not $API_PORT"
  export PATH="$BIN:$PATH"
  containerd_up
  dns_up
  kubelet_up
  scheduler_up
  proxy_up
  wait_for "node $NODE_NAME Ready" 120 kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
  ingress_up
  log "cluster up in $((SECONDS - t0))s (node $NODE_NAME at $NODE_IP, state in $D)"
  echo "export KUBECONFIG=$KUBECONFIG LLM_MCP_HUB_NODE_IP=$NODE_IP LLM_MCP_HUB_INGRESS_PORT=$INGRESS_PORT"
}

import() {
  D="${1:?usage: cluster.sh import DIR FILE...}"; shift
  local f
  for f in "$@"; do
    log "importing $(basename "$f") into the node"
    ctr --address "$D/containerd/containerd.sock" -n k8s.io images import --snapshotter overlayfs "$f" >/dev/null
  done
}

# Every process left in the pods' cgroups (containers whose sandbox outlived the kubelet).
kill_pod_processes() {
  local procs
  for procs in $(find /sys/fs/cgroup -path '*kubepods*' -name cgroup.procs 2>/dev/null); do
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$procs"
  done
}

down() {
  D="${1:?usage: cluster.sh down DIR}"
  local keep="${2:-}"
  export PATH="$BIN:$PATH"
  # Pods first, through the kubelet, so CNI DEL removes their network namespaces and addresses.
  if [ -f "$D/plane/admin.kubeconfig" ] && [ -f "$D/node-pids" ] && grep -q ' kubelet ' "$D/node-pids"; then
    KUBECONFIG="$D/plane/admin.kubeconfig" timeout 60 kubectl delete pods --all --all-namespaces \
      --grace-period=1 --wait=true --timeout=50s >/dev/null 2>&1 || log "not every pod was deleted in time"
  fi
  if [ -f "$D/node-pids" ]; then stop_parts "$D/node-pids"; fi
  # containerd's shims outlive it; they are the ones started on this run's socket.
  local shim
  for shim in $(pgrep -f "containerd-shim.*-address $D/containerd/containerd.sock" || true); do kill -KILL "$shim" 2>/dev/null || true; done
  kill_pod_processes
  [ -f "$D/plane/pids" ] && "$HERE/plane.sh" down "$D/plane" >/dev/null 2>&1 || true
  [ -x "$BIN/kube-proxy" ] && "$BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
  nft delete table inet "$NFT_TABLE" 2>/dev/null || true
  if [ -f "$D/nft-tables" ]; then
    nft list tables 2>/dev/null | while read -r _ family name; do
      grep -qxF "table $family $name" "$D/nft-tables" || nft delete table "$family" "$name" 2>/dev/null || true
    done
  fi
  local chain
  for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT KUBE-PROXY-CANARY; do
    for table in filter nat mangle; do
      for tool in iptables ip6tables; do
        command -v "$tool" >/dev/null || continue
        "$tool" -t "$table" -S 2>/dev/null | awk -v c="$chain" '$1 == "-A" && $0 ~ "-j " c "( |$)" { $1 = "-D"; print }' \
          | while read -r rule; do eval "$tool -t $table $rule" 2>/dev/null || true; done
        "$tool" -t "$table" -F "$chain" 2>/dev/null || true
        "$tool" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  # What the kernel still holds of the pods: mounts under the state dir and the CNI namespaces.
  local m
  for m in $(awk -v d="$D" '$5 ~ "^" d || $5 ~ "^/run/netns/cni-" { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -f /run/netns/cni-* 2>/dev/null || true
  local cg
  for cg in $(find /sys/fs/cgroup -depth -type d -path '*kubepods*' 2>/dev/null); do rmdir "$cg" 2>/dev/null || true; done
  ip link show "$BRIDGE" >/dev/null 2>&1 && ip link del "$BRIDGE"
  if [ -f "$D/sysctls" ]; then
    while IFS== read -r key value; do sysctl -qw "$key=$value" || true; done <"$D/sysctls"
  fi
  local dir
  for dir in "${LEFTOVER_DIRS[@]}"; do
    grep -qxF "$dir" "$D/preexisting" 2>/dev/null || rm -rf "$dir"
  done
  rm -f "$MARK"
  if [ -z "$keep" ]; then rm -rf "$D"; fi
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) shift; down "$@" ;;
  import) shift; import "$@" ;;
  node-ip) echo "$NODE_IP" ;;
  *) echo "usage: $0 up DIR | down DIR | import DIR FILE... | node-ip" >&2; exit 2 ;;
esac
