# Sourced by build-engine.sh and install-actionlint.sh: where the tools they build are kept, and when a kept one is
# trusted (docs/safety.md, "What the runner trusts").
#
# What a tool is built from is pinned in this repository: tools/<tool>/go.mod and go.sum hold the hash of every Go
# module it is made of, and the go command refuses a module whose content differs (-mod=readonly: nothing may be
# added that the repository does not list).
#
# On the runner that deploys (GitHub Actions: GITHUB_ACTIONS=true; or SMTPS_TOOLS_FRESH=1 anywhere) nothing an
# earlier job left on the machine is used: no installed pulumi, no shared cache, no `go` but a root-owned one in the
# system's folders (find_go). A test-only CI run (.ci/run, CI=true,
# which holds no key) takes the verified cache like a developer's machine, so `make test` does not rebuild the engine. Each tool is built in a folder made for this job (under $RUNNER_TEMP, which the runner empties for every job),
# with its own module and build caches (a planted compiled package in a shared GOCACHE could not be seen), with the
# user's go env file ignored (GOENV=off: it could name another compiler or proxy) and no C compiler (CGO_ENABLED=0).
#
# Elsewhere the tools are built once into a cache outside the repository and taken from it when they verify: each
# file is the one its SHA256SUMS recorded when it was built, files whose content is fixed by the pinned modules (the
# plugins) match the hashes kept in this repository, and no other user could have changed any of it.

export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
SYSTEM_PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

say() { printf 'tools: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

in_ci() {
    case "$(printf '%s' "${SMTPS_TOOLS_FRESH:-}" | tr '[:upper:]' '[:lower:]')" in 1|true|yes) return 0 ;; esac
    [ "$(printf '%s' "${GITHUB_ACTIONS:-}" | tr '[:upper:]' '[:lower:]')" = true ]
}

if in_ci; then
    # The runner user's own folders (~/bin, ~/.local/bin, ~/go/bin), where an earlier job could leave a `go`, are
    # not searched: only the system's, which only root can write.
    export PATH=$SYSTEM_PATH
else
    # Go lives in /usr/local/go on these machines; a login shell may not have it on PATH.
    export PATH="$PATH:/usr/local/go/bin"
fi

