"""Wall time of ``cimforge embed --mode float`` on the 30 reference sentences.

Run from the repository root::

    python benchmarks/bench_embed.py [--repeat 5] [--batch-size 32]

Model loading is timed once and reported apart; the embedding of all sentences is run once to
warm up, then ``--repeat`` times: the best and the mean are printed, with sentences per second
of the best run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from golden.float_model import load_minilm

SENTENCES = Path(__file__).resolve().parent.parent / "tests" / "data" / "minilm_sentences.txt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (default: 5)")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per pass")
    args = parser.parse_args(argv)

    lines = SENTENCES.read_text(encoding="utf-8").splitlines()
    sentences = [s.strip() for s in lines if s.strip()]

    start = time.perf_counter()
    encoder = load_minilm()
    load_s = time.perf_counter() - start

    encoder.embed(sentences, batch_size=args.batch_size)  # warm-up
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        encoder.embed(sentences, batch_size=args.batch_size)
        times.append(time.perf_counter() - start)
    best, mean = min(times), statistics.fmean(times)

    print(f"model load:          {load_s * 1e3:8.1f} ms")
    print(
        f"embed {len(sentences)} sentences: {best * 1e3:8.1f} ms best of {args.repeat}, "
        f"{mean * 1e3:.1f} ms mean (batch size {args.batch_size})"
    )
    print(f"throughput:          {len(sentences) / best:8.1f} sentences/s (best run)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
