#!/usr/bin/env bash
# The test command (README, .ci/run): checks formatting (cargo fmt) and the
# deployment files (scripts/check-deploy.sh: Helm chart, compose file,
# Dockerfiles), starts one private PostgreSQL and one Redis for the whole
# run (scripts/services.sh), builds once (the fuzz targets of fuzz/ too),
# runs every test, and stops the services, whatever happened; then runs
# the README's first command as a newcomer would (scripts/check-readme.sh:
# scripts/run.sh, a release build, and chat_client connecting to it).
# Arguments go to the test binaries (a filter; the README check is left out
# then).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --check || { echo "test: run cargo fmt (rustfmt.toml)" >&2; exit 1; }
bash scripts/check-deploy.sh
# The dashboard's page is tested in a real headless browser.
if ! command -v chromium >/dev/null; then
    echo "test: installing Debian's chromium for the dashboard test" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi

dir=$(mktemp -d /tmp/chatp-test.XXXXXX)
cleanup() {
    bash scripts/services.sh stop "$dir" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT

bash scripts/services.sh start "$dir"
# shellcheck disable=SC1091
source "$dir/env"

# The test-only fault hooks (src/fault.rs) are compiled in: a test makes a
# connection's thread panic to prove that nothing it held leaks.
cargo build --locked --all-targets --features fault-hooks
# The fuzz targets (fuzz/, a crate of its own) build on stable too, so a
# change to a parser's API cannot leave them broken until someone fuzzes.
cargo build --locked --manifest-path fuzz/Cargo.toml --target-dir target
cargo test --locked --all-targets --features fault-hooks -- "$@"
# The README's "run the service" command and its client, as written.
if [ "$#" -eq 0 ]; then
    bash scripts/check-readme.sh
fi
