#!/usr/bin/env bash
# The project's test command: brings up what the tests need on a fresh machine, then runs
# every test of the workspace against real containers.
#
#   bash scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
cargo test --workspace --locked "$@"
