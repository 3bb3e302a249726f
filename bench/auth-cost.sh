#!/usr/bin/env bash
# Ingest cost per credential type: the same bulk and single-event loads as bench/ingest.sh,
# authenticated five ways, interleaved round by round so every type sees the same noise.
#
#   bench/auth-cost.sh                                      # build, RUNS=3, summary table
#   SKIP_BUILD=1 RUNS=1 BULK_EVENTS=50000 SINGLE_SECS=3 bench/auth-cost.sh   # quick check
#
# Credential types (each gets a fresh `graven serve`, fresh data dir, free loopback port, and
# its own writer identity made through the admin API):
#   api-key        Authorization: Bearer gvn_...        (graven identity create + key create)
#   jwt            Authorization: Bearer <RS256 JWT>    (OIDC federation: [[oidc.issuer]] whose
#                  JWKS a tiny python3 HTTP server on loopback serves; the JWT is minted here
#                  with python3 `cryptography`)
#   httpsig        RFC 9421 signature per request       (graven key add-public; Ed25519)
#   mtls           HTTPS + client certificate with URI SAN spiffe://bench.example/loadgen
#                  (openssl-made CA, server cert for 127.0.0.1, client cert; client_auth optional)
#   client-signed  api-key, and every event client-signed (server batch-verifies each request;
#                  bulk only)
# For each: graven-loadgen bulk (BULK_CONNECTIONS x BULK_BATCH events/request, BULK_EVENTS in
# total) and graven-loadgen single (SINGLE_CONNECTIONS connections, SINGLE_SECS s). Each round
# runs every type once per mode; the order rotates by one type each round. At the end: medians
# of events/s, p99 latency, server CPU per event (bulk: including the index catching up) and
# the load generator's own CPU (it signs requests for httpsig and shares the machine), with the
# ratio to api-key; and, when the example exists,
# `cargo run --release -p graven-core --example sigbatch` (one core).
#
# Env: RUNS (3), BULK_EVENTS (300000), BULK_CONNECTIONS (4), BULK_BATCH (10000),
# SINGLE_CONNECTIONS (256), SINGLE_SECS (8), TYPES ("api-key jwt httpsig mtls client-signed"),
# DRAIN_MAX_SECS (120: wait for the index to catch up after bulk), SKIP_BUILD=1,
# GRAVEN_BIN / LOADGEN_BIN, SIGBATCH=0 (skip sigbatch), KEEP=1 (keep the temp dir),
# RESULTS (default target/bench-auth/results-<time>.jsonl).
#
# Data dirs are deleted only at the end (see bench/ingest.sh: ext4 slows inode allocation right
# after big deletes). Disk: about 0.35 GB per bulk run of 300,000 events, so about 5 GB for
# RUNS=3 with all types.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-3}
BULK_EVENTS=${BULK_EVENTS:-300000}
BULK_CONNECTIONS=${BULK_CONNECTIONS:-4}
BULK_BATCH=${BULK_BATCH:-10000}
SINGLE_CONNECTIONS=${SINGLE_CONNECTIONS:-256}
SINGLE_SECS=${SINGLE_SECS:-8}
DRAIN_MAX_SECS=${DRAIN_MAX_SECS:-120}
TYPES=${TYPES:-api-key jwt httpsig mtls client-signed}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GRAVEN=${GRAVEN_BIN:-$TARGET_DIR/release/graven}
LOADGEN=${LOADGEN_BIN:-$TARGET_DIR/release/graven-loadgen}

