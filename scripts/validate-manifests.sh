#!/usr/bin/env bash
# Validates the Kubernetes manifests in deploy/kubernetes/ against the API schemas of
# the oldest and the newest Kubernetes we support, offline, for CI:
#
#   ./scripts/validate-manifests.sh            # quiet: prints failures and one summary line
#   ./scripts/validate-manifests.sh --verbose  # also one line per resource and version
#
# 1. Installs kubernetes-validate (PyPI; it bundles the JSON schemas, so nothing is
#    downloaded after the install) into the project venv that scripts/install-envoy.sh
#    creates (.venv-envoy/, or $ENVOY_VENV). Idempotent and silent when the pinned
#    version is already there.
# 2. Every *.yaml except kustomization.yaml is validated with --strict (unknown fields
#    are errors, so a misspelt `readOnlyRootFilesystem` fails) against every version in
#    K8S_VERSIONS. A resource whose kind has no schema (a CRD, a typo in apiVersion or
#    kind) is an error too, not the tool's warning.
# 3. kustomization.yaml is not a Kubernetes resource: it must list exactly the manifest
#    files of the directory. If `kubectl` or `kustomize` is installed, the rendered
#    output (what `kubectl apply -k` sends) is validated as well.
#
# Exit 0 when everything is valid, 1 on any error. The semantic checks (probes on the
# admin port, mounts without subPath, the config and roles valid for certgate itself)
# are in tests/deploy_manifests.rs.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

KV_VERSION="${KUBERNETES_VALIDATE_VERSION:-1.37.0}"
# Oldest supported and newest bundled by kubernetes-validate 1.37.0.
K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.37.0}"
dir="${MANIFEST_DIR:-deploy/kubernetes}"
venv="${ENVOY_VENV:-$root/.venv-envoy}"
py="${PYTHON:-python3}"

verbose=false
for arg in "$@"; do
  case "$arg" in
    -v|--verbose) verbose=true ;;
    -h|--help) sed -n '2,23p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "validate-manifests.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

# --- 1. kubernetes-validate in the project venv -------------------------------------------
installed() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$KV_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("kubernetes-validate") == sys.argv[1] else 1)
PY
}
if ! installed; then
  [ -x "$venv/bin/python" ] || "$py" -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "kubernetes-validate==$KV_VERSION" >&2
  installed || { echo "validate-manifests.sh: kubernetes-validate $KV_VERSION did not install" >&2; exit 1; }
fi
kv="$venv/bin/kubernetes-validate"

# --- 2. every manifest, strict, every version ---------------------------------------------
shopt -s nullglob
manifests=()
for f in "$dir"/*.yaml "$dir"/*.yml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
[ "${#manifests[@]}" -gt 0 ] || { echo "validate-manifests.sh: no manifests in $dir" >&2; exit 1; }

version_args=()
for v in $K8S_VERSIONS; do version_args+=(-k "$v"); done

failures=0 resources=0
# validate LABEL FILE: runs the validator, counts resources, turns WARN into an error.
validate() {
  local label="$1" file="$2" out rc=0
  out="$("$kv" --strict "${version_args[@]}" "$file" 2>&1)" || rc=$?
  resources=$((resources + $(grep -c '^INFO ' <<<"$out" || true)))
  if [ "$rc" -ne 0 ] || grep -qv '^INFO ' <<<"$out"; then
    failures=$((failures + 1))
    printf 'FAIL %s\n' "$label"
    grep -v '^INFO ' <<<"$out" | sed 's/^/  /'
    [ "$rc" -ne 0 ] || echo "  (a resource without a schema: wrong apiVersion or kind?)"
  elif $verbose; then
    sed 's/^/  /' <<<"$out"
  fi
}
for f in "${manifests[@]}"; do validate "$f" "$f"; done

# --- 3. the kustomization ------------------------------------------------------------------
kust="$dir/kustomization.yaml"
if [ ! -f "$kust" ]; then
  echo "FAIL $kust is missing"; failures=$((failures + 1))
else
  # Its resources must be exactly the manifest files next to it, each existing.
  if ! kout="$("$venv/bin/python" - "$kust" "${manifests[@]}" <<'PY' 2>&1
import os, sys, yaml
kust, files = sys.argv[1], sys.argv[2:]
doc = yaml.safe_load(open(kust)) or {}
errors = []
if doc.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or doc.get("kind") != "Kustomization":
    errors.append("apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization")
listed = doc.get("resources") or []
have = {os.path.basename(f) for f in files}
for name in sorted(set(listed) - have):
    errors.append(f"lists {name}, which is not a manifest here")
for name in sorted(have - set(listed)):
    errors.append(f"does not list {name}")
if len(listed) != len(set(listed)):
    errors.append("lists a file twice")
for e in errors:
    print(e)
sys.exit(1 if errors else 0)
PY
)"; then
    failures=$((failures + 1))
    printf 'FAIL %s\n' "$kust"
    sed 's/^/  /' <<<"$kout"
  fi

  render=()
  if command -v kubectl >/dev/null; then render=(kubectl kustomize "$dir")
  elif command -v kustomize >/dev/null; then render=(kustomize build "$dir")
  fi
  if [ "${#render[@]}" -gt 0 ]; then
    rendered="$(mktemp "${TMPDIR:-/tmp}/certgate-kustomize.XXXXXX.yaml")"
    trap 'rm -f "$rendered"' EXIT
    if "${render[@]}" > "$rendered" 2> "$rendered.err"; then
      validate "${render[*]} (rendered)" "$rendered"
    else
      failures=$((failures + 1))
      printf 'FAIL %s\n' "${render[*]}"
      sed 's/^/  /' "$rendered.err"
    fi
    rm -f "$rendered.err"
  elif $verbose; then
    echo "  (neither kubectl nor kustomize installed: the rendered output is not validated)"
  fi
fi

if [ "$failures" -gt 0 ]; then
  echo "validate-manifests: $failures failure(s) in $dir (Kubernetes $K8S_VERSIONS)"
  exit 1
fi
echo "validate-manifests: ok, $resources resource checks in $dir (Kubernetes ${K8S_VERSIONS// /, }; kubernetes-validate $KV_VERSION --strict)"
