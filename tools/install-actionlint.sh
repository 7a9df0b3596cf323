#!/usr/bin/env bash
# actionlint, built from the Go modules that tools/actionlint/go.mod and go.sum pin, hash by hash, and linked into
# .tools/bin: `make lint` checks the GitHub Actions workflow with it. Where it is built and when a built one is taken
# again: tools/lib.sh (on the deploying runner, built in this job; elsewhere, a cache outside the repo, verified before each use).
set -euo pipefail
VERSION=v1.7.12
PROJECT=$(cd "$(dirname "$0")/.." && pwd)
PINS="$PROJECT/tools/actionlint"
# shellcheck source=tools/lib.sh
. "$PROJECT/tools/lib.sh"

tools_cache
dir="$CACHE/actionlint-$VERSION-$(pins_id "$PINS")"
if ! take_cached "$dir" actionlint; then
    find_go actionlint
    say "building actionlint $VERSION"
    work=$(mktemp -d "$dir.new.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    (cd "$PINS" && "$GO" build -trimpath -o "$work/actionlint" github.com/rhysd/actionlint/cmd/actionlint &&
        "$GO" mod verify >&2) || die "building actionlint failed: see the messages above"
    seal "$work" "$dir"
    trap - EXIT
fi
mkdir -p "$PROJECT/.tools/bin"
ln -sfn "$dir/actionlint" "$PROJECT/.tools/bin/actionlint"
