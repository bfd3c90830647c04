#!/usr/bin/env bash
# Load test through a real Envoy 1.40 (examples/loadgen.rs): what certgate adds to the
# request path, as ratios against a plain-mTLS Envoy and a no-op ext_authz server
# measured in the same run. Installs the pinned Envoy (scripts/install-envoy.sh,
# idempotent), builds the release certgate binary the example starts, then runs the
# example in release. Arguments go to the example:
#
#   ./scripts/load.sh                                 # 10 s per setup, 8 connections
#   ./scripts/load.sh --seconds 5 --connections 1
#
# An already exported ENVOY_BIN is used as is. Exits 1 if any request failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

. scripts/envoy-env.sh load.sh

cargo build --release --bin certgate
cargo run --release --example loadgen -- "$@"
