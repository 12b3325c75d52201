#!/usr/bin/env bash
# The user's Kubernetes path on a real kubelet: a single-node cluster (cluster.sh) runs the
# chart's operator and the worker, router and Redis pods it makes, from the project's own images
# (images/test.sh, tests/kube/images.sh), with the workers' claude talking to a fake model server
# on the node's bridge. The steps are docs/kind.md's, with local image names the only change:
# helm install, the Secrets, an LLMProvider (claude, two accounts), a HubGateway (two routers,
# managed Redis, an Ingress), kubectl wait. Then, each against the real pods: the printer
# columns; a chat and a streamed chat from a pod with the official OpenAI SDK through the
# router's Service; MCP through the Ingress (official MCP SDK, both HTTP transports, a cancel);
# a conversation across both router replicas; a worker pod deleted mid-stream; a rollout under
# traffic; a token rotation; one account usage-limited; the pods' security as promised; Redis'
# pod deleted; helm uninstall. The cluster is stopped and the machine left as it was on success,
# failure or interruption.
#
# Needs root, Go, the debug binaries, tests/cli and images/test.sh's images; installs the Debian
# packages cluster.sh needs. LLM_MCP_HUB_NODE_KEEP=1 leaves the cluster running on failure
# (stop it with `tests/kube/cluster.sh down DIR`).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
t_start=$SECONDS

log() { printf '== node: %s\n' "$*" >&2; }
ok() { printf 'ok - %s\n' "$*" >&2; }

BIN="$("$HERE/build.sh" node)"
export PATH="$BIN:$PATH"
log "Kubernetes binaries ready in $((SECONDS - t_start))s"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
HUB="$TARGET/debug/llm-mcp-hub"
FAKE="$TARGET/debug/fake-models"
[ -x "$HUB" ] && [ -x "$FAKE" ] || cargo build --quiet -p llm-mcp-hub -p fake-models --bins
VENV="$TARGET/test-venv"
[ -x "$VENV/bin/python" ] || { echo "node-test.sh: the SDK venv ($VENV) is missing: run scripts/test" >&2; exit 1; }

NODE_IP="$("$HERE/cluster.sh" node-ip)"
FAKE_PORT="${LLM_MCP_HUB_NODE_FAKE_PORT:-18099}"
FAKE_URL="http://$NODE_IP:$FAKE_PORT"
NS=llm-mcp-hub
HOST=hub.llm-mcp-hub.test
STATE="$(mktemp -d "${TMPDIR:-/tmp}/kube-node.XXXXXX")"
export KUBECACHEDIR="$STATE/kubectl-cache" HELM_CACHE_HOME="$STATE/helm/cache" \
  HELM_CONFIG_HOME="$STATE/helm/config" HELM_DATA_HOME="$STATE/helm/data"

