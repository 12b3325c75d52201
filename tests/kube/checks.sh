#!/usr/bin/env bash
# Checks of the CRDs, the examples, the chart, the operator process and RBAC against a real API
# server (the one in KUBECONFIG, e.g. from tests/kube/plane.sh). Needs kubectl and helm on PATH
# (tests/kube/build.sh builds both), python3, and for the `operator` part the operator binary in
# LLM_MCP_HUB_OPERATOR_BIN.
#
#   tests/kube/checks.sh [crds] [helm] [operator]     (default: all three, in that order)
#
# crds      apply the CRDs server-side; every LLMProvider/HubGateway example of README.md, docs/
#           and the chart passes server-side validation; each CEL rule rejects an invalid object
#           with its message; printer columns; `kubectl explain` documents every spec field.
#           Ends by deleting the CRDs, so that `helm` installs them.
# helm      install, upgrade with other values, uninstall: nothing of the release is left.
# operator  the chart installed; two operator processes with its ServiceAccount's token: one
#           leader, hand-over on SIGTERM and on SIGKILL; the docs' example reconciled; RBAC as
#           `kubectl auth can-i --list` reports it, for the operator and the router, is what
#           docs/kubernetes.md says.
#
# Prints one line per check and ends with "kube checks: N passed, N failed"; exits non-zero if
# any check failed. Each part works in namespaces of its own and removes them.
set -uo pipefail
export LC_ALL=C # sort like python3 does

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
CHART="$ROOT/charts/llm-mcp-hub"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/kube-checks.XXXXXX")"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

: "${KUBECONFIG:?set KUBECONFIG (tests/kube/plane.sh up prints it)}"
for t in kubectl helm python3; do
  command -v "$t" >/dev/null || { echo "checks.sh: $t not on PATH" >&2; exit 1; }
done

