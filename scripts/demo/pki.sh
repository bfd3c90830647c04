#!/usr/bin/env bash
# The demo's PKI, made with the openssl CLI only (P-256 keys, SHA-256 signatures).
#
#   scripts/demo/pki.sh OUTDIR
#
# Writes into OUTDIR (created if needed; existing files are overwritten):
#   client-root.pem/.key      "certgate demo Clients Root": the clients' trust anchor
#                             (Envoy's CLIENT_CA and the roles' certificate_file)
#   client-issuing.pem/.key   "certgate demo Clients Issuing CA", signed by the root
#                             (pathlen 0): it issues every client leaf and the CRL
#   NAME.pem, NAME.key        client leaves (clientAuth EKU), valid 30 days:
#                               web-1    O=certgate demo, OU=eng,
#                                        URI:spiffe://cluster.local/ns/prod/sa/web
#                               web-2    OU=eng     (revoked on the CRL below)
#                               sales-1  OU=sales
#                               alice    OU=admins
#   NAME-chain.pem            leaf + intermediate: what a client sends (curl --cert) and
#                             what `certgate check --cert` takes
#   server-ca.pem/.key        a separate root for Envoy's server certificate
#   server.pem, server.key    Envoy's server certificate: CN=localhost, DNS:localhost,
#                             IP:127.0.0.1, serverAuth
#   client-issuing.crl.pem    a v2 CRL signed by the intermediate revoking web-2, next
#                             update in 7 days (`openssl ca -revoke` + `-gencrl`)
#   ca/                       the intermediate's minimal `openssl ca` database
#
# Serials are random (openssl's default, 159 bits). openssl's chatter is kept out of
# the terminal and shown only if a step fails.
set -euo pipefail

if [ "$#" -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
mkdir -p "$1"
cd "$1"

DAYS=30
log="$PWD/openssl.log"
: > "$log"

# Runs one openssl command; on failure prints what it said and stops.
ossl() {
    echo "+ openssl $*" >> "$log"
    if ! openssl "$@" >> "$log" 2>&1; then
        echo "pki.sh: openssl $1 failed:" >&2
        tail -n 20 "$log" >&2
        exit 1
    fi
}

key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# sign NAME ISSUER EXTFILE SUBJECT: NAME.key (new), NAME.pem signed by ISSUER.pem/.key
sign() {
    local name="$1" issuer="$2" ext="$3" subject="$4"
    key "$name.key"
    ossl req -new -key "$name.key" -subj "$subject" -out "$name.csr"
    ossl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" \
        -days "$DAYS" -sha256 -extfile "$ext" -out "$name.pem"
    rm -f "$name.csr"
}

# --- extension profiles ---
cat > ext-ca.cnf <<'EXT'
basicConstraints=critical,CA:TRUE
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
cat > ext-intermediate.cnf <<'EXT'
basicConstraints=critical,CA:TRUE,pathlen:0
keyUsage=critical,keyCertSign,cRLSign
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT
client_ext() {  # client_ext FILE [SAN]
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature"
        echo "extendedKeyUsage=clientAuth"
        echo "subjectKeyIdentifier=hash"
        echo "authorityKeyIdentifier=keyid"
        [ -z "${2:-}" ] || echo "subjectAltName=$2"
    } > "$1"
}
cat > ext-server.cnf <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EXT

# --- client root and issuing intermediate ---
key client-root.key
ossl req -x509 -new -key client-root.key -sha256 -days "$DAYS" \
    -subj "/O=certgate demo/CN=certgate demo Clients Root" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out client-root.pem
sign client-issuing client-root ext-intermediate.cnf \
    "/O=certgate demo/CN=certgate demo Clients Issuing CA"

# --- client leaves ---
client_ext ext-web-1.cnf "URI:spiffe://cluster.local/ns/prod/sa/web"
sign web-1 client-issuing ext-web-1.cnf "/O=certgate demo/OU=eng/CN=web-1"
client_ext ext-client.cnf
sign web-2 client-issuing ext-client.cnf "/O=certgate demo/OU=eng/CN=web-2"
sign sales-1 client-issuing ext-client.cnf "/O=certgate demo/OU=sales/CN=sales-1"
sign alice client-issuing ext-client.cnf "/O=certgate demo/OU=admins/CN=alice"
for name in web-1 web-2 sales-1 alice; do
    cat "$name.pem" client-issuing.pem > "$name-chain.pem"
done

# --- Envoy's server certificate, from its own root ---
key server-ca.key
ossl req -x509 -new -key server-ca.key -sha256 -days "$DAYS" \
    -subj "/O=certgate demo/CN=certgate demo Server CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out server-ca.pem
sign server server-ca ext-server.cnf "/O=certgate demo/CN=localhost"

# --- the intermediate's CRL: revoke web-2 ---
rm -rf ca
mkdir ca
: > ca/index.txt
echo 1000 > ca/crlnumber
cat > ca/ca.cnf <<EOF
[ ca ]
default_ca = issuing

[ issuing ]
dir              = $PWD/ca
database         = \$dir/index.txt
crlnumber        = \$dir/crlnumber
certificate      = $PWD/client-issuing.pem
private_key      = $PWD/client-issuing.key
default_md       = sha256
default_crl_days = 7
crl_extensions   = crl_ext

[ crl_ext ]
authorityKeyIdentifier = keyid:always
EOF
ossl ca -batch -config ca/ca.cnf -revoke web-2.pem -crl_reason keyCompromise
ossl ca -batch -config ca/ca.cnf -gencrl -out client-issuing.crl.pem

rm -f ext-*.cnf
