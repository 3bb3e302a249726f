#!/usr/bin/env bash
# Makes graven-tsa's test vectors with OpenSSL 3: a test root (root.pem), two TSAs (RSA 2048
# under the root, ESSCertID; P-256 under a P-384 intermediate, ESSCertIDv2, milliseconds), and
# one token from each (rsa.token, ec.token) for the message "graven tsa fuzz seed\n" with the
# nonce 0x1122334455667788. tests/vectors.rs and the tsa_token fuzz target trust root.pem and
# know the two tokens; fuzz/seeds/tsa_token/ holds them, a granted and a refused reply, and
# root.pem, each behind the target's mode byte. Re-running makes new keys and tokens: commit
# every output together.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '[ req ]\ndistinguished_name = dn\nprompt = no\n[ dn ]\nCN = unused\n' > "$work/req.cnf"
ossl() { openssl "$@" 2>/dev/null; }

ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/root.key"
ossl req -config "$work/req.cnf" -new -x509 -key "$work/root.key" -out root.pem -days 36500 -sha256 \
  -subj "/CN=Graven Fuzz Root" -set_serial 1 -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign -addext subjectKeyIdentifier=hash

issue() { # name key subject issuer-cert issuer-key extensions serial
  ossl req -config "$work/req.cnf" -new -key "$2" -subj "$3" -out "$work/$1.csr"
  printf "$6" > "$work/$1.ext"
  ossl x509 -req -in "$work/$1.csr" -CA "$4" -CAkey "$5" -set_serial "$7" -days 36500 -sha256 \
    -extfile "$work/$1.ext" -out "$work/$1.pem"
}
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$work/inter.key"
issue inter "$work/inter.key" "/CN=Graven Fuzz Intermediate" root.pem "$work/root.key" \
  'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign\n' 2
tsa_ext='basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=critical,timeStamping\n'
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$work/rsa.key"
issue rsa "$work/rsa.key" "/CN=Graven Fuzz TSA RSA" root.pem "$work/root.key" "$tsa_ext" 3
ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ec.key"
issue ec "$work/ec.key" "/CN=Graven Fuzz TSA EC" "$work/inter.pem" "$work/inter.key" "$tsa_ext" 4

printf 'graven tsa fuzz seed\n' > "$work/message"
# The request by hand, for a fixed nonce: SEQUENCE { version 1, messageImprint { sha256,
# SHA-256(message) }, nonce 0x1122334455667788, certReq TRUE }.
imprint=$(openssl dgst -sha256 -binary "$work/message" | xxd -p -c 64)
printf '3041020101302f300b06096086480165030402010420%s020811223344556677880101ff' "$imprint" \
  | xxd -r -p > "$work/query"
for t in rsa ec; do
  certs=""; digest=sha256; ess=sha1; precision=0
  if [ "$t" = ec ]; then certs="certs = $work/inter.pem"; digest=sha384; ess=sha256; precision=3; fi
  echo 01 > "$work/$t.serial"
  cat > "$work/$t.cnf" <<CNF
[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
serial = $work/$t.serial
crypto_device = builtin
signer_cert = $work/$t.pem
$certs
signer_key = $work/$t.key
signer_digest = $digest
default_policy = 1.3.6.1.4.1.99999.1
digests = sha256
accuracy = secs:1
clock_precision_digits = $precision
tsa_name = yes
ess_cert_id_alg = $ess
CNF
  ossl ts -reply -config "$work/$t.cnf" -queryfile "$work/query" -out "$t.reply"
  ossl ts -reply -in "$t.reply" -token_out -out "$t.token"
  ossl ts -verify -in "$t.reply" -queryfile "$work/query" -CAfile root.pem -untrusted "$work/inter.pem" >/dev/null
done
# A refusal: the same request naming a policy the TSA does not have.
printf '3047020101302f300b06096086480165030402010420%s06042a030409020811223344556677880101ff' \
  "$imprint" | xxd -r -p > "$work/query-policy"
ossl ts -reply -config "$work/rsa.cnf" -queryfile "$work/query-policy" -out refused.reply
seeds=../../../../fuzz/seeds/tsa_token
mkdir -p "$seeds"
{ printf '\x00'; cat rsa.token; } > "$seeds/rsa-token"
{ printf '\x00'; cat ec.token; } > "$seeds/ec-token"
{ printf '\x80'; cat rsa.reply; } > "$seeds/rsa-reply"
{ printf '\x80'; cat refused.reply; } > "$seeds/refused-reply"
{ printf '\x40'; cat root.pem; } > "$seeds/root-pem"
rm -f rsa.reply ec.reply refused.reply
