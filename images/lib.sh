# Shared by images/test.sh and tests/kube/images.sh (sourced, not run): a private container
# storage under target/images-test, and base images made with debootstrap, since no image
# registry is reachable from CI. Needs root, apt, buildah, podman, runc and debootstrap
# (installed when missing). Sets WORK, STORE, LIMITS, BASE and the functions below.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$ROOT/target/images-test"
mkdir -p "$WORK"

need=()
for tool in buildah podman runc debootstrap; do command -v "$tool" >/dev/null || need+=("$tool"); done
if [ ${#need[@]} -gt 0 ]; then
  printf '== images: installing %s\n' "${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# Private container storage and configuration: nothing of the machine's is read or changed.
cat >"$WORK/registries.conf" <<'EOF'
unqualified-search-registries = []
EOF
export CONTAINERS_REGISTRIES_CONF="$WORK/registries.conf"
STORE=(--root "$WORK/storage" --runroot "$WORK/run" --storage-driver overlay)
# This sandbox may not raise resource limits, and podman's defaults exceed its hard limits.
LIMITS=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=4096:4096")
CA_BUNDLE="${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
BASE=localhost/llm-mcp-hub-test

have_image() { buildah "${STORE[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# A minimal Debian `suite` with `packages` (installed by apt inside it) in $WORK/rootfs-<name>.
# A policy-rc.d keeps the packages' services from starting inside the chroot.
rootfs() {
  local name=$1 suite=$2 packages=$3 dir="$WORK/rootfs-$1"
  [ -f "$dir/.done" ] && return 0
  printf '== images: debootstrap %s (%s), then apt-get install %s\n' "$suite" "$name" "$packages" >&2
  rm -rf "$dir"
  debootstrap --variant=minbase "$suite" "$dir" http://deb.debian.org/debian >"$WORK/debootstrap-$name.log" 2>&1 \
    || { echo "images: debootstrap $suite failed (see $WORK/debootstrap-$name.log)" >&2; return 1; }
  printf '#!/bin/sh\nexit 101\n' >"$dir/usr/sbin/policy-rc.d"
  chmod 755 "$dir/usr/sbin/policy-rc.d"
  mount -t proc proc "$dir/proc"
  chroot "$dir" /bin/sh -c "export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && \
    apt-get install -y -qq --no-install-recommends $packages && apt-get clean" >>"$WORK/debootstrap-$name.log" 2>&1 \
    || { umount "$dir/proc"; echo "images: apt-get install in $suite failed (see $WORK/debootstrap-$name.log)" >&2; return 1; }
  umount "$dir/proc"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin
  touch "$dir/.done"
}

# Commits directory `dir` (plus this machine's CA bundle) as image `ref`, with `buildah config`
# settings (`--env …`, `--user …`).
commit_base() {
  local ref=$1 dir=$2; shift 2
  have_image "$ref" && return 0
  printf '== images: base image %s\n' "$ref" >&2
  local ctr
  ctr="$(buildah "${STORE[@]}" from scratch)"
  buildah "${STORE[@]}" copy --quiet "$ctr" "$dir" / >/dev/null
  buildah "${STORE[@]}" copy --quiet "$ctr" "$CA_BUNDLE" /etc/ssl/certs/ca-certificates.crt >/dev/null
  buildah "${STORE[@]}" config --os linux --arch amd64 --cmd /bin/sh "$@" "$ctr"
  buildah "${STORE[@]}" commit --quiet "$ctr" "$ref" >/dev/null
  buildah "${STORE[@]}" rm "$ctr" >/dev/null
}
