#!/usr/bin/env bash
# Everything a fresh machine needs before the harness or the tests run. Idempotent and quick
# when all is in place: the embedding model (scripts/fetch-model.sh), a Docker engine
# (scripts/docker-up.sh) and the registry-free images (scripts/build-images.sh). Set
# LOADTEST_IMAGES=official or external to skip the image build.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "setup: cargo is missing: install a Rust toolchain (rustup)" >&2; exit 1; }

# The MiniLM tests and SERVER_EMBEDDER=minilm read it from models/all-MiniLM-L6-v2.
bash scripts/fetch-model.sh

case "${LOADTEST_IMAGES:-auto}" in
  external) ;; # nothing to run locally
  official) bash scripts/docker-up.sh ;;
  *)
    bash scripts/docker-up.sh
    bash scripts/build-images.sh
    ;;
esac
bash scripts/setup-interop.sh
