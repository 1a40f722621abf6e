#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, lints, doc tests, then every test
# through cargo-nextest, whose summary line closes the output.
#
# It installs what the tests need when it is missing, so a fresh machine needs nothing else:
#   - openssl (the tests cross-check signatures and ciphertexts with the openssl command)
#   - the PKCS#11 tools run against libcoffer_pkcs11.so (crates/coffer-pkcs11/tests/tools.rs):
#     opensc (pkcs11-tool), gnutls-bin (p11tool), libengine-pkcs11-openssl (OpenSSL's pkcs11
#     engine), softhsm2 (the reference module), and a JDK (keytool, javac, SunPKCS11)
#   - valgrind (the PKCS#11 entry points' pointer handling is run again under memcheck)
#   - cargo-nextest (the test runner)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v pkcs11-tool >/dev/null 2>&1 || missing+=(opensc)
command -v p11tool >/dev/null 2>&1 || missing+=(gnutls-bin)
command -v softhsm2-util >/dev/null 2>&1 || missing+=(softhsm2)
dpkg-query -W -f='${Status}' libengine-pkcs11-openssl 2>/dev/null | grep -q 'ok installed' ||
    missing+=(libengine-pkcs11-openssl)
command -v javac >/dev/null 2>&1 || missing+=(default-jdk-headless)
command -v valgrind >/dev/null 2>&1 || missing+=(valgrind)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest"
    cargo install --locked cargo-nextest
fi

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --doc --locked
cargo nextest run --workspace --locked --no-fail-fast