fake_pid=""
diagnose() {
  log "what the cluster shows:"
  kubectl get nodes,pods,svc,endpointslices,pvc,pv,ingress -A -o wide >&2 || true
  kubectl -n "$NS" get llmp,hgw -o yaml >&2 || true
  kubectl get events -A --sort-by=.lastTimestamp 2>/dev/null | tail -40 >&2 || true
  local p
  for p in $(kubectl -n "$NS" get pods -o name 2>/dev/null); do
    printf -- '--- logs of %s (last 30 lines)\n' "$p" >&2
    kubectl -n "$NS" logs "$p" --all-containers --tail 30 >&2 2>&1 || true
  done
  printf -- '--- the fake model server (last 20 lines)\n' >&2; tail -n 20 "$STATE/fake.err" >&2 2>/dev/null || true
  for f in "$STATE"/cluster/*.log; do printf -- '--- %s (last 15 lines)\n' "$f" >&2; tail -n 15 "$f" >&2; done
}
stop() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ] && [ -f "$STATE/cluster/node-pids" ]; then diagnose; fi
  if [ "$rc" -ne 0 ] && [ -n "${LLM_MCP_HUB_NODE_KEEP:-}" ]; then
    log "kept: KUBECONFIG=$STATE/cluster/plane/admin.kubeconfig; stop with tests/kube/cluster.sh down $STATE/cluster"
    return
  fi
  [ -n "$fake_pid" ] && kill "$fake_pid" 2>/dev/null
  [ -d "$STATE/cluster" ] && "$HERE/cluster.sh" down "$STATE/cluster"
  rm -rf "$STATE"
  log "stopped; the node tests took $((SECONDS - t_start))s"
}
trap stop EXIT
trap 'exit 130' INT TERM
fail() { printf 'node-test: FAILED: %s\n' "$*" >&2; exit 1; }

t0=$SECONDS
"$HERE/images.sh" "$FAKE_URL" "$TARGET/kube/node-images.tar"
log "images ready in $((SECONDS - t0))s"

t0=$SECONDS
eval "$(LLM_MCP_HUB_NODE_OPEN_PORTS="$FAKE_PORT" "$HERE/cluster.sh" up "$STATE/cluster")"
"$FAKE" --host "$NODE_IP" --anthropic-port "$FAKE_PORT" >"$STATE/fake.out" 2>"$STATE/fake.err" &
fake_pid=$!
# Stopped with the node's own processes, also by the `up` after a run that was killed.
echo "$fake_pid fake-models $(awk '{ print $22 }' "/proc/$fake_pid/stat")" >>"$STATE/cluster/node-pids"
"$HERE/cluster.sh" import "$STATE/cluster" "$TARGET/kube/node-images.tar"
log "cluster up and images imported in $((SECONDS - t0))s"

fake() { curl -fsS "$FAKE_URL/_fake/$1" "${@:2}"; }
# The tokens the fake saw on conversation requests, oldest first, one per line.
fake_tokens() {
  fake requests | python3 -c 'import json, sys
for r in json.load(sys.stdin):
    if not r["side_request"] and r["path"].endswith("/messages"):
        print(dict(r["headers"]).get("authorization", "").removeprefix("Bearer "))'
}
in_cluster() { kubectl -n "$NS" exec -i client -- python3 - "$@" <"$HERE/node/in_cluster.py"; }
wait_until() { # what, seconds, command...: polls every half second
  local what="$1" secs="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${secs}s: $what"
    sleep 0.5
  done
}

# --- The user's path (docs/kind.md §3-5) ------------------------------------------------------
t0=$SECONDS
helm install hub charts/llm-mcp-hub --namespace "$NS" --create-namespace \
  --set operator.image.repository=localhost/llm-mcp-hub-operator --set operator.image.tag=test \
  --set hubImage.repository=localhost/llm-mcp-hub-test/hub --set hubImage.tag=node >/dev/null
kubectl -n "$NS" rollout status deployment/hub-operator --timeout=180s >/dev/null
ok "helm install: the operator is running ($((SECONDS - t0))s)"

TOKEN_A="sk-ant-oat01-node-a-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
TOKEN_B="sk-ant-oat01-node-b-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
kubectl -n "$NS" create secret generic claude-a --from-literal=token="$TOKEN_A" >/dev/null
kubectl -n "$NS" create secret generic claude-b --from-literal=token="$TOKEN_B" >/dev/null
"$HUB" keygen --id n8n 2>"$STATE/keys.toml" >"$STATE/hub.key"
KEY="$(cat "$STATE/hub.key")"
kubectl -n "$NS" create secret generic hub-api-keys --from-file=keys="$STATE/keys.toml" >/dev/null

# This node has no volume provisioner: Redis' claim binds to a hostPath volume made here, owned
# by Redis' uid as a provisioner would make it.
mkdir -p "$STATE/pv-redis" && chown 999:999 "$STATE/pv-redis"
kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: PersistentVolume
metadata: {name: node-test-redis}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: $STATE/pv-redis, type: Directory}
EOF

t0=$SECONDS
kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: llm-mcp-hub.dev/v1alpha1
kind: LLMProvider
metadata: {name: claude}
spec:
  kind: claude
  models: {allowed: [sonnet, opus, haiku], default: sonnet}
  credentials:
    accounts:
      - name: a
        secretRef: {name: claude-a}
      - name: b
        secretRef: {name: claude-b}
  replicas: 1
---
apiVersion: llm-mcp-hub.dev/v1alpha1
kind: HubGateway
metadata: {name: hub}
spec:
  replicas: 2
  apiKeysSecretRef: {name: hub-api-keys}
  sessionStore:
    mode: Managed
    managed: {image: localhost/llm-mcp-hub-test/redis:7}
  ingress: {host: $HOST, className: traefik}
EOF
kubectl -n "$NS" wait --for=condition=Ready llmprovider/claude hubgateway/hub --timeout=300s >/dev/null
ok "LLMProvider and HubGateway Ready ($((SECONDS - t0))s after kubectl apply)"
# Ready comes with the first logged-in worker (PartiallyReady); the checks below want both.
kubectl -n "$NS" wait --for=jsonpath='{.status.readyReplicas}'=2 llmprovider/claude --timeout=300s >/dev/null
kubectl -n "$NS" wait --for=jsonpath='{.status.readyReplicas}'=2 hubgateway/hub --timeout=300s >/dev/null

# --- kubectl get, as the docs show it -----------------------------------------------------------
get="$(kubectl -n "$NS" get llmp,hgw)"
printf '%s\n' "$get" >&2
grep -Eq '^NAME +KIND +MODELS +READY +AGE$' <<<"$get" || fail "LLMProvider columns: $get"
grep -Eq '^llmprovider.llm-mcp-hub.dev/claude +claude +\["sonnet","opus","haiku"\] +True ' <<<"$get" || fail "LLMProvider row: $get"
grep -Eq '^NAME +URL +PROVIDERS +READY +AGE$' <<<"$get" || fail "HubGateway columns: $get"
grep -Eq "^hubgateway.llm-mcp-hub.dev/hub +http://$HOST +\[\"claude\"\] +True " <<<"$get" || fail "HubGateway row: $get"
wide="$(kubectl -n "$NS" get llmp claude -o wide)"
grep -Eq '^claude +claude +.* True +2 +[A-Za-z]+ ' <<<"$wide" || fail "kubectl get llmp -o wide: $wide"
ok "kubectl get llmp,hgw shows the documented columns with real values"

# --- A client pod: the official OpenAI SDK through the router's Service --------------------------
kubectl -n "$NS" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: client, labels: {app: node-test-client}}
spec:
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 10001}
  terminationGracePeriodSeconds: 1
  containers:
    - name: client
      image: localhost/llm-mcp-hub-test/client:1
      imagePullPolicy: Never
      command: [python3, -c, "import time; time.sleep(86400)"]
EOF
kubectl -n "$NS" wait --for=condition=Ready pod/client --timeout=120s >/dev/null
SVC_URL="http://hub-router.$NS.svc.cluster.local/v1"
out="$(in_cluster chat "$SVC_URL" "$KEY")" || fail "chat from the client pod: $out"
ok "a chat and a streamed chat through $SVC_URL: $out"

# --- MCP through the Ingress, from the host ------------------------------------------------------
printf '127.0.0.1 localhost %s\n' "$HOST" >"$STATE/hosts"
out="$(unshare -m sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' _ "$STATE/hosts" \
  "$VENV/bin/python" "$HERE/node/mcp_ingress.py" "http://$HOST:$LLM_MCP_HUB_INGRESS_PORT" "$KEY" "$FAKE_URL")" \
  || fail "MCP through the Ingress: $out"
ok "MCP through the Ingress (streamable HTTP and SSE: chat, a cancel that closed the model stream): $out"

# --- One conversation across both router replicas, its history in the Redis pod ------------------
mapfile -t routers < <(kubectl -n "$NS" get pods -l app.kubernetes.io/component=router,llm-mcp-hub.dev/gateway=hub \
  --field-selector=status.phase=Running -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}')
[ "${#routers[@]}" = 2 ] || fail "two router pods expected: ${routers[*]}"
SESSION=node-test-conversation
out="$(in_cluster session "$KEY" "http://${routers[0]}:8080/v1" "http://${routers[1]}:8080/v1" "$SESSION")" \
  || fail "a conversation across routers: $out"
prompt_of() { # the last prompt the fake got whose newest user text contains $1
  fake requests | python3 -c 'import json, sys
hits = [r["last_user_text"] for r in json.load(sys.stdin) if not r["side_request"] and sys.argv[1] in r["last_user_text"]]
print(hits[-1] if hits else "")' "$1"
}
prompt="$(prompt_of "what is my name?")"
grep -q "my name is Ada" <<<"$prompt" && grep -q "green tea" <<<"$prompt" \
  || fail "the third turn's prompt lacks the history of the first two (routers ${routers[*]}): $prompt"
ok "turns on router ${routers[0]}, ${routers[1]}, ${routers[0]} share one session"

# --- The pods run as the chart promises ----------------------------------------------------------
kubectl -n "$NS" get pods -l app.kubernetes.io/managed-by=llm-mcp-hub-operator -o json >"$STATE/pods.json"
kubectl -n "$NS" get pods -l app.kubernetes.io/name=llm-mcp-hub,app.kubernetes.io/component=operator -o json >"$STATE/operator-pods.json"
python3 - "$STATE/pods.json" "$STATE/operator-pods.json" <<'EOF' || fail "pod specs"
import json, sys
pods = json.load(open(sys.argv[1]))["items"] + json.load(open(sys.argv[2]))["items"]
components = {p["metadata"]["labels"].get("app.kubernetes.io/component") for p in pods}
assert {"worker", "router", "redis", "operator"} <= components, components
for p in pods:
    name, spec = p["metadata"]["name"], p["spec"]
    psc = spec.get("securityContext", {})
    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c.get("securityContext", {})
        uid = sc.get("runAsUser", psc.get("runAsUser"))
        assert sc.get("runAsNonRoot", psc.get("runAsNonRoot")) and uid and uid != 0, (name, c["name"], sc, psc)
        assert sc.get("readOnlyRootFilesystem") is True, (name, c["name"], sc)
        assert sc.get("allowPrivilegeEscalation") is False, (name, c["name"], sc)
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], (name, c["name"], sc)
    # Only the router (discovery) and the operator talk to the API server.
    wants_token = p["metadata"]["labels"]["app.kubernetes.io/component"] in ("router", "operator")
    assert (spec.get("automountServiceAccountToken") is not False) == wants_token, (name, spec.get("automountServiceAccountToken"))
print(len(pods), "pods checked")
EOF
inside() { # pod, then a shell script run in it: prints uid, whether / is writable, whether a token is mounted
  kubectl -n "$NS" exec "$1" -- sh -c 'id -u; if touch /.probe 2>/dev/null; then echo rw; else echo ro; fi;
    if [ -e /var/run/secrets/kubernetes.io/serviceaccount/token ]; then echo token; else echo no-token; fi'
}
worker_pod="$(kubectl -n "$NS" get pods -l app.kubernetes.io/component=worker -o jsonpath='{.items[0].metadata.name}')"
router_pod="$(kubectl -n "$NS" get pods -l app.kubernetes.io/component=router -o jsonpath='{.items[0].metadata.name}')"
[ "$(inside "$worker_pod" | tr '\n' ' ')" = "10001 ro no-token " ] || fail "inside $worker_pod: $(inside "$worker_pod")"
[ "$(inside "$router_pod" | tr '\n' ' ')" = "10001 ro token " ] || fail "inside $router_pod: $(inside "$router_pod")"
[ "$(inside hub-redis-0 | tr '\n' ' ')" = "999 ro no-token " ] || fail "inside hub-redis-0: $(inside hub-redis-0)"
ok "every pod is non-root with a read-only root filesystem; only routers and the operator hold a token (checked inside $worker_pod, $router_pod, hub-redis-0)"

# --- Redis' pod deleted: the StatefulSet brings it back on its volume, with the session -----------
pvc_uid="$(kubectl -n "$NS" get pvc data-hub-redis-0 -o jsonpath='{.metadata.uid}')"
kubectl -n "$NS" delete pod hub-redis-0 --wait=true >/dev/null
kubectl -n "$NS" rollout status statefulset/hub-redis --timeout=120s >/dev/null
kubectl -n "$NS" wait --for=condition=Ready pod/hub-redis-0 --timeout=120s >/dev/null
[ "$(kubectl -n "$NS" get pvc data-hub-redis-0 -o jsonpath='{.metadata.uid}')" = "$pvc_uid" ] || fail "Redis' claim was replaced"
session_after() {
  kubectl -n "$NS" exec -i client -- python3 -c 'import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
print(json.dumps(json.load(urllib.request.urlopen(req, timeout=10))))' "http://hub-router.$NS.svc.cluster.local/v1/sessions/$SESSION" "$KEY"
}
wait_until "the session is readable after Redis' restart" 60 session_after
session_after | grep -q "my name is Ada" || fail "the session after Redis' restart: $(session_after)"
ok "Redis' pod deleted: back on the same claim, and the conversation written before is still there"

# --- A worker pod deleted while it streams --------------------------------------------------------
account_of_token() { if [ "$1" = "$TOKEN_A" ]; then echo a; elif [ "$1" = "$TOKEN_B" ]; then echo b; else echo "?"; fi; }
fake requests -X DELETE >/dev/null
in_cluster stream "$SVC_URL" "$KEY" >"$STATE/stream.out" 2>&1 &
stream_pid=$!
wait_until "the long stream to start" 60 grep -q '^streaming$' "$STATE/stream.out"
victim="$(account_of_token "$(fake_tokens | tail -n 1)")"
victim_pod="$(kubectl -n "$NS" get pods -l "llm-mcp-hub.dev/account=$victim" -o jsonpath='{.items[0].metadata.name}')"
t_kill="$(date +%s.%N)"
kubectl -n "$NS" delete pod "$victim_pod" --grace-period=0 --force >/dev/null 2>&1
wait "$stream_pid" || fail "the stream's client: $(cat "$STATE/stream.out")"
result="$(tail -n 1 "$STATE/stream.out")"
python3 - "$result" "$t_kill" <<'EOF' || fail "the stream served by $victim_pod: $result"
import json, sys
r, t_kill = json.loads(sys.argv[1]), float(sys.argv[2])
assert r["error"], r
assert r["words"] < 600, r
assert r["error_at"] - t_kill < 10, ("the error came", r["error_at"] - t_kill, "s after the kill")
print(f'error after {r["error_at"] - t_kill:.1f}s: {r["error"]}')
EOF
# The next requests are answered at once (the SDK does not retry): by the other account, or by
# the victim's replacement if it is Ready already (here it takes seconds).
fake requests -X DELETE >/dev/null
out="$(in_cluster chat "$SVC_URL" "$KEY")" || fail "the requests after the kill: $out"
after_kill="$(fake_tokens | while read -r t; do account_of_token "$t"; done | sort -u | tr '\n' ' ')"
kubectl -n "$NS" rollout status "deployment/claude-$victim" --timeout=180s >/dev/null
new_pod="$(kubectl -n "$NS" get pods -l "llm-mcp-hub.dev/account=$victim" --field-selector=status.phase=Running -o jsonpath='{.items[0].metadata.name}')"
[ -n "$new_pod" ] && [ "$new_pod" != "$victim_pod" ] || fail "no new pod for account $victim"
fake requests -X DELETE >/dev/null
served_by_victim() {
  in_cluster chat "$SVC_URL" "$KEY" >/dev/null || return 2
  fake_tokens | grep -qxF "$([ "$victim" = a ] && echo "$TOKEN_A" || echo "$TOKEN_B")"
}
wait_until "the new pod $new_pod of account $victim to get traffic" 120 served_by_victim
ok "a worker pod deleted mid-stream: the client got an error at once, the next requests were answered (by account(s) $after_kill), the new pod $new_pod gets traffic"

# --- A rollout under traffic: nothing fails ------------------------------------------------------
old_pods="$(kubectl -n "$NS" get pods -l app.kubernetes.io/component=worker -o jsonpath='{.items[*].metadata.name}')"
kubectl -n "$NS" exec client -- rm -f /tmp/stop
in_cluster load "$SVC_URL" "$KEY" /tmp/stop >"$STATE/load.out" 2>&1 &
load_pid=$!
sleep 3
kubectl -n "$NS" patch llmprovider claude --type merge -p '{"spec": {"concurrency": 3}}' >/dev/null
for acc in a b; do kubectl -n "$NS" rollout status "deployment/claude-$acc" --timeout=240s >/dev/null; done
wait_until "the old worker pods to be gone" 120 sh -c "! kubectl -n $NS get pods -o name | grep -qE '$(tr ' ' '|' <<<"$old_pods")'"
sleep 3
kubectl -n "$NS" exec client -- python3 -c 'open("/tmp/stop", "w").close()'
wait "$load_pid" || fail "requests during the rollout: $(cat "$STATE/load.out")"
ok "a rollout (concurrency 3) under traffic: $(tail -n 1 "$STATE/load.out")"

# --- Rotating a token Secret reaches the workers -------------------------------------------------
TOKEN_A2="sk-ant-oat01-node-a2-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
fake requests -X DELETE >/dev/null
t0=$SECONDS
kubectl -n "$NS" create secret generic claude-a --from-literal=token="$TOKEN_A2" --dry-run=client -o yaml | kubectl -n "$NS" apply -f - >/dev/null
carries_new_token() { in_cluster chat "$SVC_URL" "$KEY" >/dev/null || return 2; fake_tokens | grep -qxF "$TOKEN_A2"; }
wait_until "a model request with the rotated token" 180 carries_new_token
rotated_in=$((SECONDS - t0))
kubectl -n "$NS" rollout status deployment/claude-a --timeout=180s >/dev/null
wait_until "account a's old pod to be gone" 120 sh -c "[ \$(kubectl -n $NS get pods -l llm-mcp-hub.dev/account=a -o name | wc -l) = 1 ]"
fake requests -X DELETE >/dev/null
for i in $(seq 8); do in_cluster chat "$SVC_URL" "$KEY" >/dev/null || fail "request $i after the rotation"; done
! fake_tokens | grep -qxF "$TOKEN_A" || fail "the old token of account a is still used after the rollout"
ok "a rotated token Secret reached the workers: the first model request with it ${rotated_in}s after kubectl apply (the operator rolls the account's pods)"

# --- One account usage-limited at its fake -------------------------------------------------------
fake "force?token=$TOKEN_B" -X PUT --data-binary '[[status:429]] [[reset-in:900]]' >/dev/null
limited_b() {
  kubectl -n "$NS" get llmp claude -o jsonpath='{.status.accounts[?(@.name=="b")].usageLimitedUntil}' | grep -q .
}
for i in $(seq 40); do
  out="$(in_cluster chat "$SVC_URL" "$KEY")" || fail "request $i while account b is limited: $out"
  limited_b && break
  sleep 1
done
wait_until "the LLMProvider's status to name account b as usage-limited" 60 limited_b
until_b="$(kubectl -n "$NS" get llmp claude -o jsonpath='{.status.accounts[?(@.name=="b")].usageLimitedUntil}')"
python3 - "$until_b" <<'EOF' || fail "account b is limited until $until_b"
import datetime, sys
until = datetime.datetime.fromisoformat(sys.argv[1].replace("Z", "+00:00"))
left = (until - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
assert 800 < left <= 900, left
EOF
[ -z "$(kubectl -n "$NS" get llmp claude -o jsonpath='{.status.accounts[?(@.name=="a")].usageLimitedUntil}')" ] || fail "account a is marked limited"
fake "force?token=$TOKEN_B" -X DELETE >/dev/null
ok "account b usage-limited: every request answered (by a), and the LLMProvider says b is limited until $until_b"

# --- helm uninstall ------------------------------------------------------------------------------
kubectl -n "$NS" delete pod client --wait=true >/dev/null
kubectl -n "$NS" delete llmprovider,hubgateway --all --wait=true --timeout=120s >/dev/null
helm uninstall hub --namespace "$NS" --wait --timeout 120s >/dev/null
gone() { [ -z "$(kubectl -n "$NS" get pods,services,pvc,deployments,statefulsets,ingresses,networkpolicies -o name)" ]; }
wait_until "the release's pods, Services and claims to be gone" 120 gone
secrets="$(kubectl -n "$NS" get secrets -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | sort | tr '\n' ' ')"
[ "$secrets" = "claude-a claude-b hub-api-keys " ] || fail "Secrets left after helm uninstall: $secrets"
kubectl get crd llmproviders.llm-mcp-hub.dev hubgateways.llm-mcp-hub.dev >/dev/null || fail "the CRDs were removed"
ok "helm uninstall: no pod, Service, claim or Secret of the release is left (the user's own Secrets and the CRDs stay)"

log "all node checks passed in $((SECONDS - t_start))s"
