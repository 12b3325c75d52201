#!/usr/bin/env bash
# Builds both images from their Dockerfiles without a Docker daemon, then runs the hub image the
# way a pod runs it and gets one chat turn through it.
#
# - Builder: buildah (Debian's package), daemonless, `--isolation oci` (runc), host network for
#   the steps that fetch crates and npm packages.
# - Base images: no image registry is reachable from CI, so the bases the Dockerfiles name are
#   made here and passed as build arguments (the Dockerfiles are unchanged): Debian bookworm
#   (debootstrap) with gcc and this machine's Rust toolchain for the build stages; Debian trixie with
#   its Node.js 20 for the hub's runtime; Debian bookworm for the operator's runtime (instead of
#   distroless). Each gets this machine's CA bundle, so a TLS-inspecting proxy in front of the
#   registries is trusted inside the build as it is outside.
# - Run: podman, as uid 10001 with a read-only root filesystem and tmpfs at /tmp and /home/hub (the
#   writable paths of the pod contract), host network, as `llm-mcp-hub worker` whose claude talks to
#   the fake model server; a router on the host discovers it and answers one OpenAI request.
#
# Needs root, apt, the debug binaries (cargo build --workspace --bins) and tests/cli (npm ci).
# Everything lives under target/images-test; a second run reuses the bases and the build caches.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$HERE/lib.sh"
cd "$ROOT"
log() { printf '== images/test: %s\n' "$*" >&2; }
fail() { printf 'images/test: FAILED: %s\n' "$*" >&2; exit 1; }
RUST_SYSROOT="$(rustc --print sysroot)"
RUST_VERSION="$(rustc --version | cut -d' ' -f2)"

rootfs bookworm bookworm "ca-certificates gcc libc6-dev make perl pkg-config" || fail "the bookworm build base"
rootfs trixie trixie "ca-certificates nodejs npm" || fail "the trixie base"
rootfs runtime bookworm "ca-certificates" || fail "the runtime base"

# The build stages' Rust: this machine's toolchain, where the official image keeps it.
if [ ! -f "$WORK/rootfs-bookworm/usr/local/rust/.version" ] \
   || [ "$(cat "$WORK/rootfs-bookworm/usr/local/rust/.version")" != "$RUST_VERSION" ]; then
  rm -rf "$WORK/rootfs-bookworm/usr/local/rust"
  mkdir -p "$WORK/rootfs-bookworm/usr/local/rust" "$WORK/rootfs-bookworm/usr/local/cargo"
  cp -a "$RUST_SYSROOT/bin" "$RUST_SYSROOT/lib" "$RUST_SYSROOT/libexec" "$WORK/rootfs-bookworm/usr/local/rust/"
  echo "$RUST_VERSION" >"$WORK/rootfs-bookworm/usr/local/rust/.version"
fi
commit_base "$BASE/rust:$RUST_VERSION" "$WORK/rootfs-bookworm" \
  --env PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env CARGO_HOME=/usr/local/cargo --env CARGO_NET_GIT_FETCH_WITH_CLI=false
commit_base "$BASE/node:20-trixie" "$WORK/rootfs-trixie" \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
commit_base "$BASE/runtime:bookworm" "$WORK/rootfs-runtime" \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

build() {
  local dockerfile=$1 tag=$2; shift 2
  log "buildah build -f $dockerfile -t $tag"
  local t0=$SECONDS
  buildah "${STORE[@]}" build --quiet --isolation oci --network host "${LIMITS[@]}" \
    --layers -f "$dockerfile" -t "$tag" \
    --build-arg "RUST_IMAGE=$BASE/rust:$RUST_VERSION" \
    --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    "$@" . >"$WORK/build-$(basename "$(dirname "$dockerfile")").log" 2>&1 \
    || { tail -40 "$WORK/build-$(basename "$(dirname "$dockerfile")").log" >&2; fail "building $dockerfile"; }
  log "built $tag in $((SECONDS - t0))s"
}
build images/hub/Dockerfile localhost/llm-mcp-hub:test --build-arg "NODE_IMAGE=$BASE/node:20-trixie"
build images/operator/Dockerfile localhost/llm-mcp-hub-operator:test --build-arg "RUNTIME_IMAGE=$BASE/runtime:bookworm"

# As a pod runs it: uid 10001, read-only root, tmpfs where the pod has emptyDirs.
POD=(--rm --network host --read-only --user 10001:10001 --tmpfs /tmp:rw,mode=1777 --tmpfs /home/hub:rw,U "${LIMITS[@]}")
run() { podman "${STORE[@]}" run "${POD[@]}" "$@"; }

