#!/usr/bin/env bash
# Builds the images Gantry's tests run, from scratch: nothing is ever pulled (the test
# machines reach no registry).
#
#   gantry-test/busybox:latest  FROM scratch + Debian's static busybox, its applets as
#                               symlinks (/bin/sh, wget, httpd, nc, ...) and a /tmp.
#   busybox:latest              the same image, tagged only when no busybox:latest exists,
#                               so the examples (which name busybox:latest) run here.
#   gantry-test/git:latest      FROM scratch + the same busybox + the HOST's git (binaries and
#                               the shared libraries ldd names) + deploy/clone/clone.sh as
#                               entrypoint: a stand-in for the production gantry/clone image.
#                               Rebuilt whenever clone.sh changes.
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

# Fills directory $1 with busybox, its applets, /tmp, /root and a passwd/group.
busybox_root() {
    local root=$1
    mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/root"
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    # One symlink per applet at the path busybox itself names (bin/sh, usr/bin/wget, ...).
    local applet
    while read -r applet; do
        [[ -z "$applet" || "$applet" == "bin/busybox" ]] && continue
        mkdir -p "$root/$(dirname "$applet")"
        ln -sf /bin/busybox "$root/$applet"
    done < <(/bin/busybox --list-full)
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
}

build_busybox_image() {
    static_busybox || install_busybox_static
    local ctx
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' RETURN
    busybox_root "$ctx/root"
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

# --- gantry-test/git: the host's git + busybox + clone.sh -----------------------------------

git_image=gantry-test/git:latest
clone_sh="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/deploy/clone/clone.sh"

# Copies each file and the shared libraries ldd lists for it into $1, at the same paths.
copy_with_libraries() {
    local root=$1 file lib
    shift
    for file in "$@"; do
        mkdir -p "$root$(dirname "$file")"
        cp -L "$file" "$root$file"
        while read -r lib; do
            [[ -e "$root$lib" ]] && continue
            mkdir -p "$root$(dirname "$lib")"
            cp -L "$lib" "$root$lib"
        done < <(ldd "$file" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
    done
}

build_git_image() {
    static_busybox || install_busybox_static
    command -v git >/dev/null || { log "git is not installed on this host"; exit 1; }
    local ctx exec_path git_bin
    ctx=$(mktemp -d)
    trap 'rm -rf "$ctx"' RETURN
    busybox_root "$ctx/root"
    exec_path=$(git --exec-path)
    git_bin=$(readlink -f "$(command -v git)")
    # git's builtins cover init/config/fetch/checkout; file:// spawns git-upload-pack and
    # http(s):// runs git-remote-http(s).
    copy_with_libraries "$ctx/root" "$git_bin" "$exec_path/git" "$exec_path/git-upload-pack" \
        "$exec_path/git-remote-http" "$exec_path/git-remote-https"
    [[ "$git_bin" == /usr/bin/git ]] || { mkdir -p "$ctx/root/usr/bin"; cp -L "$git_bin" "$ctx/root/usr/bin/git"; }
    # git looks for its templates under its own prefix (/usr or /usr/local).
    local templates
    templates="$(dirname "$(dirname "$exec_path")")/share/git-core/templates"
    if [[ -d "$templates" ]]; then
        mkdir -p "$ctx/root$(dirname "$templates")"
        cp -rL "$templates" "$ctx/root$templates"
    fi
    mkdir -p "$ctx/root/usr/local/bin"
    cp "$clone_sh" "$ctx/root/usr/local/bin/gantry-clone"
    chmod 0755 "$ctx/root/usr/local/bin/gantry-clone"
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM scratch
COPY root/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
LABEL org.opencontainers.image.title="gantry-test/git" \\
      org.opencontainers.image.description="Host git + busybox + Gantry's clone.sh, built from scratch for tests" \\
      gantry.clone-sh-sha256="$1"
ENTRYPOINT ["/usr/local/bin/gantry-clone"]
DOCKERFILE
    log "building $git_image"
    local out
    if ! out=$(docker build --quiet --tag "$git_image" "$ctx" 2>&1); then
        printf '%s\n' "$out" >&2
        log "building $git_image failed"
        exit 1
    fi
}

clone_sum=$(sha256sum "$clone_sh" | cut -d' ' -f1)
built_sum=$(docker image inspect --format '{{ index .Config.Labels "gantry.clone-sh-sha256" }}' \
    "$git_image" 2>/dev/null || true)
if [[ $force == 1 || "$built_sum" != "$clone_sum" ]]; then
    build_git_image "$clone_sum"
else
    log "$git_image already present"
fi
