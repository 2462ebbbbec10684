#!/usr/bin/env bash
# all-MiniLM-L6-v2 as the server runs it (candle) beside the reference implementation
# (sentence-transformers on PyTorch, CPU) on this machine: texts per second for batches of 1,
# 8 and 32, their ratio, and the cosine of the two vectors of every text (exit 1 below 0.999).
#
# The reference is installed into target/embed-reference/venv from the pinned
# server/benches/reference/requirements.txt (PyPI only; PyTorch's Linux wheels bring their CUDA
# libraries, ~4 GB in all, downloaded once). It runs here, never in the server.
#
# The two run one after the other, PAIRS times (candle, reference, candle, reference, ...), and
# the verdict is the median of the pairs' ratios: this machine's speed drifts by a third from
# one minute to the next, so one pair's ratio says little (0.72 to 1.07 for the same binaries).
#
# Environment:
#   SECONDS_PER_BATCH  measuring time per batch size and implementation (default 10)
#   PAIRS              candle/reference pairs (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'bench-embed-reference: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

seconds=${SECONDS_PER_BATCH:-10}
pairs=${PAIRS:-5}
[[ $pairs =~ ^[1-9][0-9]*$ ]] || die "PAIRS=$pairs is not a positive whole number"
model=models/all-MiniLM-L6-v2
texts=server/benches/reference/descriptions.txt
out=target/embed-reference
venv=$out/venv
lock=server/benches/reference/requirements.txt

bash scripts/fetch-model.sh
command -v python3 >/dev/null || die "python3 is missing: install it (apt-get install python3 python3-venv)"
mkdir -p "$out"
if [[ ! -x $venv/bin/python || ! -f $venv/.installed || $(cat "$venv/.installed") != $(sha256sum "$lock" | cut -d' ' -f1) ]]; then
  rm -rf "$venv"
  python3 -m venv "$venv" || die "python3 -m venv failed: install python3-venv"
  say "installing the reference from $lock (first time: several minutes)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check --only-binary=:all: --no-deps -r "$lock" \
    || die "pip install -r $lock failed: is PyPI reachable?"
  sha256sum "$lock" | cut -d' ' -f1 >"$venv/.installed"
fi

cargo build --release --locked -p server --example minilm_measure
rm -f "$out"/candle-*.json "$out"/report-*.json # an earlier run's pairs are not this run's
for pair in $(seq 1 "$pairs"); do
  say "pair $pair of $pairs: candle, then the reference, ${seconds} s per batch size each"
  target/release/examples/minilm_measure "$model" "$texts" "$seconds" >"$out/candle-$pair.json"
  "$venv/bin/python" server/benches/reference/minilm_reference.py "$model" "$texts" "$out/candle-$pair.json" \
    "$out/report-$pair.json" "$seconds"
done
"$venv/bin/python" server/benches/reference/minilm_pairs.py "$out/report.json" "$out"/report-*.json
say "written: $out/report.json"
