#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: formatting, lints, doc tests, then every test
# through cargo-nextest, whose summary line closes the output.
#
# It installs what the tests need when it is missing, so a fresh machine needs nothing else:
#   - openssl (the tests cross-check signatures and ciphertexts with the openssl command)
#   - cargo-nextest (the test runner)
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
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
