#!/usr/bin/env bash
# Build the Pulumi engine from Go modules at pinned versions (shared/FACTS.md, "Building the Pulumi engine"):
# the CLI, the Python language host with its -exec script, and the command provider. Each is built once into a
# cache outside the repo, keyed by version, and linked into .tools/bin.
#
# Status: the CLI builds. The language host and the command provider do not: the Go module proxy reachable here
# refuses both modules (403 "This module version is not available"), and it gives no commit hash for the Pulumi
# release, which the language host's pseudo-version needs. The script stops there with the proxy's own words.
set -euo pipefail

PULUMI_VERSION=v3.274.1
COMMAND_VERSION=v1.2.1
PROJECT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${SMTPS_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smtps-iredmail/engine}
BIN="$PROJECT/.tools/bin"
LANGHOST=github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
PROVIDER=github.com/pulumi/pulumi-command/provider
export GOFLAGS=-mod=mod GOTOOLCHAIN=local

say() { printf 'tools: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
# Nothing of Pulumi's may go looking for plugins or updates on the network.
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

mkdir -p "$BIN" "$CACHE"

# The pseudo-version of an untagged module at the commit another module's tag was cut from:
# BASE-<commit time UTC>-<12 hex of the commit>, from the tag's Origin in the proxy's .info (empty without one).
pseudo_version() {  # pseudo_version TAGGED_MODULE VERSION BASE
    local info hash time
    info=$(go list -m -json "$1@$2") || return 1
    hash=$(printf '%s' "$info" | sed -n 's/.*"Hash": *"\([0-9a-f]*\)".*/\1/p' | head -n 1)
    time=$(printf '%s' "$info" | sed -n 's/^[[:space:]]*"Time": *"\([^"]*\)".*/\1/p' | head -n 1)
    [ -n "$hash" ] && [ -n "$time" ] || return 0
    printf '%s-%s-%s\n' "$3" "$(printf '%s' "$time" | tr -d ':TZ-')" "$(printf '%s' "$hash" | cut -c1-12)"
}

# A throwaway wrapper module: pkg/v3 has replace directives, so `go install pkg@version` refuses; a module that
# requires it (and repeats the non-local replaces) builds it.
build_in_wrapper() {  # build_in_wrapper OUT PACKAGE LDFLAGS REQUIRE...
    # Called from `if`/`||` too, where `set -e` is off: every step checks for itself.
    local out=$1 package=$2 ldflags=$3 work status=0
    shift 3
    work=$(mktemp -d)
    {
        echo "module smtps.local/engine"
        echo
        echo "go 1.26"
        echo
        echo "replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"
    } > "$work/go.mod"
    printf '//go:build tools\n\npackage engine\n\nimport _ "%s"\n' "$package" > "$work/tools.go"
    (
        cd "$work" || exit 1
        for req in "$@"; do go get "$req" || exit 1; done
        go mod tidy && go build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp" "$package"
    ) && mv "$out.tmp" "$out" || status=1
    rm -rf "$work"
    return "$status"
}

# A Pulumi already installed is used when it is new enough and has both plugins beside it, on PATH, or in
# $PULUMI_HOME/plugins (where `pulumi plugin install` puts them).
use_installed() {
    local cli dir version minor lang prov
    cli=$(command -v pulumi) || return 1
    [ "$(readlink -f "$cli")" != "$(readlink -f "$BIN/pulumi" 2>/dev/null)" ] || return 1
    version=$("$cli" version 2>/dev/null) || return 1
    minor=$(printf '%s' "$version" | sed -n 's/^v3\.\([0-9][0-9]*\)\..*/\1/p')
    [ -n "$minor" ] && [ "$minor" -ge 176 ] || { say "ignoring $cli: $version is older than v3.176"; return 1; }
    dir=$(dirname "$(readlink -f "$cli")")
    lang=$(command -v pulumi-language-python || ls "$dir/pulumi-language-python" 2>/dev/null) || return 1
    prov=$(command -v pulumi-resource-command || ls "$dir/pulumi-resource-command" \
        "${PULUMI_HOME:-$HOME/.pulumi}"/plugins/resource-command-v1.2.1/pulumi-resource-command 2>/dev/null |
        head -n 1) || return 1
    [ -n "$prov" ] || return 1
    ln -sf "$cli" "$BIN/pulumi"
    ln -sf "$lang" "$BIN/pulumi-language-python"
    ln -sf "$(dirname "$lang")/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec"
    ln -sf "$prov" "$BIN/pulumi-resource-command"
    say "using the installed $cli ($version) with $lang and $prov"
}
if use_installed; then
    exit 0
fi

cli="$CACHE/pulumi-$PULUMI_VERSION/pulumi"
if [ ! -x "$cli" ]; then
    say "building the Pulumi CLI $PULUMI_VERSION (several minutes the first time)"
    mkdir -p "$(dirname "$cli")"
    build_in_wrapper "$cli" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi \
        "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
        "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
fi
ln -sf "$cli" "$BIN/pulumi"
say "pulumi CLI: $("$BIN/pulumi" version)"

failed=0

langhost="$CACHE/pulumi-$PULUMI_VERSION/pulumi-language-python"
build_langhost() {
    # The language host module has no release tags: it is fetched by the commit of the matching release.
    local version sdk_dir
    version=$(pseudo_version github.com/pulumi/pulumi/sdk/v3 "$PULUMI_VERSION" v3.0.0)
    if [ -z "$version" ]; then
        say "the module proxy gives no commit for github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION (no Origin in"
        say "its .info), so the pseudo-version of $LANGHOST cannot be derived"
        return 1
    fi
    say "building the Python language host $version"
    build_in_wrapper "$langhost" "$LANGHOST" "" "$LANGHOST@$version" \
        "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
    sdk_dir=$(go mod download -json "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" |
        sed -n 's/.*"Dir": *"\(.*\)".*/\1/p')
    install -m 755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$(dirname "$langhost")/"
}
if [ -x "$langhost" ] || build_langhost; then
    ln -sf "$langhost" "$BIN/pulumi-language-python"
    ln -sf "$(dirname "$langhost")/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec"
else
    failed=1
fi

provider="$CACHE/pulumi-resource-command-$COMMAND_VERSION/pulumi-resource-command"
build_provider() {
    # The provider module has no provider/v* tags. The release tag v1.2.1 is on the repository's root module
    # (served, with its commit); sdk/v1.2.1 is a later commit, so it is not the one to build.
    local version
    version=$(pseudo_version github.com/pulumi/pulumi-command "$COMMAND_VERSION" v0.0.0)
    if [ -z "$version" ]; then
        say "the module proxy gives no commit for github.com/pulumi/pulumi-command@$COMMAND_VERSION"
        return 1
    fi
    say "building the command provider $COMMAND_VERSION ($PROVIDER@$version)"
    mkdir -p "$(dirname "$provider")"
    build_in_wrapper "$provider" "$PROVIDER/cmd/pulumi-resource-command" \
        "-X github.com/pulumi/pulumi-command/provider/pkg/version.Version=$COMMAND_VERSION" "$PROVIDER@$version"
}
if [ -x "$provider" ] || build_provider; then
    ln -sf "$provider" "$BIN/pulumi-resource-command"
else
    failed=1
fi

[ "$failed" = 0 ] || die "the engine is incomplete: see the messages above"
say "engine ready in $BIN"
