#!/usr/bin/env bash
# Runs the test suite exactly as CI does (.ci/run): installs the pinned Envoy that the
# real-Envoy integration tests start (scripts/install-envoy.sh, idempotent), exports
# ENVOY_BIN, then `cargo test --all-targets --locked` in the dev profile.
#
#   ./scripts/test.sh                          # everything
#   ./scripts/test.sh --test harness_smoke     # one integration test file
#   ./scripts/test.sh -- --nocapture           # extra args go to cargo test as given
#
# An already exported ENVOY_BIN is used as is. If you name targets yourself (--test,
# --lib, --bins, ...), --all-targets is left out.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

. scripts/envoy-env.sh test.sh
echo "test.sh: ENVOY_BIN=$ENVOY_BIN" >&2

targets=(--all-targets)
for arg in "$@"; do
  [ "$arg" = "--" ] && break
  case "$arg" in
    --lib|--bins|--bin|--bin=*|--tests|--test|--test=*|--benches|--bench|--bench=*| \
    --examples|--example|--example=*|--doc|--all-targets)
      targets=() ;;
  esac
done

exec cargo test "${targets[@]}" --locked "$@"