# Nobody but root can have written PATH: owned by root and not writable by group or others, and so is everything in
# it (a folder) and every folder above it (one with the sticky bit, /tmp, may be writable: others cannot rename or
# remove root's entries in it).
root_only() {  # root_only PATH
    local path=$1 found mode dir
    found=$(find "$path" ! -type l \( ! -uid 0 -o -perm /022 \) -printf '%p (uid %U, mode %m)\n' -quit 2>&1) ||
        { say "$path cannot be checked: $found"; return 1; }
    [ -z "$found" ] || { say "$found: not root's alone (owned by root, not writable by group or others)"; return 1; }
    dir=$(dirname "$path")
    while :; do
        mode=$(stat -c %a "$dir")
        [ "$(stat -c %u "$dir")" = 0 ] && { (( (8#$mode & 8#022) == 0 )) || [ -k "$dir" ]; } ||
            { say "$dir (uid $(stat -c %u "$dir"), mode $mode), above $path: not root's alone"; return 1; }
        [ "$dir" != / ] || break
        dir=$(dirname "$dir")
    done
}

# Sets GO, the go command the tools are built with. On the deploying runner: found in the system's folders (or named
# by SMTPS_GO), by its absolute path, and refused unless it and its GOROOT (the folder above its bin/) are root's
# alone. Elsewhere: SMTPS_GO, or the first `go` on PATH, the developer's choice.
find_go() {  # find_go WHAT
    local what=$1 real
    GO=${SMTPS_GO:-$(command -v go || true)}
    [ -n "$GO" ] || die "no Go toolchain to build $what with (searched: $PATH)"
    in_ci || return 0
    case $GO in /*) ;; *) die "CI: SMTPS_GO=$GO is not an absolute path: refused" ;; esac
    real=$(realpath -e "$GO") || die "CI: $GO cannot be resolved: refused"
    root_only "$real" && root_only "$(dirname "$(dirname "$real")")" ||
        die "CI: refusing the Go toolchain $GO ($real): an earlier job could have changed it; install Go as root" \
            "(in /usr/local/go), not writable by others"
    # The GOROOT just checked, whatever the environment says (a GOROOT variable would name another standard library).
    export GOROOT
    GOROOT=$(dirname "$(dirname "$real")")
    say "CI: building with $GO (GOROOT $GOROOT, root's alone)"
}

# Sets CACHE: on the deploying runner a fresh folder of this job's (with the Go caches inside it), else the shared cache.
tools_cache() {
    if in_ci; then
        CACHE=$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/smtps-tools.XXXXXXXX")
        export GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gocache" GOENV=off
        # Writable module folders: the runner empties $RUNNER_TEMP as an unprivileged user after the job, and Go's
        # read-only module folders would survive that. The cache is this job's alone either way.
        export GOFLAGS="$GOFLAGS -modcacherw"
        say "CI: building in $CACHE, for this job only (nothing cached on this machine is used)"
    else
        CACHE=${SMTPS_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smtps-iredmail/engine}
        mkdir -p "$CACHE"
    fi
}

# The first 16 hex digits of the pins' SHA-256: part of a cached tool's folder name, so that a change of the pins
# (another version, another dependency) builds anew instead of taking what the old pins made.
pins_id() {  # pins_id PINS_DIR
    cat "$1/go.mod" "$1/go.sum" | sha256sum | cut -c1-16
}

# Nobody but this user can have written PATH: owned by this user, not writable by group or others, not a symlink.
own_path() {  # own_path PATH
    local path=$1 mode
    [ ! -L "$path" ] || { say "$path is a symlink"; return 1; }
    [ "$(stat -c %u "$path")" = "$(id -u)" ] || { say "$path belongs to uid $(stat -c %u "$path"), not to $(id -u)"; return 1; }
    mode=$(stat -c %a "$path")
    (( (8#$mode & 8#022) == 0 )) || { say "$path is writable by group or others (mode $mode)"; return 1; }
}

# The files of a built tool's folder are the ones recorded in its SHA256SUMS, exactly those, and only this user could
# have changed them. Checked every time before they are used.
verified() {  # verified DIR
    local dir=$1 listed actual file
    own_path "$CACHE" || return 1
    own_path "$dir" || return 1
    [ -f "$dir/SHA256SUMS" ] || { say "$dir has no SHA256SUMS"; return 1; }
    own_path "$dir/SHA256SUMS" || return 1
    listed=$(sed 's/^[0-9a-f]\{64\}  //' "$dir/SHA256SUMS" | sort)
    actual=$(cd "$dir" && find . -mindepth 1 -maxdepth 1 ! -name SHA256SUMS -printf '%f\n' | sort)
    [ "$listed" = "$actual" ] || { say "$dir holds other files than its SHA256SUMS lists"; return 1; }
    for file in $listed; do
        [ -f "$dir/$file" ] || { say "$dir/$file is not a regular file"; return 1; }
        own_path "$dir/$file" || return 1
    done
    (cd "$dir" && sha256sum --check --strict --quiet SHA256SUMS >&2) || { say "$dir: a file is not the one built there"; return 1; }
}

# Records what was just built in WORK, then moves it to DIR as a whole: a folder with a SHA256SUMS is a finished build.
seal() {  # seal WORK DIR
    local work=$1 dir=$2
    (cd "$work" && find . -mindepth 1 -maxdepth 1 ! -name SHA256SUMS -printf '%f\n' | sort | xargs sha256sum > SHA256SUMS)
    chmod -R go-w "$work"
    mv -T "$work" "$dir"
}

# Takes DIR if it verifies; refuses it, saying what to do, if it was tampered with; removes an unfinished one (no
# SHA256SUMS: an interrupted build). Returns 1 when there is nothing to take (build it).
take_cached() {  # take_cached DIR WHAT
    local dir=$1 what=$2
    [ -e "$dir" ] || [ -L "$dir" ] || return 1
    if [ -f "$dir/SHA256SUMS" ] || [ -L "$dir" ]; then
        verified "$dir" || die "refusing the cached $what in $dir: it is not what was built there. Remove the folder" \
            "(rm -rf '$dir') and run make tools to build it again; if you did not change it, find out who did"
        return 0
    fi
    say "removing $dir: an unfinished build"
    rm -rf "$dir"
    return 1
}