log() { echo "[auth-cost $(date +%H:%M:%S)] $*" >&2; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building graven and graven-loadgen (release)"
    (cd "$ROOT" && cargo build --release -q --locked -p graven -p graven-loadgen)
fi
[ -x "$GRAVEN" ] && [ -x "$LOADGEN" ] || { echo "missing $GRAVEN or $LOADGEN" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl is needed for the mTLS certificates" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is needed for the admin API over HTTPS" >&2; exit 1; }
python3 -c 'import cryptography' 2>/dev/null || {
    echo "python3 with the cryptography package is needed to mint the JWT" >&2
    exit 1
}

mkdir -p "$TARGET_DIR/bench-auth"
RESULTS=${RESULTS:-$TARGET_DIR/bench-auth/results-$(date -u +%Y%m%dT%H%M%SZ).jsonl}
TMP=$(mktemp -d /tmp/graven-auth.XXXXXX)
SPID=""
JWKS_PID=""
cleanup() {
    [ -n "$SPID" ] && kill -TERM "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true
    [ -n "$JWKS_PID" ] && kill -TERM "$JWKS_PID" 2>/dev/null && wait "$JWKS_PID" 2>/dev/null || true
    if [ "${KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Credentials made once: Ed25519 signing key, mTLS certificates, OIDC issuer (JWKS + JWT).

"$GRAVEN" key new-signing --out "$TMP/signing.key" >"$TMP/signing.pub" 2>/dev/null

mkdir -p "$TMP/pki"
(
    cd "$TMP/pki"
    ec() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" "${@:2}"; }
    ec ca -x509 -days 3 -subj /CN=graven-bench-ca -out ca.pem \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    ec server -subj /CN=127.0.0.1 -out server.csr
    ec client -subj /CN=loadgen -out client.csr
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n' >server.ext
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://bench.example/loadgen\n' >client.ext
    for who in server client; do
        openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3 \
            -extfile $who.ext -out $who.pem
    done
) >"$TMP/pki/openssl.log" 2>&1 || { cat "$TMP/pki/openssl.log" >&2; exit 1; }

# The issuer: a loopback HTTP server for jwks.json on a free port (it prints the port).
mkdir -p "$TMP/oidc"
python3 - "$TMP/oidc" <<'EOF' >"$TMP/oidc/port" 2>"$TMP/oidc/server.err" &
import functools, http.server, sys
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=sys.argv[1]))
print(srv.server_address[1], flush=True)
srv.serve_forever()
EOF
JWKS_PID=$!
for _ in $(seq 1 100); do [ -s "$TMP/oidc/port" ] && break; sleep 0.05; done
ISSUER="http://127.0.0.1:$(cat "$TMP/oidc/port")"
# RS256, 2048-bit key; the token lives 24 h.
python3 - "$TMP/oidc" "$ISSUER" <<'EOF'
import base64, json, sys, time
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
d, iss = sys.argv[1], sys.argv[2]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
n = key.public_key().public_numbers()
num = lambda i: b64(i.to_bytes((i.bit_length() + 7) // 8, "big"))
json.dump({"keys": [{"kty": "RSA", "kid": "bench-1", "use": "sig", "alg": "RS256", "n": num(n.n), "e": num(n.e)}]},
          open(f"{d}/jwks.json", "w"))
now = int(time.time())
head = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "bench-1"}).encode())
claims = b64(json.dumps({"iss": iss, "aud": "graven", "sub": "loadgen", "iat": now, "exp": now + 86400,
                         "jti": "bench"}).encode())
sig = key.sign(f"{head}.{claims}".encode(), padding.PKCS1v15(), hashes.SHA256())
open(f"{d}/token.jwt", "w").write(f"{head}.{claims}.{b64(sig)}\n")
EOF
cat >"$TMP/oidc.toml" <<EOF
[[oidc.issuer]]
issuer = "$ISSUER"
jwks_uri = "$ISSUER/jwks.json"

[[oidc.policy]]
issuer = "$ISSUER"
audience = "graven"
identity = "ci:loadgen"
claims = { sub = "loadgen" }
EOF
cat >"$TMP/tls.toml" <<EOF
tls_cert = "$TMP/pki/server.pem"
tls_key = "$TMP/pki/server.key"
client_ca = "$TMP/pki/ca.pem"
client_auth = "optional"
EOF

# ---------------------------------------------------------------------------------------------
# Servers and identities

# Starts graven serve on a fresh data dir for credential type $2; sets SPID and SURL.
start_server() {
    local data=$1 type=$2 cfg=()
    case $type in
    jwt) cfg=(--config "$TMP/oidc.toml") ;;
    mtls) cfg=(--config "$TMP/tls.toml") ;;
    esac
    "$GRAVEN" serve --data "$data" --listen 127.0.0.1:0 "${cfg[@]}" >"$data.out" 2>"$data.err" &
    SPID=$!
    SURL=""
    for _ in $(seq 1 200); do
        SURL=$(grep -o 'listening on https\?://127\.0\.0\.1:[0-9]*' "$data.out" 2>/dev/null | sed 's/listening on //' || true)
        [ -n "$SURL" ] && break
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.05
    done
    if [ -z "$SURL" ]; then
        echo "graven serve did not start:" >&2
        cat "$data.out" "$data.err" >&2
        exit 1
    fi
}
stop_server() {
    kill -TERM "$SPID"
    local i
    for i in $(seq 1 600); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$SPID" 2>/dev/null && { log "server did not stop in 60 s; killing"; kill -KILL "$SPID"; }
    wait "$SPID" 2>/dev/null || true
    SPID=""
}

