#!/usr/bin/env bash
# The Pulumi engine this project runs on (README, "The Pulumi engine"):
#   - the Pulumi CLI, built from Go modules at a pinned version;
#   - pulumi-resource-pulumi-python, the plugin that runs Python dynamic providers, and pulumi-language-python-exec,
#     both real files of Pulumi's Python distribution carried by the github.com/pulumi/pulumi/sdk/v3 module.
# Programs run through the Automation API's inline mode, which needs no Python language host; the resources are
# dynamic providers, so no command provider is needed either (neither can be had here: the module proxy refuses both).
#
# Each piece is made once into a cache outside the repo, keyed by version, and linked into .tools/bin. A Pulumi
# already installed (v3.176+, with pulumi-resource-pulumi-python beside it or on PATH) is used instead of building.
set -euo pipefail

PULUMI_VERSION=v3.274.1
PROJECT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${SMTPS_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smtps-iredmail/engine}
BIN="$PROJECT/.tools/bin"
PLUGINS=(pulumi-resource-pulumi-python pulumi-language-python-exec)
export GOFLAGS=-mod=mod GOTOOLCHAIN=local
# Go lives in /usr/local/go on these machines; a login shell may not have it on PATH.
export PATH="$PATH:/usr/local/go/bin"

say() { printf 'tools: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
# Nothing of Pulumi's may go looking for plugins or updates on the network.
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

mkdir -p "$BIN"

# A Pulumi already installed is used when it is new enough and has the dynamic-provider plugin beside it or on PATH.
use_installed() {
    local cli dir version minor plugin exec_script
    cli=$(command -v pulumi) || return 1
    [ "$(readlink -f "$cli")" != "$(readlink -f "$BIN/pulumi" 2>/dev/null)" ] || return 1
    version=$("$cli" version 2>/dev/null) || return 1
    minor=$(printf '%s' "$version" | sed -n 's/^v3\.\([0-9][0-9]*\)\..*/\1/p')
    [ -n "$minor" ] && [ "$minor" -ge 176 ] || { say "ignoring $cli: $version is older than v3.176"; return 1; }
    dir=$(dirname "$(readlink -f "$cli")")
    if [ -x "$dir/pulumi-resource-pulumi-python" ]; then
        plugin="$dir/pulumi-resource-pulumi-python"
    else
        plugin=$(command -v pulumi-resource-pulumi-python) || {
            say "ignoring $cli: no pulumi-resource-pulumi-python beside it or on PATH"
            return 1
        }
    fi
    ln -sfn "$cli" "$BIN/pulumi"
    ln -sfn "$plugin" "$BIN/pulumi-resource-pulumi-python"
    exec_script="$(dirname "$plugin")/pulumi-language-python-exec"
    [ ! -e "$exec_script" ] || ln -sfn "$exec_script" "$BIN/pulumi-language-python-exec"
    say "using the installed $cli ($version) with $plugin"
}
if use_installed; then
    exit 0
fi

# A throwaway wrapper module: pkg/v3 has replace directives, so `go install pkg@version` refuses; a module that
# requires it (and repeats the non-local replaces) builds it.
build_cli() {  # build_cli OUT
    local out=$1 work status=0
    work=$(mktemp -d)
    {
        echo "module smtps.local/engine"
        echo
        echo "go 1.26"
        echo
        echo "replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e"
    } > "$work/go.mod"
    printf '//go:build tools\n\npackage engine\n\nimport _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"\n' \
        > "$work/tools.go"
    (
        cd "$work"
        go get "github.com/pulumi/pulumi/pkg/v3@$PULUMI_VERSION" "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
        go mod tidy
        go build -trimpath \
            -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
            -o "$out.tmp" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
    ) && mv "$out.tmp" "$out" || status=1
    rm -rf "$work" "$out.tmp"
    return "$status"
}

dir="$CACHE/pulumi-$PULUMI_VERSION"
mkdir -p "$dir"
if [ ! -x "$dir/pulumi" ]; then
    command -v go >/dev/null || die "no pulumi installed and no Go toolchain to build one"
    say "building the Pulumi CLI $PULUMI_VERSION (about 5 minutes the first time)"
    build_cli "$dir/pulumi" || die "building the Pulumi CLI failed: see the messages above"
fi

# The plugins sit beside the real binary (the cache folder that .tools/bin/pulumi points into): found there, the
# engine uses them silently; found only on PATH, it warns on every run.
for plugin in "${PLUGINS[@]}"; do
    [ -x "$dir/$plugin" ] && continue
    sdk=$(go mod download -json "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": *"\(.*\)",*$/\1/p')
    [ -n "$sdk" ] || die "go mod download gave no folder for github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
    for source in "$sdk/python/dist/$plugin" "$sdk/python/cmd/$plugin"; do
        [ -f "$source" ] || continue
        install -m 755 "$source" "$dir/$plugin.tmp"
        mv "$dir/$plugin.tmp" "$dir/$plugin"
    done
    [ -x "$dir/$plugin" ] || die "$plugin is not in github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION ($sdk)"
done

ln -sfn "$dir/pulumi" "$BIN/pulumi"
for plugin in "${PLUGINS[@]}"; do
    ln -sfn "$dir/$plugin" "$BIN/$plugin"
done
# Links from an earlier layout of this script: the engine must not find a stale plugin on PATH.
rm -f "$BIN/pulumi-language-python" "$BIN/pulumi-resource-command"
say "engine ready in $BIN: pulumi $("$BIN/pulumi" version)"
