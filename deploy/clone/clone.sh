#!/bin/sh
# Gantry's clone step: checks out exactly $CI_COMMIT_SHA of $CI_REPO_URL into the workspace.
#
# Reads the environment the pipeline compiler gives the implicit clone step:
#   CI_REPO_URL         clone URL (file://, git://, http(s)://)
#   CI_COMMIT_SHA       the commit to check out (detached HEAD)
#   CI_COMMIT_REF       its ref (refs/heads/x, refs/tags/v1, refs/pull/7/head), used when the
#                       server refuses to serve a single commit
#   CI_WORKSPACE        where to check out (default: the current directory)
#   PLUGIN_DEPTH        history depth to fetch, 0 for all (default 50)
#   PLUGIN_TAGS         "true": also fetch tags
#   PLUGIN_SKIP_VERIFY  "true": do not verify the server's TLS certificate
#   CI_NETRC_MACHINE, CI_NETRC_USERNAME, CI_NETRC_PASSWORD   optional credentials
#
# Credentials live only in a private temporary HOME that is removed on exit; they are never
# printed and never stored in the workspace's .git/config.
set -eu

say() { printf 'clone: %s\n' "$*"; }
die() { printf 'clone: error: %s\n' "$*" >&2; exit 1; }

url="${CI_REPO_URL:-${DRONE_REMOTE_URL:-}}"
sha="${CI_COMMIT_SHA:-${DRONE_COMMIT_SHA:-}}"
ref="${CI_COMMIT_REF:-}"
workspace="${CI_WORKSPACE:-$PWD}"
depth="${PLUGIN_DEPTH:-50}"

[ -n "$url" ] || die "CI_REPO_URL is empty: the clone step needs the repository's clone URL"
[ -n "$sha" ] || die "CI_COMMIT_SHA is empty: the clone step needs the commit to check out"
case "$sha" in
    *[!0-9a-fA-F]*) die "CI_COMMIT_SHA is not a commit SHA (hex digits only)" ;;
esac
case "$depth" in
    '' | *[!0-9]*) die "PLUGIN_DEPTH='$depth' must be a whole number (0 fetches all history)" ;;
esac
case "$url" in
    -*) die "CI_REPO_URL must not start with '-'" ;;
esac

# The URL as shown in logs: without any user:password@.
shown=$(printf '%s' "$url" | sed -e 's#://[^/@]*@#://#')

HOME=$(mktemp -d)
export HOME
trap 'rm -rf "$HOME"' EXIT
export GIT_TERMINAL_PROMPT=0
if [ -n "${CI_NETRC_MACHINE:-}" ] && [ -n "${CI_NETRC_USERNAME:-}" ]; then
    (
        umask 077
        printf 'machine %s\nlogin %s\npassword %s\n' \
            "$CI_NETRC_MACHINE" "$CI_NETRC_USERNAME" "${CI_NETRC_PASSWORD:-}" >"$HOME/.netrc"
    )
fi
# The workspace volume may belong to another uid than this step's.
git config --global safe.directory '*'
git config --global advice.detachedHead false
git config --global init.defaultBranch main
if [ "${PLUGIN_SKIP_VERIFY:-false}" = true ]; then
    export GIT_SSL_NO_VERIFY=true
fi

depth_arg=""
[ "$depth" -gt 0 ] && depth_arg="--depth=$depth"

mkdir -p "$workspace"
cd "$workspace"
[ -d .git ] || git init -q
# origin is recorded without credentials; fetches use the full URL directly.
git config remote.origin.url "$shown"
git config remote.origin.fetch '+refs/heads/*:refs/remotes/origin/*'

say "fetching $sha from $shown"
# shellcheck disable=SC2086 # depth_arg is one word or empty
if ! git fetch -q --no-tags $depth_arg "$url" "+$sha:refs/remotes/origin/gantry-build"; then
    say "the server does not serve single commits; fetching all branches"
    git fetch -q --no-tags "$url" '+refs/heads/*:refs/remotes/origin/*' ||
        die "cannot fetch from $shown (is the URL right, and are the credentials set for a private repository?)"
    case "$ref" in
        refs/heads/* | '') ;;
        *) git fetch -q --no-tags "$url" "+$ref:refs/remotes/origin/gantry-ref" || true ;;
    esac
fi
if [ "${PLUGIN_TAGS:-false}" = true ]; then
    # shellcheck disable=SC2086
    git fetch -q $depth_arg "$url" '+refs/tags/*:refs/tags/*' || say "could not fetch tags; going on"
fi

git cat-file -e "$sha^{commit}" 2>/dev/null ||
    die "commit $sha is not in $shown (force-pushed away, or the wrong repository?)"
git checkout -q --force --detach "$sha"
say "checked out $(git rev-parse HEAD) into $workspace"