log "the images' metadata"
labels="$(buildah "${STORE[@]}" inspect --type image --format '{{.OCIv1.Config.Labels}}' localhost/llm-mcp-hub:test)"
user="$(buildah "${STORE[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' localhost/llm-mcp-hub:test)"
[ "$user" = "10001:10001" ] || fail "the hub image's user is '$user', not 10001:10001"
grep -q 'io.llm-mcp-hub.cli.claude:2.1.330' <<<"$labels" || fail "the hub image's labels: $labels"
op_user="$(buildah "${STORE[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' localhost/llm-mcp-hub-operator:test)"
[ "$op_user" = "10001:10001" ] || fail "the operator image's user is '$op_user'"

log "llm-mcp-hub --version in the image"
version="$(run localhost/llm-mcp-hub:test --version)"
printf '%s\n' "$version" >&2
grep -q '^claude 2.1.330 (in the tested range' <<<"$version" || fail "the image does not carry claude 2.1.330"
grep -q '^gemini 0.61.0 (in the tested range' <<<"$version" || fail "the image does not carry gemini 0.61.0"

log "the root filesystem is read-only; /tmp and the home are writable, as uid 10001"
run --entrypoint /bin/sh localhost/llm-mcp-hub:test -c \
  'id -u | grep -qx 10001 && ! touch /usr/local/bin/x 2>/dev/null && touch /tmp/x /home/hub/x' \
  || fail "the container's filesystem or user is not as the pod contract says"

log "the operator image prints its CRDs"
crds="$(podman "${STORE[@]}" run --rm --read-only --network none "${LIMITS[@]}" localhost/llm-mcp-hub-operator:test --print-crds)" \
  || fail "the operator image did not run"
grep -q 'name: llmproviders.llm-mcp-hub.dev' <<<"$crds" || fail "the operator image did not print its CRDs"

log "a worker in the image answers a chat turn through a router on the host"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug"
[ -x "$BIN/llm-mcp-hub" ] && [ -x "$BIN/fake-models" ] || fail "build the binaries first: cargo build --workspace --bins"
RUNDIR="$(mktemp -d "$WORK/run-XXXXXX")"
chmod 755 "$RUNDIR"
pids=()
cleanup() {
  podman "${STORE[@]}" rm -f -t 2 hub-image-worker >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$RUNDIR"
}
trap cleanup EXIT
"$BIN/fake-models" >"$RUNDIR/fake.out" 2>"$RUNDIR/fake.err" &
pids+=($!)
for _ in $(seq 100); do [ -s "$RUNDIR/fake.out" ] && break; sleep 0.1; done
anthropic="$(tr ' ' '\n' <"$RUNDIR/fake.out" | sed -n 's/^anthropic=//p')"
[ -n "$anthropic" ] || fail "the fake model server did not start"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
worker_port="$(free_port)"
router_port="$(free_port)"
# The test's only change to the image: a wrapper that points the image's claude at the fake model
# (the hub drops ANTHROPIC_BASE_URL from a CLI's environment, as it must in production).
mkdir -p "$RUNDIR/wrap" "$RUNDIR/token"
printf '#!/bin/sh\nexport ANTHROPIC_BASE_URL=%s\nexec /opt/llm-mcp-hub/cli/node_modules/.bin/claude "$@"\n' "$anthropic" >"$RUNDIR/wrap/claude"
chmod 755 "$RUNDIR/wrap" "$RUNDIR/wrap/claude"
head -c 24 /dev/urandom | base64 | tr -d '/+=' >"$RUNDIR/token/token"
chmod 755 "$RUNDIR/token" && chmod 644 "$RUNDIR/token/token"
podman "${STORE[@]}" run -d --name hub-image-worker "${POD[@]}" \
  -v "$RUNDIR/wrap:/wrap:ro" -v "$RUNDIR/token:/etc/llm-mcp-hub/worker-token:ro" \
  -e CLAUDE_CODE_OAUTH_TOKEN=test-oauth-token \
  -e LLM_MCP_HUB_PROVIDERS__CLAUDE__COMMAND=/wrap/claude \
  -e LLM_MCP_HUB_WORKER_TOKEN_FILE=/etc/llm-mcp-hub/worker-token/token \
  localhost/llm-mcp-hub:test worker --provider claude --account image --listen "127.0.0.1:$worker_port" >/dev/null
cat >"$RUNDIR/router.toml" <<EOF
listen = "127.0.0.1:$router_port"
scratch_dir = "$RUNDIR/scratch"

[[discovery.static]]
provider = "claude"
url = "http://127.0.0.1:$worker_port"
token_file = "$RUNDIR/token/token"
EOF
"$BIN/llm-mcp-hub" router --config "$RUNDIR/router.toml" >"$RUNDIR/router.log" 2>&1 &
pids+=($!)
ready=""
for _ in $(seq 300); do
  if curl -sf "http://127.0.0.1:$router_port/v1/providers" | grep -q '"ready_workers":[1-9]'; then ready=1; break; fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  podman "${STORE[@]}" logs hub-image-worker >&2 || true
  tail -20 "$RUNDIR/router.log" >&2
  fail "the worker in the image did not become ready behind the router"
fi
answer="$(curl -sf "http://127.0.0.1:$router_port/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model": "claude", "messages": [{"role": "user", "content": "[[reply:hello from the image]]"}]}')" \
  || { podman "${STORE[@]}" logs hub-image-worker >&2 || true; fail "the chat request failed"; }
grep -q '"content":"hello from the image"' <<<"$answer" || fail "unexpected answer: $answer"
log "answer through the image: $answer"
log "all image checks passed"
