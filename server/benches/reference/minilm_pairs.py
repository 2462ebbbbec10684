"""The verdict of scripts/bench-embed-reference.sh over its pairs of runs: per batch size, every
pair's texts/s and ratio and their medians (the pairs ran one after the other, so each ratio
compares the two implementations on the machine of the same minute).

usage: minilm_pairs.py OUT_JSON PAIR_REPORT_JSON...
"""

import json
import statistics
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    out_json, pair_files = sys.argv[1], sys.argv[2:]
    pairs = []
    for name in pair_files:
        with open(name, encoding="utf-8") as f:
            pairs.append(json.load(f))
    batches = [row["batch"] for row in pairs[0]["comparison"]]
    rows = []
    for i, batch in enumerate(batches):
        per_pair = [p["comparison"][i] for p in pairs]
        assert all(r["batch"] == batch for r in per_pair), f"{pair_files}: batch sizes differ between pairs"
        rows.append(
            {
                "batch": batch,
                "candle_texts_per_s": statistics.median(r["candle_texts_per_s"] for r in per_pair),
                "reference_texts_per_s": statistics.median(r["reference_texts_per_s"] for r in per_pair),
                "ratio": statistics.median(r["ratio"] for r in per_pair),
                "ratios": [r["ratio"] for r in per_pair],
            }
        )
    report = {
        "candle": pairs[0]["candle"],
        "reference": pairs[0]["reference"],
        "pairs": len(pairs),
        "comparison": rows,
        "min_cosine": min(p["min_cosine"] for p in pairs),
    }
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)

    print()
    print(f"medians of {len(pairs)} pairs (candle, then the reference, in turn):")
    print()
    print("| batch | candle texts/s | reference texts/s | candle / reference | ratio per pair |")
    print("|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['batch']} | {r['candle_texts_per_s']:.1f} | {r['reference_texts_per_s']:.1f} | {r['ratio']:.2f} "
            f"| {' '.join(f'{x:.2f}' for x in r['ratios'])} |"
        )
    print()
    print(f"lowest cosine(candle, reference) of any text in any pair: {report['min_cosine']:.6f}")


if __name__ == "__main__":
    main()
