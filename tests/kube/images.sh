#!/usr/bin/env bash
# The images the node tests (node-test.sh) import into the node's containerd, built without a
# daemon or a registry (images/lib.sh), beside the project's own two images that images/test.sh
# builds from their Dockerfiles:
#   localhost/llm-mcp-hub-test/pause:3.10.1   the pod sandbox: pause.c of the k8s.io/kubernetes
#                                             module, linked statically
#   localhost/llm-mcp-hub-test/redis:7        Debian's redis-server (the managed Redis' image)
#   localhost/llm-mcp-hub-test/client:1       Debian's python3 with the official OpenAI SDK (the
#                                             in-cluster client, as n8n would be)
#   localhost/llm-mcp-hub-test/hub:node       the hub image, plus a `claude` first on PATH that
#                                             points the image's own claude at the fake model
#                                             server on the node's bridge (the only change)
# and writes them, with localhost/llm-mcp-hub-operator:test, to one archive (shared layers once).
#
#   tests/kube/images.sh FAKE_URL ARCHIVE
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../images/lib.sh
. "$HERE/../../images/lib.sh"
FAKE_URL="${1:?usage: images.sh FAKE_URL ARCHIVE}"
ARCHIVE="${2:?usage: images.sh FAKE_URL ARCHIVE}"
log() { printf '== node images: %s\n' "$*" >&2; }
fail() { printf 'node images: FAILED: %s\n' "$*" >&2; exit 1; }

for ref in localhost/llm-mcp-hub:test localhost/llm-mcp-hub-operator:test; do
  have_image "$ref" || fail "$ref is missing: run images/test.sh first"
done

# buildah from/copy/config/commit in one: $1 ref, $2 from, then `copy SRC DST` and `config ARGS`
# lines on stdin. Rebuilt every time: each is a few small files.
assemble() {
  local ref=$1 from=$2 ctr op a b
  ctr="$(buildah "${STORE[@]}" from --pull=never "$from")"
  while read -r op a b; do
    case "$op" in
      copy) buildah "${STORE[@]}" copy --quiet "$ctr" "$a" "$b" >/dev/null ;;
      config) eval "buildah \"\${STORE[@]}\" config $a $b \"\$ctr\"" ;;
      "") ;;
      *) fail "assemble: $op" ;;
    esac
  done
  buildah "${STORE[@]}" commit --quiet --rm "$ctr" "$ref" >/dev/null
}

# pause.c from the k8s.io/kubernetes module tests/kube/go.mod names.
kver="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$HERE/go.mod")"
src="$(cd "$HERE" && go mod download -json "k8s.io/kubernetes@$kver" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
mkdir -p "$WORK/pause"
if [ ! -x "$WORK/pause/pause" ] || [ "$src/build/pause/linux/pause.c" -nt "$WORK/pause/pause" ]; then
  log "pause (gcc -static $src/build/pause/linux/pause.c)"
  gcc -Os -static -DVERSION=v3.10.1 -o "$WORK/pause/pause" "$src/build/pause/linux/pause.c"
  strip "$WORK/pause/pause"
fi
if ! have_image "$BASE/pause:3.10.1"; then
  assemble "$BASE/pause:3.10.1" scratch <<EOF
copy $WORK/pause/pause /pause
config --os=linux --arch=amd64 --entrypoint='["/pause"]' --user=65535:65535
EOF
fi

rootfs redis bookworm "redis-server redis-tools"
commit_base "$BASE/redis:7" "$WORK/rootfs-redis" \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --user 999:999

# The OpenAI SDK at the version the host's SDK checks pin, installed by the host's pip into the
# image's Python (both CPython 3.11).
openai_pin="$(grep -E '^openai==' "$ROOT/tests/python/requirements.txt")"
rootfs client bookworm "python3 ca-certificates"
if [ ! -f "$WORK/rootfs-client/.sdk" ] || [ "$(cat "$WORK/rootfs-client/.sdk")" != "$openai_pin" ]; then
  log "client: pip install $openai_pin"
  python3 -m pip install --quiet --disable-pip-version-check --no-compile --upgrade --no-warn-conflicts --root-user-action=ignore \
    --target "$WORK/rootfs-client/usr/lib/python3/dist-packages" "$openai_pin"
  echo "$openai_pin" >"$WORK/rootfs-client/.sdk"
  buildah "${STORE[@]}" rmi "$BASE/client:1" >/dev/null 2>&1 || true
fi
commit_base "$BASE/client:1" "$WORK/rootfs-client" \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --user 10001:10001

log "hub:node (the hub image; its claude pointed at $FAKE_URL)"
mkdir -p "$WORK/node-wrap"
printf '#!/bin/sh\n# Test only: the image'"'"'s own claude, talking to the fake model server.\nexport ANTHROPIC_BASE_URL=%s\nexec /opt/llm-mcp-hub/cli/node_modules/.bin/claude "$@"\n' \
  "$FAKE_URL" >"$WORK/node-wrap/claude"
chmod 755 "$WORK/node-wrap/claude"
buildah "${STORE[@]}" rmi "$BASE/hub:node" >/dev/null 2>&1 || true
assemble "$BASE/hub:node" localhost/llm-mcp-hub:test <<EOF
copy $WORK/node-wrap/claude /opt/llm-mcp-hub-test/bin/claude
config --env=PATH=/opt/llm-mcp-hub-test/bin:/opt/llm-mcp-hub/cli/node_modules/.bin:/usr/local/bin:/usr/bin:/bin
EOF

log "writing $(basename "$ARCHIVE")"
rm -f "$ARCHIVE"
mkdir -p "$(dirname "$ARCHIVE")"
podman "${STORE[@]}" save --quiet --multi-image-archive --format docker-archive -o "$ARCHIVE" \
  "$BASE/pause:3.10.1" "$BASE/redis:7" "$BASE/client:1" "$BASE/hub:node" localhost/llm-mcp-hub-operator:test
