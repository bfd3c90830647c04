# Sourced (not run) by scripts/test.sh and scripts/load.sh from the repository root:
# exports ENVOY_BIN, the pinned Envoy that scripts/install-envoy.sh installs (idempotent),
# or the one already exported. Exits the calling script if it is not an executable.
#
#   . scripts/envoy-env.sh test.sh      # the argument names the caller in errors
if [ -z "${ENVOY_BIN:-}" ]; then
  ENVOY_BIN="$(./scripts/install-envoy.sh | tail -n 1)"
fi
if [ ! -x "$ENVOY_BIN" ]; then
  echo "${1:-envoy-env.sh}: ENVOY_BIN='$ENVOY_BIN' is not an executable" >&2
  exit 1
fi
export ENVOY_BIN
