#!/usr/bin/env bash
# Builds the images Gantry's tests run, from scratch: nothing is ever pulled (the test
# machines reach no registry).
#
#   gantry-test/busybox:latest  FROM scratch + Debian's static busybox, its applets as
#                               symlinks (/bin/sh, wget, httpd, nc, ...) and a /tmp.
#   busybox:latest              the same image, tagged only when no busybox:latest exists,
#                               so the examples (which name busybox:latest) run here.
#
# Idempotent: an image that already exists is left alone (pass --force to rebuild).
set -euo pipefail

image=gantry-test/busybox:latest
force=0
[[ "${1:-}" == "--force" ]] && force=1

log() { printf 'images.sh: %s\n' "$*" >&2; }

if ! docker version >/dev/null 2>&1; then
    log "cannot reach the Docker engine (is Docker running? is DOCKER_HOST right?)"
    exit 1
fi

static_busybox() {
    # Debian's busybox-static ships a statically linked /bin/busybox; the plain `busybox`
    # package's binary is dynamic and would not run in an empty image.
    dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' &&
        [[ -x /bin/busybox ]]
}

install_busybox_static() {
    log "installing Debian's busybox-static"
    local sudo=""
    [[ "$(id -u)" != 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq busybox-static >/dev/null
}

build_busybox_image() {
    static_busybox || install_busybox_static
    local ctx
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' RETURN
    mkdir -p "$ctx/root/bin" "$ctx/root/tmp" "$ctx/root/etc" "$ctx/root/root"
    chmod 1777 "$ctx/root/tmp"
    cp /bin/busybox "$ctx/root/bin/busybox"
    # One symlink per applet at the path busybox itself names (bin/sh, usr/bin/wget, ...).
    local applet
    while read -r applet; do
        [[ -z "$applet" || "$applet" == "bin/busybox" ]] && continue
        mkdir -p "$ctx/root/$(dirname "$applet")"
        ln -sf /bin/busybox "$ctx/root/$applet"
    done < <(/bin/busybox --list-full)
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
        >"$ctx/root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$ctx/root/etc/group"
    cat >"$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY root/ /
LABEL org.opencontainers.image.title="gantry-test/busybox" \
      org.opencontainers.image.description="Debian static busybox, built from scratch for Gantry's tests"
CMD ["/bin/sh"]
DOCKERFILE
    log "building $image"
    local out
    if ! out=$(docker build --quiet --tag "$image" "$ctx" 2>&1); then
        printf '%s\n' "$out" >&2
        log "building $image failed"
        exit 1
    fi
}

if [[ $force == 1 ]] || ! docker image inspect "$image" >/dev/null 2>&1; then
    build_busybox_image
else
    log "$image already present"
fi

if ! docker image inspect busybox:latest >/dev/null 2>&1; then
    docker tag "$image" busybox:latest
    log "tagged $image as busybox:latest"
fi
