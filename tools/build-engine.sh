#!/usr/bin/env bash
# The Pulumi engine this project runs on (docs/how-it-works.md, "The Pulumi engine"):
#   - the Pulumi CLI, built from the Go modules that tools/engine/go.mod and go.sum pin, hash by hash;
#   - pulumi-resource-pulumi-python, the plugin that runs Python dynamic providers, and pulumi-language-python-exec,
#     both real files of Pulumi's Python distribution carried by the github.com/pulumi/pulumi/sdk/v3 module, checked
#     against tools/engine/plugins.sha256.
# Programs run through the Automation API's inline mode, which needs no Python language host; the resources are
# dynamic providers, so no command provider is needed either (neither can be had here: the module proxy refuses both).
#
# Where they are built and when a built one is taken again: tools/lib.sh. Outside CI, a Pulumi already installed
# (v3.176+, with pulumi-resource-pulumi-python beside it or on PATH) is used instead of building; on the deploying runner never, as an
# earlier job could have put it there.
set -euo pipefail

PULUMI_VERSION=v3.274.1
PROJECT=$(cd "$(dirname "$0")/.." && pwd)
PINS="$PROJECT/tools/engine"
BIN="$PROJECT/.tools/bin"
PLUGINS=(pulumi-resource-pulumi-python pulumi-language-python-exec)
# shellcheck source=tools/lib.sh
. "$PROJECT/tools/lib.sh"
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
if in_ci; then
    ! command -v pulumi >/dev/null || say "CI: not using the installed $(command -v pulumi): building one"
elif use_installed; then
    exit 0
fi

# Builds the CLI and puts the plugins beside it (found there, the engine uses them silently; found only on PATH, it
# warns on every run), in WORK.
build() {  # build WORK
    local work=$1 sdk plugin source
    find_go "the Pulumi CLI"
    say "building the Pulumi CLI $PULUMI_VERSION (minutes, the first time: docs/benchmark.md)"
    # Each step joined by &&: `set -e` does not hold inside a subshell whose status is tested.
    # What the build compiled came from the module cache: `go mod verify` then checks that each module there still
    # hashes as go.sum says (a shared cache can have been changed after the download that go.sum checked).
    (
        cd "$PINS" &&
        "$GO" build -trimpath \
            -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
            -o "$work/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi &&
        "$GO" mod verify >&2
    ) || die "building the Pulumi CLI failed: see the messages above"
    sdk=$(cd "$PINS" && "$GO" list -m -f '{{.Dir}}' "github.com/pulumi/pulumi/sdk/v3") && [ -n "$sdk" ] ||
        die "go list gave no folder for github.com/pulumi/pulumi/sdk/v3 (tools/engine/go.mod)"
    for plugin in "${PLUGINS[@]}"; do
        for source in "$sdk/python/dist/$plugin" "$sdk/python/cmd/$plugin"; do
            [ ! -f "$source" ] || install -m 755 "$source" "$work/$plugin"
        done
        [ -f "$work/$plugin" ] || die "$plugin is not in github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION ($sdk)"
    done
}

tools_cache
dir="$CACHE/pulumi-$PULUMI_VERSION-$(pins_id "$PINS")"
if ! take_cached "$dir" "Pulumi engine"; then
    work=$(mktemp -d "$dir.new.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    build "$work"
    seal "$work" "$dir"
    trap - EXIT
fi
# The plugins' content is fixed by the pinned module: it must be what this repository says, every time.
(cd "$dir" && sha256sum --check --strict --quiet "$PINS/plugins.sha256" >&2) ||
    die "refusing $dir: its plugins are not the ones tools/engine/plugins.sha256 pins"

ln -sfn "$dir/pulumi" "$BIN/pulumi"
for plugin in "${PLUGINS[@]}"; do
    ln -sfn "$dir/$plugin" "$BIN/$plugin"
done
# Links from an earlier layout of this script: the engine must not find a stale plugin on PATH.
rm -f "$BIN/pulumi-language-python" "$BIN/pulumi-resource-command"
say "engine ready in $BIN: pulumi $("$BIN/pulumi" version)"
