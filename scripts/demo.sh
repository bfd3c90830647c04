#!/usr/bin/env bash
# certgate demo: a real Envoy 1.40 terminates mTLS and asks certgate (ext_authz, gRPC)
# about every request; curl calls it with a good, a wrong-OU, a revoked and an admin
# certificate and with forged identity headers; a role file is edited live; four
# clients send traffic; a certificate is revoked live (new CRL); a broken edit is
# rejected while the last good config keeps serving; then /metrics is scraped and the
# audit log read, and `certgate check` and `certgate validate` run offline. Every
# outcome is checked: exit 0 when all behave, 1 (with the logs' tails) when one does
# not, so CI can run it.
#
#   ./scripts/demo.sh            # from the repository root or anywhere else
#   ./scripts/demo.sh --short    # less traffic (CI)
#   ./scripts/demo.sh --keep     # keep the work dir (PKI, config, logs) and print its path
#   ./scripts/demo.sh --hold     # at the end, keep everything running until Ctrl-C
#                                # (point Prometheus/Grafana at the printed /metrics URL)
#
# Steps: build certgate (`cargo build --bin certgate`, dev profile) and install Envoy
# (scripts/install-envoy.sh); generate a PKI with openssl (scripts/demo/pki.sh); write
# the demo config (certgate.yaml, roles/web.yaml, roles/admins.yaml, crls/issuing.pem)
# into a temp dir; start the echo upstream (scripts/demo/echo.py), certgate and Envoy
# (envoy/front-proxy.yaml via scripts/render-envoy.sh), all on 127.0.0.1 with free
# ports; run the calls; stop certgate with SIGTERM. Needs: cargo, openssl, curl, python3.
#
# This script is the parent of Envoy and must stay alive while Envoy runs: Envoy (hot
# restart on, --use-dynamic-base-id) dies with the process that started it. The EXIT
# trap stops every child. CI=true or NO_COLOR: no colour. There are no pauses.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

keep=false hold=false traffic=25
for arg in "$@"; do
  case "$arg" in
    --keep) keep=true ;;
    --short) traffic=5 ;;
    --hold) hold=true ;;
    -h|--help) sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

if [ -t 1 ] && [ "${CI:-}" != "true" ] && [ -z "${NO_COLOR:-}" ]; then
  B=$'\e[1m' D=$'\e[2m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'
else
  B='' D='' G='' R='' N=''
fi

# --- timing and output -------------------------------------------------------------------
usec() { local t="${EPOCHREALTIME//[!0-9]/}"; echo "${t:-$((SECONDS * 1000000))}"; }
since() { local d=$(( $(usec) - $1 )); printf '%d.%d' $((d / 1000000)) $((d % 1000000 / 100000)); }
say() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
info() { printf '    %s\n' "$*"; }
dim() { sed "/^\$/!{s/^/      ${D//\\/\\\\}/; s/\$/${N//\\/\\\\}/;}"; }

checks=0 failures=0
ok() { checks=$((checks + 1)); printf '  %sok%s   %s\n' "$G" "$N" "$1"; shift; local l; for l in "$@"; do printf '       %s\n' "$l"; done; }
bad() {
  checks=$((checks + 1)) failures=$((failures + 1))
  printf '  %sFAIL%s %s\n' "$R" "$N" "$1"; shift
  local l; for l in "$@"; do printf '       %s%s%s\n' "$R" "$l" "$N"; done
}

need() { command -v "$1" >/dev/null || { echo "demo.sh: '$1' is required" >&2; exit 1; }; }
for tool in cargo openssl curl python3; do need "$tool"; done
# The interpreter itself, not a version-manager shim: faster, and $! is python's pid.
py="$(python3 -c 'import sys; print(sys.executable)')"