# Creates the identity and credential for type $2 on the server at SURL (data dir $1) and sets
# CRED, the loadgen's credential arguments.
setup_credential() {
    local data=$1 type=$2 admin=(--server "$SURL" --token-file "$1/admin.token") kid
    case $type in
    api-key | client-signed | httpsig)
        "$GRAVEN" identity create svc:loadgen --kind service_account --owner bench --role writer \
            "${admin[@]}" >/dev/null
        ;;
    jwt)
        "$GRAVEN" identity create ci:loadgen --kind ci_job --owner bench --role writer "${admin[@]}" >/dev/null
        ;;
    mtls)
        # The CLI trusts only public CAs: the admin API through curl with the bench CA.
        curl -sS --fail-with-body --cacert "$TMP/pki/ca.pem" -H "Authorization: Bearer $(cat "$data/admin.token")" \
            -H 'Content-Type: application/json' \
            -d '{"id":"spiffe://bench.example/loadgen","kind":"workload","owner":"bench","role":"writer"}' \
            "$SURL/v1/identities" >/dev/null
        ;;
    esac
    case $type in
    api-key)
        "$GRAVEN" key create svc:loadgen "${admin[@]}" >"$data.key" 2>/dev/null
        CRED=(--auth bearer --token-file "$data.key")
        ;;
    client-signed)
        "$GRAVEN" key create svc:loadgen "${admin[@]}" >"$data.key" 2>/dev/null
        kid=$("$GRAVEN" key add-public svc:loadgen --public-key "$(cat "$TMP/signing.pub")" "${admin[@]}")
        CRED=(--auth bearer --token-file "$data.key" --client-signed --signing-key "$TMP/signing.key" --key-id "$kid")
        ;;
    httpsig)
        kid=$("$GRAVEN" key add-public svc:loadgen --public-key "$(cat "$TMP/signing.pub")" "${admin[@]}")
        CRED=(--auth httpsig --signing-key "$TMP/signing.key" --key-id "$kid")
        ;;
    jwt) CRED=(--auth jwt --jwt-file "$TMP/oidc/token.jwt") ;;
    mtls)
        CRED=(--auth mtls --client-cert "$TMP/pki/client.pem" --client-key "$TMP/pki/client.key"
            --ca "$TMP/pki/ca.pem")
        ;;
    *) echo "unknown credential type $type" >&2; exit 1 ;;
    esac
}

# Appends the loadgen's JSON line to RESULTS with the run and credential type.
record() {  # $1 = run, $2 = type, $3 = json
    python3 -c 'import json,sys; d=json.loads(sys.argv[3]); print(json.dumps({"system":"graven","run":int(sys.argv[1]),"type":sys.argv[2],**d}))' \
        "$1" "$2" "$3" >>"$RESULTS"
}
show() {
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); s=d["server"]; l=d.get("latency_ms") or d["request_latency_ms"]
print("    %.0f events/s, p50 %.1f ms, p99 %.1f ms, non-201 %d, server CPU %.0f%%, client CPU %.0f%%%s" % (
 d["events_per_s"], l["p50"], l["p99"], d["non_201"], s["server_cpu_pct"] or 0, s["client_cpu_pct"] or 0,
 "" if not d.get("first_error") else "; first error: " + d["first_error"][:200]))' "$1" >&2
}

