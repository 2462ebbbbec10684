"""The reference side of scripts/bench-embed-reference.sh.

all-MiniLM-L6-v2 through sentence-transformers on PyTorch (CPU, every core), on the same texts
and measured the same way as server/examples/minilm_measure.rs (texts per second for batches of
1, 8 and 32, the median of 5 rounds; every text's vector embedded alone). Then it compares the
two: the ratio candle / reference per batch size, and the cosine of the two vectors of every
text. Exits 1 when a cosine is below 0.999 (the server's vectors are not the model's).

usage: minilm_reference.py MODEL_DIR TEXTS_FILE CANDLE_JSON OUT_JSON [SECONDS_PER_BATCH]
"""

import json
import os
import sys
import time

import numpy as np
import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

ROUNDS = 5
MIN_COSINE = 0.999


def measure(model, texts, seconds):
    out = []
    for n in (1, 8, 32):
        batch = [texts[i % len(texts)] for i in range(n)]
        model.encode(batch, batch_size=32, normalize_embeddings=True)  # warm-up
        rates = []
        for _ in range(ROUNDS):
            start, done = time.perf_counter(), 0
            while time.perf_counter() - start < seconds / ROUNDS:
                model.encode(batch, batch_size=32, normalize_embeddings=True)
                done += n
            rates.append(done / (time.perf_counter() - start))
        rates.sort()
        out.append({"batch": n, "texts_per_s": rates[ROUNDS // 2], "rounds": rates})
    return out


def main():
    if len(sys.argv) < 5:
        sys.exit(__doc__)
    model_dir, texts_file, candle_json, out_json = sys.argv[1:5]
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 10.0
    with open(texts_file, encoding="utf-8") as f:
        texts = [line for line in f.read().splitlines() if line.strip()]
    with open(candle_json, encoding="utf-8") as f:
        candle = json.load(f)

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    model = SentenceTransformer(model_dir, device="cpu")
    throughput = measure(model, texts, seconds)
    vectors = [model.encode([t], normalize_embeddings=True)[0] for t in texts]

    cosines = [float(np.dot(np.asarray(c, dtype=np.float32), r)) for c, r in zip(candle["vectors"], vectors)]
    reference = {
        "implementation": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__} (CPU)",
        "threads": threads,
        "max_seq_length": model.max_seq_length,
        "throughput": throughput,
    }
    rows = []
    for c, r in zip(candle["throughput"], throughput):
        assert c["batch"] == r["batch"]
        rows.append(
            {
                "batch": c["batch"],
                "candle_texts_per_s": c["texts_per_s"],
                "reference_texts_per_s": r["texts_per_s"],
                "ratio": c["texts_per_s"] / r["texts_per_s"],
            }
        )
    report = {
        "candle": {k: v for k, v in candle.items() if k != "vectors"},
        "reference": reference,
        "comparison": rows,
        "cosines": cosines,
        "min_cosine": min(cosines),
    }
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)

    print(f"candle:    {candle['implementation']}, {candle['threads']} threads")
    print(f"reference: {reference['implementation']}, {threads} threads")
    print()
    print("| batch | candle texts/s | reference texts/s | candle / reference |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['batch']} | {row['candle_texts_per_s']:.1f} | {row['reference_texts_per_s']:.1f} "
            f"| {row['ratio']:.2f} |"
        )
    print()
    print(f"cosine(candle, reference) per text: min {min(cosines):.6f}, " + ", ".join(f"{c:.6f}" for c in cosines))
    if min(cosines) < MIN_COSINE:
        print(f"FAIL: a text's vectors differ (cosine below {MIN_COSINE})", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