# --- 1. build certgate, install Envoy ----------------------------------------------------
say "build certgate (cargo build --bin certgate, dev profile) and install Envoy 1.40"
if [ -n "${CERTGATE_BIN:-}" ]; then
  # CI passes the binary its test run built: `cargo build` alone resolves features
  # without dev-dependencies and would rebuild half the dependency graph.
  certgate="$CERTGATE_BIN"
  [ -x "$certgate" ] || { echo "demo: CERTGATE_BIN=$certgate is not executable" >&2; exit 1; }
else
  cargo build --quiet --bin certgate
  target_dir="${CARGO_TARGET_DIR:-target}"
  case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
  certgate="$target_dir/debug/certgate"
fi
[ -x "$certgate" ] || { echo "demo.sh: no certgate binary at $certgate" >&2; exit 1; }
envoy="$(scripts/install-envoy.sh | tail -n 1)"
[ -x "$envoy" ] || { echo "demo.sh: scripts/install-envoy.sh printed no Envoy binary" >&2; exit 1; }
envoy_version="$("$envoy" --version 2>/dev/null | grep -oE '/[0-9]+\.[0-9]+\.[0-9]+/' | tr -d / | head -n 1)"
info "certgate  ${certgate#"$root"/}"
info "envoy     $envoy (${envoy_version:-unknown version})"
t_start="$(usec)"

# --- 2. work dir, children, cleanup ------------------------------------------------------
work="$(mktemp -d "${TMPDIR:-/tmp}/certgate-demo.XXXXXX")"
pki="$work/pki" cg="$work/certgate" logs="$work/logs"
mkdir -p "$pki" "$cg/roles" "$cg/crls" "$cg/ca" "$work/envoy" "$logs"
echo_pid='' cg_pid='' envoy_pid=''

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

# SIGTERM, wait up to $2 seconds, then SIGKILL. Sets stop_status to the exit status.
stop_status=''
stop() {
  local pid="$1" grace="$2" i
  stop_status=''
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 20; i++)); do alive "$pid" || break; sleep 0.05; done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null && stop_status=0 || stop_status=$?
}

