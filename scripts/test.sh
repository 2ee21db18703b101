#!/usr/bin/env bash
# `npm test`: bootstrap, lint, then every package's tests through turbo; ends with one summary line
# ("tests: N passed, M failed") added up from vitest's per-package counts.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh || exit $?

# Lint and format check first (Biome, configured in biome.json): an error fails the run before the long tests.
npx --no-install biome check || exit $?

log=$(mktemp)
trap 'rm -f "$log"' EXIT
npx --no-install turbo run test --concurrency=2 "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# vitest prints e.g. "Tests  2 failed | 93 passed | 1 skipped (96)"; strip colours first.
sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^\S+:test:\s+Tests\s' | awk '
  { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) passed += $i; if ($(i+1) ~ /^failed/) failed += $i; if ($(i+1) ~ /^skipped/) skipped += $i } }
  END { printf "tests: %d passed, %d failed, %d skipped\n", passed, failed, skipped }'
exit "$status"
