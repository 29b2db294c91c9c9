"""Wall time of ``cimforge embed`` on the 30 reference sentences, per mode.

Run from the repository root::

    python benchmarks/bench_embed.py [--modes float,int,cim,accel] [--config minilm-pcm]
                                     [--repeat 3] [--batch-size 32]

Model loading is timed once and reported apart. Each mode embeds all sentences once to warm
up (compiling what it compiles), then ``--repeat`` times: the best and the mean are printed,
with sentences per second of the best run and the mean / min cosine similarity to float. A
``cim`` run includes programming every layer's cells (a fresh ``CimLinear`` per run), as
``cimforge embed --mode cim`` does; ``accel`` likewise programs the golden accelerator's tile
units (calibration of the activation ranges on the same sentences, done once, is not timed);
``int``, ``cim`` and ``accel`` use ``--config``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from cimforge.config import load_config
from cimforge.golden.accelerator import AcceleratorModel
from cimforge.golden.float_model import load_minilm
from cimforge.golden.int_model import calibrate
from cimforge.golden.quant import CimLinear, IntLinear

MODES = ("float", "int", "cim", "accel")
SENTENCES = Path(__file__).resolve().parent.parent / "tests" / "data" / "minilm_sentences.txt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="float,cim",
                        help="float, int, cim, accel (default: float,cim)")
    parser.add_argument("--config", default="minilm-pcm",
                        help="config of the int, cim and accel modes")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (default: 3)")
    parser.add_argument("--batch-size", type=int, default=32, help="sentences per pass")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    for mode in modes:
        if mode not in MODES:
            parser.error(f"--modes {args.modes!r}: {mode!r} is not one of {', '.join(MODES)}")

    lines = SENTENCES.read_text(encoding="utf-8").splitlines()
    sentences = [s.strip() for s in lines if s.strip()]
    cfg = load_config(args.config)

    start = time.perf_counter()
    encoder = load_minilm()
    print(f"model load: {(time.perf_counter() - start) * 1e3:.1f} ms")
    ref = encoder.embed(sentences, batch_size=args.batch_size)
    ranges = calibrate(encoder, sentences) if "accel" in modes else None
    runs = {
        "float": lambda: encoder.embed(sentences, batch_size=args.batch_size),
        "int": lambda: encoder.with_linear(IntLinear(cfg)).embed(
            sentences, batch_size=args.batch_size),
        "cim": lambda: encoder.with_linear(CimLinear(cfg)).embed(
            sentences, batch_size=args.batch_size),
        "accel": lambda: AcceleratorModel(encoder, cfg, ranges).embed(
            sentences, batch_size=args.batch_size),
    }
    for mode in modes:
        run = runs[mode]
        run()  # warm-up
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            emb = run()
            times.append(time.perf_counter() - start)
        best, mean = min(times), statistics.fmean(times)
        cos = (emb * ref).sum(axis=1)
        on = "" if mode == "float" else f" ({cfg.name})"
        print(f"{mode:5s}{on}: {len(sentences)} sentences in {best:7.3f} s best of "
              f"{args.repeat} ({mean:.3f} s mean), {len(sentences) / best:7.1f} sentences/s; "
              f"cosine to float mean {cos.mean():.4f} min {cos.min():.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
