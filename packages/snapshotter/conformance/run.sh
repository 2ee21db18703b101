#!/usr/bin/env bash
# Runs containerd's snapshotter conformance suite against `clip snapshotter` (as root; needs
# Debian's golang-go and golang-github-containerd-containerd-dev, builds offline in GOPATH mode).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
gopath=$(mktemp -d)
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/clipconformance"
cp "$here/clip_conformance_test.go" "$gopath/src/clipconformance/"
cd "$gopath/src/clipconformance"
CLIP_CLI="$here/../../../apps/cli/dist/main.js" GO111MODULE=off GOPATH="$gopath:/usr/share/gocode" \
  go test -count=1 -v "$@" . 2>&1
