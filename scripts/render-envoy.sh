#!/usr/bin/env bash
# Renders an Envoy template from envoy/ to stdout, replacing every `${NAME}`.
#
#   scripts/render-envoy.sh TEMPLATE [NAME=VALUE]... > envoy.yaml
#
# Values come from NAME=VALUE arguments, else from environment variables of that name.
# Fails (exit 1, nothing printed) if any placeholder has no value, so a half-rendered
# config never reaches Envoy. The placeholders of each template are listed in its header.
# Example (the front proxy, with certgate on 9191 and an upstream on 8080):
#
#   scripts/render-envoy.sh envoy/front-proxy.yaml ADMIN_PORT=9901 LISTEN_PORT=8443 \
#     CERTGATE_PORT=9191 UPSTREAM_PORT=8080 SERVER_CERT=$PWD/pki/server.pem \
#     SERVER_KEY=$PWD/pki/server.key CLIENT_CA=$PWD/pki/client-root.pem > /tmp/front.yaml
#   "$(scripts/install-envoy.sh)" --mode validate -c /tmp/front.yaml
#   exec "$(scripts/install-envoy.sh)" -c /tmp/front.yaml --use-dynamic-base-id
#
# Run Envoy in the foreground or under a shell that `wait`s for it: with hot restart on
# (the default, or --use-dynamic-base-id) Envoy dies with the process that started it.
set -euo pipefail

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  [ $# -ge 1 ] && exit 0 || exit 2
fi
template="$1"; shift
[ -r "$template" ] || { echo "render-envoy: cannot read $template" >&2; exit 1; }

declare -A vals=()
for arg in "$@"; do
  case "$arg" in
    [A-Za-z_]*=*) vals["${arg%%=*}"]="${arg#*=}" ;;
    *) echo "render-envoy: expected NAME=VALUE, got '$arg'" >&2; exit 2 ;;
  esac
done

rest="$(cat "$template"; printf x)"; rest="${rest%x}"
out=""
missing=()
re='\$\{([A-Za-z_][A-Za-z0-9_]*)\}'
while [[ $rest =~ $re ]]; do
  whole="${BASH_REMATCH[0]}"; name="${BASH_REMATCH[1]}"
  out+="${rest%%"$whole"*}"
  rest="${rest#*"$whole"}"
  if [[ -v vals[$name] ]]; then
    out+="${vals[$name]}"
  elif [[ -v $name ]]; then
    out+="${!name}"
  else
    missing+=("$name"); out+="$whole"
  fi
done
out+="$rest"
if [ ${#missing[@]} -gt 0 ]; then
  echo "render-envoy: no value for: $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')" >&2
  exit 1
fi
if [[ $out == *'${'* ]]; then
  echo "render-envoy: malformed placeholder left in $template" >&2
  exit 1
fi
printf '%s' "$out"