python3 -c '
import json, os, subprocess, sys
cpu = next((l.split(":",1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
rev = subprocess.run(["git","-C",sys.argv[1],"rev-parse","--short","HEAD"],capture_output=True,text=True).stdout.strip()
dirty = subprocess.run(["git","-C",sys.argv[1],"status","--porcelain","--untracked-files=no"],capture_output=True,text=True).stdout.strip() != ""
print(json.dumps({"system":"machine","nproc":os.cpu_count(),"cpu":cpu,"loadavg":open("/proc/loadavg").read().split()[:3],
                  "commit":rev + ("+dirty" if dirty else ""),"runs":int(sys.argv[2]),"types":sys.argv[3].split(),
                  "bulk":{"events":int(sys.argv[4]),"connections":int(sys.argv[5]),"batch":int(sys.argv[6])},
                  "single":{"connections":int(sys.argv[7]),"secs":float(sys.argv[8])}}))
' "$ROOT" "$RUNS" "$TYPES" "$BULK_EVENTS" "$BULK_CONNECTIONS" "$BULK_BATCH" "$SINGLE_CONNECTIONS" "$SINGLE_SECS" >>"$RESULTS"

# ---------------------------------------------------------------------------------------------
# Rounds

read -r -a TYPE_LIST <<<"$TYPES"
NT=${#TYPE_LIST[@]}
for run in $(seq 1 "$RUNS"); do
    for k in $(seq 0 $((NT - 1))); do
        type=${TYPE_LIST[$(((k + run - 1) % NT))]}
        data=$TMP/bulk-$type-$run
        start_server "$data" "$type"
        setup_credential "$data" "$type"
        log "run $run: bulk, $type, $BULK_CONNECTIONS x $BULK_BATCH events/request, $BULK_EVENTS events ($SURL)"
        out=$(timeout 900 "$LOADGEN" bulk --url "$SURL" "${CRED[@]}" --connections "$BULK_CONNECTIONS" \
            --batch "$BULK_BATCH" --events "$BULK_EVENTS" --server-pid "$SPID" --drain-max-secs "$DRAIN_MAX_SECS")
        record "$run" "$type" "$out"
        show "$out"
        stop_server
    done
    for k in $(seq 0 $((NT - 1))); do
        type=${TYPE_LIST[$(((k + run - 1) % NT))]}
        [ "$type" = client-signed ] && continue # bulk only: batch verification is the point
        data=$TMP/single-$type-$run
        start_server "$data" "$type"
        setup_credential "$data" "$type"
        log "run $run: single, $type, $SINGLE_CONNECTIONS connections, ${SINGLE_SECS}s ($SURL)"
        out=$(timeout 300 "$LOADGEN" single --url "$SURL" "${CRED[@]}" --connections "$SINGLE_CONNECTIONS" \
            --duration-secs "$SINGLE_SECS" --server-pid "$SPID")
        record "$run" "$type" "$out"
        show "$out"
        stop_server
    done
done

SIGBATCH_OUT=""
if [ "${SIGBATCH:-1}" = 1 ] && [ -f "$ROOT/crates/graven-core/examples/sigbatch.rs" ]; then
    log "sigbatch: client-signed event verification on one core"
    SIGBATCH_OUT=$(cd "$ROOT" && cargo run --release -q --locked -p graven-core --example sigbatch 2>&1) || true
fi

log "results: $RESULTS"
python3 - "$RESULTS" "$SIGBATCH_OUT" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
runs = [r for r in rows if r.get("system") == "graven"]
order = ["api-key", "jwt", "httpsig", "mtls", "client-signed"]
types = [t for t in order if any(r["type"] == t for r in runs)] + sorted({r["type"] for r in runs} - set(order))
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def cpu_us(r):
    s = r["server"]
    if r["mode"] == "bulk":
        d = r.get("drain") or {}
        return d.get("server_cpu_us_per_event_incl_drain")
    n = r["events_per_s"] * r["duration_s"]
    return s["server_cpu_s"] * 1e6 / n if s.get("server_cpu_s") is not None and n else None
for mode in ["bulk", "single"]:
    m = {t: [r for r in runs if r["type"] == t and r["mode"] == mode] for t in types}
    m = {t: rs for t, rs in m.items() if rs}
    if not m:
        continue
    lat = "request_latency_ms" if mode == "bulk" else "latency_ms"
    stat = {t: (med([r["events_per_s"] for r in rs]), med([r[lat]["p99"] for r in rs]), med([cpu_us(r) for r in rs]),
                sum(r["non_201"] + r["transport_errors"] + r["receipt_mismatches"] for r in rs), len(rs),
                med([r["server"].get("client_cpu_pct") for r in rs])) for t, rs in m.items()}
    base = stat.get("api-key")
    print(f"\n{mode} (medians of {max(s[4] for s in stat.values())} runs)" + (", server CPU incl. index catch-up" if mode == "bulk" else ""))
    print(f"  {'credential':<14} {'events/s':>10} {'vs api-key':>10} {'p99 ms':>9} {'vs api-key':>10} {'CPU us/ev':>10} {'client CPU':>10} {'errors':>7}")
    for t, (eps, p99, cpu, errs, _, ccpu) in stat.items():
        r1 = f"{eps / base[0]:.2f}x" if base and base[0] else "-"
        r2 = f"{p99 / base[1]:.2f}x" if base and base[1] else "-"
        c = f"{cpu:.1f}" if cpu is not None else "-"
        cc = f"{ccpu:.0f}%" if ccpu is not None else "-"
        print(f"  {t:<14} {eps:>10.0f} {r1:>10} {p99:>9.1f} {r2:>10} {c:>10} {cc:>10} {errs:>7}")
if sys.argv[2].strip():
    print("\nsigbatch (cargo run --release -p graven-core --example sigbatch):")
    for l in sys.argv[2].strip().splitlines():
        print("  " + l)
EOF