cleanup() {
  local rc=$?
  set +e
  trap - EXIT INT TERM
  stop "$cg_pid" 5
  stop "$envoy_pid" 5
  stop "$echo_pid" 2
  if $keep; then
    printf '\nwork dir kept: %s\n' "$work"
    printf '  pki/  certgate/ (certgate.yaml roles/ crls/)  envoy/front-proxy.yaml  logs/\n'
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tails() {
  local f
  for f in "$logs"/certgate.log "$logs"/envoy.log "$logs"/echo.log; do
    [ -s "$f" ] || continue
    printf '\n%s--- last 30 lines of %s ---%s\n' "$B" "${f#"$work"/}" "$N"
    tail -n 30 "$f"
  done
}
die() { printf '\n%sdemo.sh: %s%s\n' "$R" "$*" "$N" >&2; tails >&2; exit 1; }

# --- 3. PKI ------------------------------------------------------------------------------
say "PKI with openssl (scripts/demo/pki.sh: P-256 keys, SHA-256, a CRL from openssl ca)"
scripts/demo/pki.sh "$pki"
serial_of() { openssl x509 -in "$pki/$1.pem" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f'; }
web1_serial="$(serial_of web-1)" web2_serial="$(serial_of web-2)"
info "client root -> Clients Issuing CA -> web-1 (OU=eng, spiffe://cluster.local/ns/prod/sa/web)"
info "                                     web-2 (OU=eng), sales-1 (OU=sales), alice (OU=admins)"
info "the issuing CA's CRL revokes web-2 (serial $web2_serial)"
info "Envoy's server certificate: CN=localhost from a separate server CA"

# --- 4. the demo config ------------------------------------------------------------------
say "config: $(basename "$work")/certgate/{certgate.yaml,roles/web.yaml,roles/admins.yaml,crls/issuing.pem}"
ports=()
read -r -a ports < <("$py" -c '
import socket
socks = [socket.socket() for _ in range(5)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
[ "${#ports[@]}" -eq 5 ] || die "could not pick free ports"
up_port="${ports[0]}" cg_port="${ports[1]}" listen_port="${ports[2]}" admin_port="${ports[3]}"
cg_admin_port="${ports[4]}"
metrics_url="http://127.0.0.1:$cg_admin_port/metrics"

cp "$pki/client-root.pem" "$cg/ca/client-root.pem"
cp "$pki/client-issuing.crl.pem" "$cg/crls/issuing.pem"
{
  printf '%-33s%s\n' "listen: 127.0.0.1:$cg_port" "# gRPC: ext_authz v3 for Envoy, health, reflection"
  printf '%-33s%s\n' "admin_listen: 127.0.0.1:$cg_admin_port" "# HTTP: /metrics /healthz /readyz"
  cat <<'EOF'
audit: { sink: ../logs/audit.log } # one JSON line per decision (default: stdout)
roles_dir: roles
crls_dir: crls
xfcc: { envoy_sets: true }       # envoy/front-proxy.yaml sets XFCC (SANITIZE_SET)
reload: { interval: 5s }         # a timer besides the file watch
log: { format: pretty, level: info }
EOF
} > "$cg/certgate.yaml"
web_role() {
  cat <<EOF
certificate_file: ../ca/client-root.pem
allowed_organizational_units: $1
token_policies: web,read
audit_log_sub_claims: [sub, serial]
EOF
}
web_role eng > "$cg/roles/web.yaml"
cat > "$cg/roles/admins.yaml" <<'EOF'
certificate_file: ../ca/client-root.pem
allowed_organizational_units: admins
audit_log_sub_claims: [sub, common_name]
EOF
for f in certgate.yaml roles/web.yaml roles/admins.yaml; do
  info "$f"
  dim < "$cg/$f"
done

# --- 5. start upstream, certgate, Envoy --------------------------------------------------
say "start: echo upstream :$up_port, certgate :$cg_port, Envoy mTLS :$listen_port (admin :$admin_port)"
t_up="$(usec)"
scripts/render-envoy.sh envoy/front-proxy.yaml \
  ADMIN_PORT="$admin_port" LISTEN_PORT="$listen_port" CERTGATE_PORT="$cg_port" \
  UPSTREAM_PORT="$up_port" SERVER_CERT="$pki/server.pem" SERVER_KEY="$pki/server.key" \
  CLIENT_CA="$pki/client-root.pem" > "$work/envoy/front-proxy.yaml"

# Started straight from this shell (never inside $(...) or a pipeline): this process is
# their parent, which is what Envoy's PDEATHSIG is tied to.
"$py" scripts/demo/echo.py "$up_port" > "$logs/echo.log" 2>&1 &
echo_pid=$!
NO_COLOR=1 "$certgate" serve --config "$cg/certgate.yaml" > "$logs/certgate.log" 2>&1 &
cg_pid=$!
envoy_flags=(--use-dynamic-base-id)
start_envoy() {
  "$envoy" -c "$work/envoy/front-proxy.yaml" "${envoy_flags[@]}" \
    --concurrency 1 --log-level warn > "$logs/envoy.log" 2>&1 &
  envoy_pid=$!
}
start_envoy

# wait_until WHAT PID TIMEOUT_S COMMAND...: polls COMMAND every 50 ms.
wait_until() {
  local what="$1" pid="$2" timeout="$3"; shift 3
  local deadline=$(( $(usec) + timeout * 1000000 ))
  until "$@"; do
    alive "$pid" || return 2
    [ "$(usec)" -lt "$deadline" ] || die "$what not ready within ${timeout}s"
    sleep 0.05
  done
}
echo_ready() { curl -fs --noproxy '*' -o /dev/null --max-time 1 "http://127.0.0.1:$up_port/__ready"; }
cg_ready() { curl -fs --noproxy '*' -o /dev/null --max-time 1 "http://127.0.0.1:$cg_admin_port/readyz"; }
envoy_ready() { [ "$(curl -sS --noproxy '*' --max-time 1 "http://127.0.0.1:$admin_port/ready" 2>/dev/null)" = "LIVE" ]; }

wait_until "echo upstream" "$echo_pid" 20 echo_ready || die "the echo upstream exited"
wait_until certgate "$cg_pid" 20 cg_ready || die "certgate exited while starting"
if ! wait_until Envoy "$envoy_pid" 20 envoy_ready; then
  wait "$envoy_pid" 2>/dev/null || true
  if grep -qiE 'hot.restart|shared memory|base.id|domain socket' "$logs/envoy.log"; then
    printf '    warning: Envoy hot restart is unavailable here; using --disable-hot-restart\n'
    envoy_flags=(--disable-hot-restart)
    start_envoy
    wait_until Envoy "$envoy_pid" 20 envoy_ready || die "Envoy exited while starting"
  else
    die "Envoy exited while starting"
  fi
fi
info "$(grep -m1 -o 'configuration loaded.*' "$logs/certgate.log" | sed 's/^/certgate: /')"
info "all ready in $(since "$t_up") s"

# --- 6. requests through Envoy -----------------------------------------------------------
body="$work/body.json"
# Decisions certgate made, by the status Envoy returned (200 allow, 403 deny): the
# metrics and the audit log must agree with these counts at the end.
n_allow=0 n_deny=0
count() {
  case "$1" in
    200) n_allow=$((n_allow + 1)) ;;
    403) n_deny=$((n_deny + 1)) ;;
  esac
}
# call WHO PATH [curl args...]: sets status (000 = no HTTP response) and body.
call() {
  local who="$1" path="$2"; shift 2
  local cert=()
  [ "$who" = "-" ] || cert=(--cert "$pki/$who-chain.pem" --key "$pki/$who.key")
  : > "$body"
  status="$(curl -sS --noproxy '*' --max-time 10 --cacert "$pki/server-ca.pem" "${cert[@]}" \
    --resolve "localhost:$listen_port:127.0.0.1" -o "$body" -w '%{http_code}' "$@" \
    "https://localhost:$listen_port$path" 2>"$work/curl.err")" || true
  [ -n "$status" ] || status=000
  count "$status"
}
# hdrs NAME...: sets the array h to those headers as the upstream received them (from the
# echoed JSON body); "" for a missing one.
hdrs() {
  mapfile -t h < <("$py" -c 'import json,sys
try: got = json.load(open(sys.argv[1]))["headers"]
except Exception: got = {}
for name in sys.argv[2:]: print(got.get(name, "").replace("\n", " "))' "$body" "$@")
  while [ "${#h[@]}" -lt "$#" ]; do h+=(""); done
}
reason() { "$py" -c 'import json,sys
try: print(json.load(open(sys.argv[1])).get("reason", ""))
except Exception: print("")' "$body"; }
shown_body() { tr -d '\n' < "$body" | cut -c1-200; }
line() { printf '%-8s %-11s %-14s -> %s' "$1" "$2" "$3" "$4"; }

# expect_allow WHO LABEL PATH ROLE SUB NOTE [curl args...]: 200 with that role and sub.
# NOTE (may be empty) is printed under the result line.
expect_allow() {
  local who="$1" label="$2" path="$3" role="$4" sub="$5" note="$6"; shift 6
  call "$who" "$path" "$@"
  local got_role got_sub pol notes=()
  hdrs x-certgate-role x-certgate-sub x-certgate-policies
  got_role="${h[0]}" got_sub="${h[1]}" pol="${h[2]}"
  [ -z "$note" ] || notes=("$note")
  local result
  result="$(line "$who" "$label" "GET $path" "$status  role=$got_role sub=$got_sub${pol:+ policies=$pol}")"
  if [ "$status" = 200 ] && [ "$got_role" = "$role" ] && [ "$got_sub" = "$sub" ]; then
    ok "$result" "${notes[@]}"
  else
    bad "$result" "${notes[@]}" \
      "expected 200 role=$role sub=$sub; body: $(shown_body) $(cat "$work/curl.err")"
  fi
}
# expect_deny WHO LABEL PATH REASON: 403 with that reason code in the body.
expect_deny() {
  local who="$1" label="$2" path="$3" want="$4"
  call "$who" "$path"
  local result
  result="$(line "$who" "$label" "GET $path" "$status  $(shown_body)")"
  if [ "$status" = 403 ] && [ "$(reason)" = "$want" ]; then
    ok "$result"
  else
    bad "$result" "expected 403 {\"reason\":\"$want\"} $(cat "$work/curl.err")"
  fi
}

say "requests: curl --cert <leaf+intermediate> https://localhost:$listen_port/...  (via Envoy -> certgate -> echo)"
t_req="$(usec)"

# The good certificate: 200, and the identity certgate set is what the upstream received.
call web-1 /hello
want_uri="spiffe://cluster.local/ns/prod/sa/web"
hdrs x-certgate-role x-certgate-sub x-certgate-policies x-certgate-uri-sans x-certgate-serial
got=("${h[@]}")
summary="role=${got[0]} sub=${got[1]} policies=${got[2]}"
more=("upstream also got: x-certgate-uri-sans: ${got[3]}" "                   x-certgate-serial: ${got[4]}")
if [ "$status" = 200 ] && [ "${got[*]}" = "web web-1 web,read $want_uri $web1_serial" ]; then
  ok "$(line web-1 "(OU=eng)" "GET /hello" "$status  $summary")" "${more[@]}"
else
  bad "$(line web-1 "(OU=eng)" "GET /hello" "$status  $summary")" "${more[@]}" \
    "expected 200 role=web sub=web-1 policies=web,read uri-sans=$want_uri serial=$web1_serial" \
    "body: $(shown_body) $(cat "$work/curl.err")"
fi

expect_allow web-1 "+forged" /hello web web-1 \
  "(the client sent x-certgate-role: admins and x-certgate-sub: root; certgate overwrote both)" \
  -H 'x-certgate-role: admins' -H 'x-certgate-sub: root'
expect_deny sales-1 "(OU=sales)" /hello organizational_unit_not_allowed
expect_deny web-2 "(revoked)" /hello revoked_crl
expect_allow alice "(OU=admins)" /admin/ admins alice ""
expect_deny web-1 "(OU=eng)" /admin/ organizational_unit_not_allowed

call - /hello
# Envoy counts the refusal: listener.<addr>.ssl.fail_verify_no_cert.
no_cert="$(curl -s --noproxy '*' --max-time 2 "http://127.0.0.1:$admin_port/stats?filter=ssl.fail_verify_no_cert" \
  | awk -F': ' '/^listener\./ { n += $2 } END { print n + 0 }' || true)"
if [ "$status" = 000 ] && [ "${no_cert:-0}" -ge 1 ]; then
  ok "$(line "(none)" "" "GET /hello" "refused in the TLS handshake by Envoy (ssl.fail_verify_no_cert: $no_cert)")"
else
  bad "$(line "(none)" "" "GET /hello" "$status  $(shown_body)")" "expected Envoy to refuse the handshake"
fi

# --- live role edit ----------------------------------------------------------------------
say "live role edit: roles/web.yaml allowed_organizational_units: eng -> eng,sales (no restart)"
web_role eng,sales > "$work/web.yaml.new"
mv "$work/web.yaml.new" "$cg/roles/web.yaml"   # atomic replace, as editors and kubelet do
t_edit="$(usec)"
# call_until STATUS WHO PATH: repeats the call every 0.1 s until it answers STATUS, for
# at most 15 s (status and body are the last call's).
call_until() {
  local want="$1" deadline=$(( $(usec) + 15 * 1000000 ))
  shift
  while :; do
    call "$@"
    [ "$status" = "$want" ] && return
    [ "$(usec)" -lt "$deadline" ] || return 0
    sleep 0.1
  done
}
call_until 200 sales-1 /hello
label="took effect after $(since "$t_edit") s"
hdrs x-certgate-role x-certgate-sub
if [ "$status" = 200 ] && [ "${h[0]}" = web ] && [ "${h[1]}" = sales-1 ]; then
  ok "$(line sales-1 "(OU=sales)" "GET /hello" "$status  role=web sub=sales-1 ($label)")"
else
  bad "$(line sales-1 "(OU=sales)" "GET /hello" "$status  $(shown_body)")" \
    "expected 200 role=web sub=sales-1 within 15 s of the edit"
fi

# --- traffic from four clients -----------------------------------------------------------
# burst WHO PATH N: N requests on one keep-alive connection; counts 200s and 403s.
burst() {
  local who="$1" path="$2" n="$3" urls=() i codes
  for ((i = 0; i < n; i++)); do urls+=(-o /dev/null "https://localhost:$listen_port$path"); done
  codes="$(curl -sS --noproxy '*' --max-time 30 --cacert "$pki/server-ca.pem" \
    --cert "$pki/$who-chain.pem" --key "$pki/$who.key" --resolve "localhost:$listen_port:127.0.0.1" \
    -w '%{http_code}\n' "${urls[@]}" 2>>"$work/curl.err")" || true
  b_allow="$(grep -c '^200$' <<<"$codes" || true)" b_deny="$(grep -c '^403$' <<<"$codes" || true)"
  n_allow=$((n_allow + b_allow)) n_deny=$((n_deny + b_deny))
}
say "traffic: web-1, sales-1, alice and the revoked web-2, $traffic requests each to /hello and /admin/"
expect_traffic() {  # expect_traffic WHO ALLOWED_HELLO ALLOWED_ADMIN
  local who="$1" want_hello="$2" want_admin="$3" got
  burst "$who" /hello "$traffic"; got="/hello ${b_allow}x200 ${b_deny}x403"
  local ok_hello=$(( b_allow == (want_hello ? traffic : 0) && b_allow + b_deny == traffic ))
  burst "$who" /admin/ "$traffic"; got="$got, /admin/ ${b_allow}x200 ${b_deny}x403"
  local ok_admin=$(( b_allow == (want_admin ? traffic : 0) && b_allow + b_deny == traffic ))
  if [ "$ok_hello" = 1 ] && [ "$ok_admin" = 1 ]; then ok "$(printf '%-8s %s' "$who" "$got")"
  else bad "$(printf '%-8s %s' "$who" "$got")" "expected /hello $([ "$want_hello" = 1 ] && echo allowed || echo denied), /admin/ $([ "$want_admin" = 1 ] && echo allowed || echo denied)"; fi
}
expect_traffic web-1 1 0
expect_traffic sales-1 1 0
expect_traffic alice 1 1
expect_traffic web-2 0 0

# --- live revocation ---------------------------------------------------------------------
say "live revocation: openssl ca -revoke sales-1, new CRL into crls/ (no restart)"
(cd "$pki" && openssl ca -batch -config ca/ca.cnf -revoke sales-1.pem -crl_reason keyCompromise \
  && openssl ca -batch -config ca/ca.cnf -gencrl -out "$work/issuing.crl.new") >> "$pki/openssl.log" 2>&1 \
  || die "openssl could not revoke sales-1 (see $pki/openssl.log)"
mv "$work/issuing.crl.new" "$cg/crls/issuing.pem"
t_revoke="$(usec)"
call_until 403 sales-1 /hello
if [ "$status" = 403 ] && [ "$(reason)" = revoked_crl ]; then
  ok "$(line sales-1 "(revoked)" "GET /hello" "$status  $(shown_body) (after $(since "$t_revoke") s)")"
else
  bad "$(line sales-1 "(revoked)" "GET /hello" "$status  $(shown_body)")" \
    "expected 403 revoked_crl within 15 s of the new CRL"
fi

# --- a broken edit is rejected; the last good config keeps serving -----------------------
# metric NAME [LABEL=VALUE...]: the sum of the matching series in a fresh scrape.
metric() {
  curl -fsS --noproxy '*' --max-time 5 "$metrics_url" | "$py" -c '
import re, sys
name, want = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
total = 0.0
for line in sys.stdin:
    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line.strip())
    if not m or m.group(1) != name:
        continue
    labels = dict(re.findall(r"(\w+)=\"((?:[^\"\\]|\\.)*)\"", m.group(2) or ""))
    if all(labels.get(k) == v for k, v in want.items()):
        total += float(m.group(3))
print(int(total) if total == int(total) else total)' "$@"
}
say "a broken edit: roles/broken.yaml with a typo'd field (rejected; the last good config serves)"
printf 'certificate_file: ../ca/client-root.pem\nallowed_organisational_units: eng\n' > "$cg/roles/broken.yaml"
deadline=$(( $(usec) + 15 * 1000000 ))
until [ "$(metric certgate_config_reload_failing)" = 1 ] || [ "$(usec)" -ge "$deadline" ]; do sleep 0.1; done
ready_body="$(curl -sS --noproxy '*' --max-time 2 "http://127.0.0.1:$cg_admin_port/readyz" || true)"
grep -m1 -o 'unknown field.*' "$logs/certgate.log" | cut -c1-110 | sed 's/^/certgate: /' | dim
call web-1 /hello
if [ "$(metric certgate_config_reload_failing)" = 1 ] && [ "$status" = 200 ] \
  && grep -q '^ready' <<<"$ready_body"; then
  ok "rejected: certgate_config_reload_failing 1; web-1 still 200; /readyz: ${ready_body%$'\n'}"
else
  bad "broken edit" "expected reload_failing 1, web-1 200 and /readyz 200; got $status, $ready_body"
fi
rm -f "$cg/roles/broken.yaml"
deadline=$(( $(usec) + 15 * 1000000 ))
until [ "$(metric certgate_config_reload_failing)" = 0 ] || [ "$(usec)" -ge "$deadline" ]; do sleep 0.1; done
t_req_done="$(since "$t_req")"

# Denied requests stop at Envoy: the upstream saw exactly the allowed ones.
upstream_seen="$(grep -c '"[A-Z]* /' "$logs/echo.log" | tr -d ' ' || true)"
upstream_seen=$(( ${upstream_seen:-0} - $(grep -c '/__ready' "$logs/echo.log" || true) ))
if [ "$upstream_seen" = "$n_allow" ]; then
  ok "the echo upstream received $upstream_seen requests: the allowed ones; all $n_deny denials stopped at Envoy"
else
  bad "the echo upstream received $upstream_seen requests" "expected exactly the $n_allow allowed ones"
fi

# --- what an operator sees: /metrics and the audit log ----------------------------------
say "metrics: curl $metrics_url"
m_allow="$(metric certgate_decisions_total result=allow)" m_deny="$(metric certgate_decisions_total result=deny)"
curl -fsS --noproxy '*' --max-time 5 "$metrics_url" \
  | grep -E '^certgate_(decisions_total|config_reloads_total|config_generation|config_reload_failing|chain_cache_requests_total|check_duration_seconds_count|audit_records_total|crl_fetches_total|ready)' \
  | dim
if [ "$m_allow" = "$n_allow" ] && [ "$m_deny" = "$n_deny" ]; then
  ok "certgate_decisions_total: $m_allow allow + $m_deny deny = the $n_allow 200s + $n_deny 403s curl saw"
else
  bad "certgate_decisions_total: $m_allow allow, $m_deny deny" "curl saw $n_allow 200s and $n_deny 403s"
fi
reloads_ok="$(metric certgate_config_reloads_total result=ok)" reloads_failed="$(metric certgate_config_reloads_total result=failed)"
if [ "$reloads_ok" -ge 2 ] && [ "$reloads_failed" -ge 1 ]; then
  ok "certgate_config_reloads_total: ok $reloads_ok (role edit, new CRL), failed $reloads_failed (the typo)"
else
  bad "certgate_config_reloads_total: ok $reloads_ok, failed $reloads_failed" "expected ok >= 2, failed >= 1"
fi

say "audit log: $logs/audit.log (one JSON line per decision)"
audit_file="$logs/audit.log"
deadline=$(( $(usec) + 5 * 1000000 ))
until [ "$(wc -l < "$audit_file")" -ge $((n_allow + n_deny)) ] || [ "$(usec)" -ge "$deadline" ]; do sleep 0.05; done
audit_lines="$(wc -l < "$audit_file" | tr -d ' ')"
{ grep -m1 '"decision":"allow"' "$audit_file" || true; } | dim
{ grep -m1 '"reason":"revoked_crl"' "$audit_file" || true; } | dim
if [ "$audit_lines" = $((n_allow + n_deny)) ] && ! grep -q 'BEGIN\|MII' "$audit_file"; then
  ok "$audit_lines audit lines, one per decision; none holds a certificate"
else
  bad "$audit_lines audit lines" "expected $((n_allow + n_deny)), and no PEM/DER in any"
fi

# --- 7. the CLI: check (offline) and validate -------------------------------------------
# run_cli WANT_EXIT MUST_CONTAIN ARGS...: runs certgate ARGS, shows its output, checks both.
run_cli() {
  local want="$1" needle="$2"; shift 2
  local out rc=0
  out="$(cd "$work" && "$certgate" "$@" 2>&1)" || rc=$?
  info "\$ certgate $*"
  printf '%s\n' "$out" | dim
  if [ "$rc" = "$want" ] && grep -qF -- "$needle" <<<"$out"; then
    ok "certgate $1 exit $rc, \"$needle\""
  else
    bad "certgate $1 exit $rc" "expected exit $want and \"$needle\" in the output"
  fi
}
say "certgate check: the server's decision for web-2, offline, with every role's verdict"
run_cli 1 "decision: deny (revoked_crl)" check --config certgate/certgate.yaml --cert pki/web-2-chain.pem
say "certgate validate: lint config, roles and CRLs (for CI)"
run_cli 0 "valid: 2 roles" validate --config certgate/certgate.yaml

if $hold; then
  say "holding: everything keeps running until Ctrl-C (or SIGTERM)"
  info "mTLS:    curl --cacert $pki/server-ca.pem --cert $pki/web-1-chain.pem --key $pki/web-1.key https://localhost:$listen_port/hello --resolve localhost:$listen_port:127.0.0.1"
  info "metrics: $metrics_url"
  info "audit:   tail -f $audit_file"
  # Ctrl-C, or SIGTERM (a backgrounded script ignores SIGINT and cannot trap it).
  trap 'hold=false' INT TERM
  while $hold; do sleep 1; done
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi

# --- stop certgate gracefully ------------------------------------------------------------
say "stop certgate with SIGTERM (graceful: drains in-flight checks)"
stop "$cg_pid" 10
cg_pid=''
grep -E 'shutdown requested|shutting down|stopped' "$logs/certgate.log" | sed 's/^/certgate: /' | dim
if [ "$stop_status" = 0 ] && grep -q 'stopped' "$logs/certgate.log"; then
  ok "certgate exited 0 after SIGTERM"
else
  bad "certgate exit status ${stop_status:-?} after SIGTERM" "expected a clean shutdown (exit 0)"
fi

# --- verdict -----------------------------------------------------------------------------
say "result"
if [ "$failures" -gt 0 ]; then
  die "$failures of $checks checks failed"
fi
info "${G}all $checks checks passed${N}: requests ${t_req_done} s; $(since "$t_start") s after the build"
info "metrics: $metrics_url   (Grafana: deploy/grafana/certgate-dashboard.json)"
info "audit:   $audit_file$($keep || echo '   (--keep to keep it)')"
