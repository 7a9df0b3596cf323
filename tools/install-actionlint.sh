#!/usr/bin/env bash
# actionlint, pinned, built once from the Go module proxy into a cache outside the repo and linked into .tools/bin:
# `make lint` checks the GitHub Actions workflow with it.
set -euo pipefail
VERSION=v1.7.12
PROJECT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${SMTPS_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/smtps-iredmail/engine}/actionlint-$VERSION
export PATH="$PATH:/usr/local/go/bin" GOFLAGS=-mod=mod GOTOOLCHAIN=local
if [ ! -x "$CACHE/actionlint" ]; then
    printf 'tools: building actionlint %s\n' "$VERSION" >&2
    mkdir -p "$CACHE"
    GOBIN="$CACHE" go install "github.com/rhysd/actionlint/cmd/actionlint@$VERSION"
fi
mkdir -p "$PROJECT/.tools/bin"
ln -sfn "$CACHE/actionlint" "$PROJECT/.tools/bin/actionlint"