passed=0
failed=0
section() { printf '\n-- %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf 'ok    %s\n' "$1"; }
not_ok() {
  failed=$((failed + 1))
  printf 'FAIL  %s\n' "$1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/      | /' | head -n 40; fi
}
# check NAME CMD...: passes when CMD exits 0; its output is shown on failure.
check() {
  local name="$1" out
  shift
  if out="$("$@" 2>&1)"; then ok "$name"; else not_ok "$name" "$out"; fi
}
# eventually SECS CMD...: CMD until it succeeds, at most SECS seconds.
eventually() {
  local secs="$1" deadline
  shift
  deadline=$((SECONDS + secs))
  until "$@"; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.5
  done
}
exists() { kubectl get "$@" >/dev/null 2>&1; }
gone() { ! kubectl get "$@" >/dev/null 2>&1; }
fresh_ns() {
  kubectl delete namespace "$1" --ignore-not-found --wait=true >/dev/null 2>&1
  kubectl create namespace "$1" >/dev/null
}
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---------------------------------------------------------------------------------------------
# The LLMProvider/HubGateway examples, one file each, in $WORK/examples.
extract_examples() {
  [ -d "$WORK/examples" ] && return 0
  # The YAML blocks of README.md and docs/*.md that hold an LLMProvider or a HubGateway.
  mkdir -p "$WORK/examples"
  python3 - "$WORK/examples" "$ROOT/README.md" "$ROOT"/docs/*.md <<'PY'
import os, re, sys
out = sys.argv[1]
for path in sys.argv[2:]:
    text = open(path).read()
    for m in re.finditer(r"^```ya?ml\n(.*?)^```", text, re.S | re.M):
        if re.search(r"^kind: (LLMProvider|HubGateway)\b", m.group(1), re.M):
            line = text[: m.start()].count("\n") + 1
            name = f"{os.path.basename(path)}:{line}"
            open(os.path.join(out, name + ".yaml"), "w").write(m.group(1))
PY
  # The chart's custom resources (and the rest of it): ci-values.yaml (every optional part), and the example that
  # values.yaml gives in comments under `llmProviders:`.
  sed -n '/^llmProviders: \[\]/,$p' "$CHART/values.yaml" | sed -n 's/^# \{0,1\}//p' \
    | sed '1i llmProviders:' >"$WORK/values-example.yaml"
  helm template hub "$CHART" --namespace examples -f "$CHART/ci-values.yaml" --set operator.watchNamespace=examples \
    >"$WORK/examples/chart-ci-values.yaml" 2>"$WORK/err" || not_ok "helm template (ci-values.yaml)" "$(cat "$WORK/err")"
  helm template hub "$CHART" --namespace examples -f "$WORK/values-example.yaml" \
    >"$WORK/examples/chart-values-comment-example.yaml" 2>"$WORK/err" || not_ok "helm template (values.yaml example)" "$(cat "$WORK/err")"
}

part_crds() {
  section "CRDs applied server-side, examples validated by the API server"
  check "kubectl apply --server-side -f crds/" kubectl apply --server-side -f "$ROOT/crds/"
  check "CRDs Established" kubectl wait --for=condition=Established --timeout=60s \
    crd/llmproviders.llm-mcp-hub.dev crd/hubgateways.llm-mcp-hub.dev
  fresh_ns examples

  extract_examples
  local n=0 f crs
  for f in "$WORK"/examples/*.yaml; do
    crs="$(grep -cE '^kind: (LLMProvider|HubGateway)$' "$f")"
    [ "$crs" -gt 0 ] || { not_ok "$(basename "$f") holds an LLMProvider or HubGateway"; continue; }
    n=$((n + crs))
    check "$(basename "$f" .yaml): $crs custom resources pass kubectl apply --dry-run=server" \
      kubectl apply --dry-run=server -n examples -f "$f"
  done
  check "examples found in README.md, docs/ and the chart ($n custom resources)" test "$n" -ge 4

  section "each CEL rule rejects an invalid object with its message"
  cel_rules
  printer_columns
  explain_fields

  kubectl delete namespace examples --wait=false >/dev/null 2>&1
  check "CRDs deleted (helm installs them next)" kubectl delete --wait=true -f "$ROOT/crds/"
}

provider() { # name, extra spec lines
  printf 'apiVersion: llm-mcp-hub.dev/v1alpha1\nkind: LLMProvider\nmetadata: {name: %s}\nspec:\n  kind: claude\n  credentials: {accounts: [{name: main, secretRef: {name: claude-oauth}}]}\n%s\n' "$1" "${2:-}"
}
gateway() { # name, extra spec lines
  printf 'apiVersion: llm-mcp-hub.dev/v1alpha1\nkind: HubGateway\nmetadata: {name: %s}\nspec:\n  apiKeysSecretRef: {name: hub-api-keys}\n%s\n' "$1" "${2:-}"
}
# rejected NAME MESSAGE YAML: the API server refuses the object with MESSAGE.
rejected() {
  local name="$1" msg="$2" out
  if out="$(kubectl apply --dry-run=server -n examples -f - 2>&1 <<<"$3")"; then
    not_ok "$name: rejected" "accepted: $out"
  elif grep -qF -- "$msg" <<<"$out"; then
    ok "$name: rejected with \"$msg\""
    covered+=("$msg")
  else
    not_ok "$name: rejected with \"$msg\"" "$out"
  fi
}
accepted() { # NAME YAML: the API server accepts the object
  local out
  if out="$(kubectl apply --dry-run=server -n examples -f - 2>&1 <<<"$2")"; then ok "$1: accepted"; else not_ok "$1: accepted" "$out"; fi
}

cel_rules() {
  covered=()
  local p_name="name must be a DNS label of at most 40 characters starting with a letter (it prefixes the worker objects' names)"
  local g_name="name must be a DNS label of at most 40 characters starting with a letter (it prefixes the gateway objects' names)"
  local long40 long41
  long40="p$(printf '%039d' 0)"
  long41="p$(printf '%040d' 0)"
  # Each rejected case next to an accepted one that differs only in what the rule is about.
  accepted "LLMProvider named with 40 characters" "$(provider "$long40")"
  rejected "LLMProvider named with 41 characters" "$p_name" "$(provider "$long41")"
  rejected "LLMProvider named 7claude (a DNS subdomain, not starting with a letter)" "$p_name" "$(provider 7claude)"
  rejected "LLMProvider named claude.main" "$p_name" "$(provider claude.main)"
  accepted "HubGateway named with 40 characters" "$(gateway "$long40")"
  rejected "HubGateway named with 41 characters" "$g_name" "$(gateway "$long41")"
  rejected "HubGateway named 7hub" "$g_name" "$(gateway 7hub)"

  accepted "models.default in models.allowed" "$(provider m1 '  models: {allowed: [sonnet, opus], default: opus}')"
  accepted "models.default with models.allowed empty" "$(provider m2 '  models: {default: opus}')"
  rejected "models.default outside models.allowed" "models.default must be one of models.allowed" \
    "$(provider m3 '  models: {allowed: [sonnet], default: opus}')"

  accepted "sessionStore External with external" \
    "$(gateway s1 '  sessionStore: {mode: External, external: {urlSecretRef: {name: redis-url}}}')"
  rejected "sessionStore External without external" "sessionStore.external is required when sessionStore.mode is External" \
    "$(gateway s2 '  sessionStore: {mode: External}')"

  # A transition rule: needs an existing object.
  local out msg="kind is immutable; create a new LLMProvider instead"
  provider immutable | kubectl apply -n examples -f - >/dev/null
  check "LLMProvider immutable: other fields may change" \
    kubectl patch llmp immutable -n examples --type merge -p '{"spec":{"replicas":2}}'
  if out="$(kubectl patch llmp immutable -n examples --type merge -p '{"spec":{"kind":"gemini"}}' 2>&1)"; then
    not_ok "changing spec.kind: rejected" "accepted: $out"
  elif grep -qF "$msg" <<<"$out"; then
    ok "changing spec.kind: rejected with \"$msg\""
    covered+=("$msg")
  else
    not_ok "changing spec.kind: rejected with \"$msg\"" "$out"
  fi

  # Every rule of the CRDs has a case above: a new rule without one fails here.
  local missing
  missing="$(kubectl get crd llmproviders.llm-mcp-hub.dev hubgateways.llm-mcp-hub.dev -o json | python3 -c '
import json, sys
covered = set(sys.argv[1:])
def walk(n):
    if isinstance(n, dict):
        for v in n.get("x-kubernetes-validations", []):
            if v["message"] not in covered:
                print(v["rule"], "=>", v["message"])
        for v in n.values(): walk(v)
    elif isinstance(n, list):
        for v in n: walk(v)
for c in json.load(sys.stdin)["items"]: walk(c["spec"])
' "${covered[@]}")"
  if [ -z "$missing" ]; then ok "every CEL rule of the CRDs has a rejected case"; else not_ok "every CEL rule of the CRDs has a rejected case" "no case for: $missing"; fi
}

# The header of `kubectl get` for a resource: the CRD's printer columns (-o wide: all of them).
expected_header() { # crd, wide(0/1)
  kubectl get crd "$1" -o json | python3 -c '
import json, sys
wide = sys.argv[1] == "1"
cols = json.load(sys.stdin)["spec"]["versions"][0].get("additionalPrinterColumns", [])
print(" ".join(["NAME"] + [c["name"].upper() for c in cols if wide or c.get("priority", 0) == 0]))' "$2"
}
header_is() { # expected, kubectl get args...
  local want="$1" got
  shift
  got="$(kubectl get "$@" | head -n1 | tr -s ' ' | sed 's/ $//')"
  [ "$got" = "$want" ] || { echo "want: $want"; echo "got:  $got"; return 1; }
}

printer_columns() {
  section "printer columns and short names"
  kubectl apply -n examples -f "$WORK/examples/kubernetes.md:"*.yaml >/dev/null 2>&1 \
    || not_ok "apply the docs' example" "$(kubectl apply -n examples -f "$WORK/examples/kubernetes.md:"*.yaml 2>&1)"
  local p g
  p="$(expected_header llmproviders.llm-mcp-hub.dev 0)"
  g="$(expected_header hubgateways.llm-mcp-hub.dev 0)"
  check "kubectl get llmp: $p" header_is "$p" llmp -n examples
  check "kubectl get hgw: $g" header_is "$g" hgw -n examples
  check "kubectl get llmp -o wide: $(expected_header llmproviders.llm-mcp-hub.dev 1)" \
    header_is "$(expected_header llmproviders.llm-mcp-hub.dev 1)" llmp -n examples -o wide
  check "kubectl get llmp,hgw lists both kinds" bash -c \
    'out="$(kubectl get llmp,hgw -n examples)" && grep -q "^llmprovider.llm-mcp-hub.dev/claude " <<<"$out" && grep -q "^hubgateway.llm-mcp-hub.dev/hub " <<<"$out"'
  check "category llm-mcp-hub lists both kinds" bash -c \
    'out="$(kubectl get llm-mcp-hub -n examples)" && grep -q "^llmprovider.llm-mcp-hub.dev/claude " <<<"$out" && grep -q "^hubgateway.llm-mcp-hub.dev/hub " <<<"$out"'
  check "the KIND and MODELS columns show the spec" bash -c \
    'kubectl get llmp claude -n examples --no-headers | tr -s " " | grep -qF "claude claude [\"sonnet\",\"opus\",\"haiku\"]"'
  # docs/kubernetes.md shows `kubectl get llm-mcp-hub`: its headers are the real ones.
  local doc_headers
  doc_headers="$(sed -n '/^\$ kubectl get llm-mcp-hub$/,/^```$/p' "$ROOT/docs/kubernetes.md" | grep '^NAME' | tr -s ' ' | sed 's/ $//')"
  check "docs/kubernetes.md's \`kubectl get llm-mcp-hub\` headers are the real ones" \
    same "$(printf '%s\n%s' "$p" "$g")" "$doc_headers"
}

explain_fields() {
  local kind
  for kind in llmproviders hubgateways; do
    # explain reads the OpenAPI document, which the API server publishes a moment after the CRD.
    eventually 30 kubectl explain "$kind.spec" >/dev/null 2>&1
    check "kubectl explain $kind.spec: every field listed, with a description" bash -c '
      kind="$1"
      fields="$(kubectl get crd "$kind.llm-mcp-hub.dev" -o jsonpath="{.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties}" \
        | python3 -c "import json,sys; print(\"\n\".join(sorted(json.load(sys.stdin))))")"
      out="$(kubectl explain "$kind.spec")" || exit 1
      printf "%s\n" "$out" | python3 -c "
import re, sys
fields = sys.argv[1].split()
lines = sys.stdin.read().split(\"\\n\")
bad = []
for f in fields:
    idx = [i for i, l in enumerate(lines) if re.match(r\"^  \" + re.escape(f) + r\"\t<\", l)]
    if not idx:
        bad.append(f + \": not listed\"); continue
    rest = [l for l in lines[idx[0] + 1 :] if not l.startswith(\"  enum:\")]
    if not rest or not rest[0].startswith(\"    \") or not rest[0].strip():
        bad.append(f + \": no description\")
print(\"\\n\".join(bad)); sys.exit(1 if bad else 0)
" "$fields"' _ "$kind"
  done
}

# ---------------------------------------------------------------------------------------------
# Everything a release made, by kind/namespace/name, from `helm get manifest`.
release_objects() { # release, namespace
  helm get manifest "$1" -n "$2" | python3 -c '
import re, sys
for doc in re.split(r"^---", sys.stdin.read(), flags=re.M):
    kind = re.search(r"^kind: (\S+)", doc, re.M)
    meta = re.search(r"^metadata:\n((?:  .*\n)+)", doc, re.M)
    if not kind or not meta: continue
    name = re.search(r"^  name: (\S+)", meta.group(1), re.M)
    ns = re.search(r"^  namespace: (\S+)", meta.group(1), re.M)
    print(kind.group(1), ns.group(1) if ns else "-", name.group(1))'
}
all_exist() { # file of "kind ns name"
  local kind ns name bad=0
  while read -r kind ns name; do
    if [ "$ns" = "-" ]; then exists "$kind" "$name" || { echo "missing: $kind $name"; bad=1; }
    else exists "$kind" "$name" -n "$ns" || { echo "missing: $kind $ns/$name"; bad=1; }; fi
  done <"$1"
  return $bad
}
# Nothing of any listable kind, in any namespace, carries the release's instance label.
nothing_labelled() { # label selector
  local kinds left
  # (Events are not the release's; ComponentStatus and v1 Endpoints are deprecated and warn.)
  kinds="$(kubectl api-resources --verbs=list -o name | grep -vE '^(events|componentstatuses|endpoints)($|\.)' | paste -sd, -)"
  left="$(kubectl get "$kinds" -A -l "$1" -o name 2>&1)"
  [ -z "$left" ] || { echo "$left"; return 1; }
}

part_helm() {
  section "helm install, upgrade, uninstall of charts/llm-mcp-hub"
  local ns=helm-test rel=hub
  kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null 2>&1
  check "no CRDs before the install" gone crd llmproviders.llm-mcp-hub.dev
  # The default install serves its own namespace, with its permissions bound only there.
  check "default values: a RoleBinding in $ns, no ClusterRoleBinding, the operator told $ns" bash -c "
    out=\$(helm template $rel $CHART --namespace $ns) &&
    ! grep -q '^kind: ClusterRoleBinding' <<<\"\$out\" &&
    grep -A3 '^kind: RoleBinding' <<<\"\$out\" | grep -q '^  name: $rel-operator\$' &&
    grep -A1 'name: LLM_MCP_HUB_WATCH_NAMESPACE' <<<\"\$out\" | grep -q 'value: \"$ns\"'"
  check "helm install $rel charts/llm-mcp-hub --namespace $ns --create-namespace --set operator.watchAllNamespaces=true" \
    helm install "$rel" "$CHART" --namespace "$ns" --create-namespace --set operator.watchAllNamespaces=true
  release_objects "$rel" "$ns" >"$WORK/release1"
  check "CRDs installed by helm and Established" kubectl wait --for=condition=Established --timeout=60s \
    crd/llmproviders.llm-mcp-hub.dev crd/hubgateways.llm-mcp-hub.dev
  check "every object of the release exists ($(wc -l <"$WORK/release1") objects)" all_exist "$WORK/release1"
  check "RBAC: ClusterRole, ClusterRoleBinding, leader-election Role and RoleBinding, ServiceAccount" bash -c "
    kubectl get clusterrole/$rel-operator clusterrolebinding/$rel-operator >/dev/null &&
    kubectl get -n $ns role/$rel-operator-leader-election rolebinding/$rel-operator-leader-election serviceaccount/$rel-operator >/dev/null"
  check "operator Deployment with 1 replica" \
    test "$(kubectl get deploy "$rel-operator" -n "$ns" -o jsonpath='{.spec.replicas}')" = 1
  check "watchAllNamespaces: no namespace given to the operator" test -z "$(kubectl get deploy "$rel-operator" -n "$ns" \
    -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="LLM_MCP_HUB_WATCH_NAMESPACE")].value}')"

  # Other values: two replicas, one watched namespace (a RoleBinding replaces the
  # ClusterRoleBinding), and the optional HubGateway and LLMProviders.
  check "helm upgrade with ci-values.yaml and operator.watchNamespace=$ns" \
    helm upgrade "$rel" "$CHART" --namespace "$ns" -f "$CHART/ci-values.yaml" --set operator.watchNamespace="$ns" \
      --set operator.watchAllNamespaces=false
  release_objects "$rel" "$ns" >"$WORK/release2"
  check "every object of the upgraded release exists ($(wc -l <"$WORK/release2") objects)" all_exist "$WORK/release2"
  check "operator Deployment scaled to 2" \
    test "$(kubectl get deploy "$rel-operator" -n "$ns" -o jsonpath='{.spec.replicas}')" = 2
  check "operator watches $ns" test "$(kubectl get deploy "$rel-operator" -n "$ns" \
    -o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="LLM_MCP_HUB_WATCH_NAMESPACE")].value}')" = "$ns"
  check "ClusterRoleBinding removed by the upgrade" gone clusterrolebinding "$rel-operator"
  check "RoleBinding in $ns instead" exists rolebinding "$rel-operator" -n "$ns"
  check "the chart's HubGateway and LLMProviders created" exists hgw/hub llmp/claude llmp/gemini -n "$ns"
  local sa="system:serviceaccount:$ns:$rel-operator"
  check "watchNamespace: the operator's rules in $ns (can-i --list)" \
    same "$(printf '%s\n' "$(operator_rules)" "$(lease_rules)" | sort)" "$(can_i "$sa" "$ns")"
  check "watchNamespace: no rules in another namespace" same "" "$(can_i "$sa" default)"
  check "helm history shows 2 revisions" test "$(helm history "$rel" -n "$ns" -o json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 2

  check "helm uninstall $rel" helm uninstall "$rel" --namespace "$ns" --wait
  cat "$WORK/release1" "$WORK/release2" | sort -u >"$WORK/released"
  check "no object of either revision is left" bash -c '
    while read -r kind ns name; do
      if [ "$ns" = "-" ]; then args=("$kind" "$name"); else args=("$kind" "$name" -n "$ns"); fi
      if kubectl get "${args[@]}" >/dev/null 2>&1; then echo "left: $kind $ns/$name"; bad=1; fi
    done <"$1"; exit ${bad:-0}' _ "$WORK/released"
  check "nothing labelled app.kubernetes.io/instance=$rel in any namespace" nothing_labelled "app.kubernetes.io/instance=$rel"
  check "helm keeps the CRDs (by design: helm never deletes CRDs it installed from crds/)" \
    exists crd llmproviders.llm-mcp-hub.dev hubgateways.llm-mcp-hub.dev
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1
}

# ---------------------------------------------------------------------------------------------
OP_NS=llm-mcp-hub
OP_REL=hub
APP_NS=demo

# A kubeconfig with the operator ServiceAccount's token (the permissions the chart gives it).
sa_kubeconfig() { # namespace, serviceaccount, file
  local token server ca
  token="$(kubectl create token "$2" -n "$1" --duration=2h)" || return 1
  server="$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')"
  cat >"$3" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: plane, cluster: {server: "$server", certificate-authority: "$ca"}}]
users: [{name: $2, user: {token: "$token"}}]
contexts: [{name: plane, context: {cluster: plane, user: $2, namespace: $1}}]
current-context: plane
EOF
}

declare -A OP_PID OP_PORT
start_operator() { # identity
  local id="$1" port
  port="$(free_port)"
  KUBECONFIG="$WORK/operator.kubeconfig" POD_NAMESPACE="$OP_NS" RUST_LOG=info \
    "$LLM_MCP_HUB_OPERATOR_BIN" --identity "$id" --listen "127.0.0.1:$port" --log-format text \
    >"$WORK/operator-$id.log" 2>&1 &
  OP_PID[$id]=$!
  OP_PORT[$id]=$port
  PIDS+=("$!")
}
leader_gauge() { # identity -> 0/1 from /metrics
  python3 - "${OP_PORT[$1]}" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=2).read().decode()
print(next(l.split()[1] for l in body.splitlines() if l.startswith("llm_mcp_hub_operator_leader ")))
PY
}
holder() { kubectl get lease llm-mcp-hub-operator -n "$OP_NS" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null; }
is_leader() { [ "$(holder)" = "$1" ] && [ "$(leader_gauge "$1" 2>/dev/null)" = 1 ]; }
show_logs() { for f in "$WORK"/operator-*.log; do printf -- '--- %s\n' "$f"; tail -n 20 "$f"; done; }

# The RBAC rules a subject holds in a namespace, as `kubectl auth can-i --list` reports them,
# less what every authenticated user holds; one "resource verbs" line each, sorted.
can_i() { # subject, namespace
  kubectl auth can-i --list --as="$1" -n "$2" | python3 -c '
import sys
lines = sys.stdin.read().splitlines()
head = lines[0]
c1, c2, c3 = head.index("Non-Resource URLs"), head.index("Resource Names"), head.index("Verbs")
skip = {  # what every authenticated identity holds (system:basic-user)
    "selfsubjectreviews.authentication.k8s.io", "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io"}
rows = set()
for l in lines[1:]:
    res, names, verbs = l[:c1].strip(), l[c2:c3].strip(), l[c3:].strip()
    if not res or res in skip:  # non-resource URLs: discovery, health, version (system:discovery)
        continue
    verbs = ",".join(sorted(verbs.strip("[]").split()))
    rows.add(f"{res} {names} {verbs}" if names != "[]" else f"{res} {verbs}")
print("\n".join(sorted(rows)))'
}
same() { # want, got
  [ "$1" = "$2" ] || { diff <(printf '%s\n' "$1") <(printf '%s\n' "$2") | sed 's/^</want/; s/^>/got /'; return 1; }
}

# The rules docs/kubernetes.md gives the operator, as can_i prints them. The docs: "read
# LLMProviders/HubGateways and patch their status; manage only the kinds it creates; read Secrets;
# get/list/watch EndpointSlices; create Events" (Secrets are also among the kinds it creates: the
# managed Redis password, the worker tokens).
operator_rules() {
  local manage="create,delete,get,list,patch,watch"
  printf '%s\n' \
    "configmaps $manage" "deployments.apps $manage" "endpointslices.discovery.k8s.io get,list,watch" \
    "events.events.k8s.io create,patch" "hubgateways.llm-mcp-hub.dev get,list,watch" \
    "hubgateways.llm-mcp-hub.dev/status get,patch" "ingresses.networking.k8s.io $manage" \
    "llmproviders.llm-mcp-hub.dev get,list,watch" "llmproviders.llm-mcp-hub.dev/status get,patch" \
    "networkpolicies.networking.k8s.io $manage" "poddisruptionbudgets.policy $manage" \
    "rolebindings.rbac.authorization.k8s.io $manage" "roles.rbac.authorization.k8s.io $manage" \
    "secrets $manage" "serviceaccounts $manage" "services $manage" "statefulsets.apps $manage" | sort
}
lease_rules() {
  printf '%s\n' "leases.coordination.k8s.io create" "leases.coordination.k8s.io [llm-mcp-hub-operator] get,update"
}

# docs_objects_match NS PROVIDER ACCOUNT GATEWAY: the objects labelled managed-by the operator
# in NS are exactly those the tables of docs/kubernetes.md's "What the operator creates" name:
# every name of a row exists as one of the row's kinds, and every object matches a row.
docs_objects_match() {
  local kinds
  kinds="$(kubectl api-resources --verbs=list --namespaced -o name \
    | grep -vE '^(events|endpoints|endpointslices)($|\.)' | paste -sd, -)"
  sed -n '/^## What the operator creates/,/^## Contract/p' "$ROOT/docs/kubernetes.md" >"$WORK/doc-tables"
  kubectl get "$kinds" -n "$1" -l app.kubernetes.io/managed-by=llm-mcp-hub-operator -o json \
    | python3 -c '
import json, re, sys
tables, p, a, g = sys.argv[1:]
KINDS = ["ServiceAccount", "Service", "Deployment", "StatefulSet", "ConfigMap", "Secret",
         "PodDisruptionBudget", "NetworkPolicy", "Ingress", "RoleBinding", "Role"]
rows = []
for line in open(tables):
    cols = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cols) < 2 or not line.startswith("|"):
        continue
    kinds = set(re.findall(r"\b(" + "|".join(KINDS) + r")\b", cols[0]))
    names = {n.replace("<p>", p).replace("<account>", a).replace("<g>", g)
             for n in re.findall(r"`(<[pg]>[^`]*)`", cols[1])}
    if kinds and names:
        rows.append((kinds, names))
objs = {(o["kind"], o["metadata"]["name"]) for o in json.load(sys.stdin)["items"]}
bad = []
for kinds, names in rows:
    for n in names:
        if not any(k in kinds and on == n for k, on in objs):
            bad.append("documented, missing: %s (%s)" % (n, " or ".join(sorted(kinds))))
for k, n in sorted(objs):
    if not any(k in kinds and n in names for kinds, names in rows):
        bad.append(f"made, not documented: {k} {n}")
print(f"{len(objs)} objects, {len(rows)} table rows")
print("\n".join(bad))
sys.exit(1 if bad or not rows else 0)' "$WORK/doc-tables" "$2" "$3" "$4"
}

part_operator() {
  section "the operator as a process, with the chart's ServiceAccount"
  : "${LLM_MCP_HUB_OPERATOR_BIN:?set LLM_MCP_HUB_OPERATOR_BIN to the llm-mcp-hub-operator binary}"
  kubectl delete namespace "$APP_NS" --ignore-not-found --wait=true >/dev/null 2>&1
  # Cluster-wide: the operator serves $APP_NS, not its own namespace.
  check "helm install $OP_REL charts/llm-mcp-hub --namespace $OP_NS --create-namespace --set operator.watchAllNamespaces=true" \
    helm install "$OP_REL" "$CHART" --namespace "$OP_NS" --create-namespace --set operator.watchAllNamespaces=true
  local sa="$OP_REL-operator"
  check "a token for ServiceAccount $OP_NS/$sa" sa_kubeconfig "$OP_NS" "$sa" "$WORK/operator.kubeconfig"

  # RBAC: what the chart grants is what docs/kubernetes.md says, nothing more.
  section "RBAC as the API server enforces it (kubectl auth can-i --list)"
  local manage="create,delete,get,list,patch,watch" op_rules
  op_rules="$(operator_rules)"
  # The kinds it may manage are exactly the kinds the docs' "What the operator creates" lists.
  local doc_kinds rbac_kinds
  doc_kinds="$(sed -n '/^## What the operator creates/,/^## Contract/p' "$ROOT/docs/kubernetes.md" \
    | grep -oE '\b(Deployment|StatefulSet|Service|ServiceAccount|ConfigMap|Secret|PodDisruptionBudget|NetworkPolicy|Ingress|Role|RoleBinding)\b' \
    | sort -u | tr '\n' ' ')"
  rbac_kinds="$(printf '%s\n' "$op_rules" | grep -F "$manage" | cut -d' ' -f1 | sed 's/\..*//' \
    | python3 -c 'import sys
m = {"configmaps": "ConfigMap", "deployments": "Deployment", "ingresses": "Ingress", "networkpolicies": "NetworkPolicy",
     "poddisruptionbudgets": "PodDisruptionBudget", "rolebindings": "RoleBinding", "roles": "Role", "secrets": "Secret",
     "serviceaccounts": "ServiceAccount", "services": "Service", "statefulsets": "StatefulSet"}
print(" ".join(sorted(m[l.strip()] for l in sys.stdin)) + " ")')"
  check "the kinds the operator may write are those docs/kubernetes.md says it creates" same "$doc_kinds" "$rbac_kinds"
  check "operator ServiceAccount in another namespace: exactly the documented rules" \
    same "$op_rules" "$(can_i "system:serviceaccount:$OP_NS:$sa" default)"
  check "operator ServiceAccount in its own namespace: those and its own Lease only" \
    same "$(printf '%s\n' "$op_rules" "$(lease_rules)" | sort)" \
    "$(can_i "system:serviceaccount:$OP_NS:$sa" "$OP_NS")"

  section "two operator processes: one leader, hand-over"
  start_operator op-a
  if eventually 60 is_leader op-a; then ok "op-a leads (Lease holder, leader gauge 1)"; else not_ok "op-a leads" "$(show_logs)"; fi
  start_operator op-b
  sleep 5
  check "op-b waits: the Lease stays with op-a, op-b's leader gauge is 0" \
    bash -c "[ \"\$(kubectl get lease llm-mcp-hub-operator -n $OP_NS -o jsonpath='{.spec.holderIdentity}')\" = op-a ] && [ \"\$(curl -fsS http://127.0.0.1:${OP_PORT[op-b]}/metrics | awk '/^llm_mcp_hub_operator_leader /{print \$2}')\" = 0 ]"

  section "the docs' example, reconciled by the leader"
  extract_examples
  fresh_ns "$APP_NS"
  kubectl create secret generic claude-oauth -n "$APP_NS" --from-literal=token=t1 >/dev/null
  kubectl create secret generic hub-api-keys -n "$APP_NS" --from-literal=keys='[[keys]]' >/dev/null
  check "apply the example of docs/kubernetes.md" kubectl apply -n "$APP_NS" -f "$(ls "$WORK"/examples/kubernetes.md:*.yaml 2>/dev/null | head -n1 || echo /nonexistent)"
  local obj
  for obj in deployment/claude-main service/claude-workers poddisruptionbudget/claude-workers \
    networkpolicy/claude-workers serviceaccount/hub-router role/hub-router rolebinding/hub-router \
    configmap/hub-router deployment/hub-router service/hub-router ingress/hub secret/hub-redis-auth \
    service/hub-redis statefulset/hub-redis networkpolicy/hub-redis; do
    if eventually 60 exists "$obj" -n "$APP_NS"; then ok "$obj created"; else not_ok "$obj created" "$(show_logs)"; fi
  done
  # Both ways: what docs/kubernetes.md's tables list is what the operator made, nothing else.
  check "the operator's objects are those of the docs' \"What the operator creates\" tables" \
    docs_objects_match "$APP_NS" claude main hub
  check "LLMProvider status: observed generation 1, Ready False (no kubelet runs the pods)" eventually 60 bash -c \
    "[ \"\$(kubectl get llmp claude -n $APP_NS -o jsonpath='{.status.observedGeneration} {.status.conditions[?(@.type==\"Ready\")].status}')\" = '1 False' ]"
  check "HubGateway status: url and served providers" eventually 60 bash -c \
    "[ \"\$(kubectl get hgw hub -n $APP_NS -o jsonpath='{.status.url} {.status.servedProviders}')\" = 'https://hub.example.com [\"claude\"]' ]"
  check "an Event from the operator on the LLMProvider" eventually 30 bash -c \
    "kubectl get events.events.k8s.io -n $APP_NS -o jsonpath='{range .items[*]}{.regarding.kind}/{.regarding.name} {.reportingController}{\"\n\"}{end}' | grep -qx 'LLMProvider/claude llm-mcp-hub-operator'"

  # The router's permissions, from the Role the operator made for it.
  check "router ServiceAccount: get/list/watch endpointslices and llmproviders, nothing more" \
    same "$(printf '%s\n' "endpointslices.discovery.k8s.io get,list,watch" "llmproviders.llm-mcp-hub.dev get,list,watch")" \
    "$(can_i "system:serviceaccount:$APP_NS:hub-router" "$APP_NS")"
  check "router ServiceAccount: nothing in another namespace" \
    same "" "$(can_i "system:serviceaccount:$APP_NS:hub-router" default)"

  section "leader hand-over"
  local t0=$SECONDS
  kill -TERM "${OP_PID[op-a]}"
  if eventually 30 is_leader op-b; then ok "SIGTERM to op-a: op-b leads after $((SECONDS - t0))s (op-a released the Lease)"
  else not_ok "SIGTERM to op-a: op-b leads" "$(show_logs)"; fi
  local rc=0
  wait "${OP_PID[op-a]}" || rc=$?
  check "op-a exited with status 0 after SIGTERM" test "$rc" = 0
  # The new leader reconciles: a change made now is applied by op-b.
  kubectl patch llmp claude -n "$APP_NS" --type merge -p '{"spec":{"replicas":3}}' >/dev/null
  check "op-b reconciles: a replicas change reaches the Deployment" eventually 60 bash -c \
    "[ \"\$(kubectl get deploy claude-main -n $APP_NS -o jsonpath='{.spec.replicas}')\" = 3 ]"
  start_operator op-c
  sleep 3
  t0=$SECONDS
  { kill -KILL "${OP_PID[op-b]}" && wait "${OP_PID[op-b]}"; } 2>/dev/null
  if eventually 60 is_leader op-c; then ok "SIGKILL to op-b: op-c leads after $((SECONDS - t0))s (the 15 s Lease expired)"
  else not_ok "SIGKILL to op-b: op-c leads" "$(show_logs)"; fi
  check "a SIGKILLed leader is not replaced before its Lease runs out (>= 10 s)" test $((SECONDS - t0)) -ge 10

  kill -TERM "${OP_PID[op-c]}" 2>/dev/null
  wait "${OP_PID[op-c]}" 2>/dev/null
  check "op-c released the Lease on SIGTERM" test -z "$(holder)"
  kubectl delete namespace "$APP_NS" --wait=false >/dev/null 2>&1
  helm uninstall "$OP_REL" -n "$OP_NS" >/dev/null 2>&1
}

parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(crds helm operator)
for p in "${parts[@]}"; do
  case "$p" in
    crds | helm | operator) "part_$p" ;;
    *) echo "checks.sh: unknown part $p" >&2; exit 2 ;;
  esac
done
printf '\nkube checks: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
