#!/usr/bin/env bash
# actionlint, the GitHub Actions workflow checker, built from its Go module (no prebuilt binary
# is downloaded: only the Go module proxy is needed) into a cache shared by every checkout.
# Usage: tools/actionlint.sh [actionlint args…]   (`make lint` runs it on .github/workflows)
set -euo pipefail
version=v1.7.12
cache="${MUSICPIPE_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/musicpipe/tools}/actionlint-$version"
if [ ! -x "$cache/actionlint" ]; then
  if ! command -v go >/dev/null; then
    echo "error: actionlint is built with Go (1.22+), and no \`go\` is on PATH; install Go, or skip with make lint ACTIONLINT=" >&2
    exit 2
  fi
  echo "building actionlint $version into $cache (once)" >&2
  mkdir -p "$cache"
  GOBIN="$cache" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@$version"
fi
exec "$cache/actionlint" "$@"
