"""Speed of the bit-accurate CIM matmul against a plain numpy float matmul.

Run from the repository root::

    python benchmarks/bench_cim.py [--config minilm-pcm] [--repeat 5]

Shape (128 x 384) @ (384 x 1536), int8 operands drawn from a seeded normal distribution.
Prints, for the ideal array and with every PCM effect on (programming noise, drift to 1 hour,
1/f read noise, global drift compensation), the time to program the matrix once and the best
and mean time of ``matmul`` over ``--repeat`` runs; then numpy's float32 matmul of the same
shape.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np

from cimforge.config import AnalogConfig, load_config
from cimforge.golden.cim import CimMatrix


def timed(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.fmean(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="minilm-pcm")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    rng = np.random.default_rng(args.seed)
    w = np.clip(np.rint(rng.standard_normal((384, 1536)) * 30), -127, 127).astype(np.int64)
    x = np.clip(np.rint(rng.standard_normal((128, 384)) * 30), -127, 127).astype(np.int64)
    ideal = dataclasses.replace(cfg, analog=AnalogConfig())  # every effect off
    pcm = dataclasses.replace(cfg, analog=dataclasses.replace(
        cfg.analog, prog_noise=True, drift=True, read_noise=True, t_inference=3600.0,
        drift_compensation=True))
    t = cfg.tile
    print(f"config {cfg.name}: {t.rows}x{t.cols} tiles, {t.bits_per_cell} bits/cell, "
          f"{t.rows_per_read} rows/read, {cfg.adc.bits}-bit {cfg.adc.kind} ADC")
    for label, c in (("ideal", ideal), ("all PCM effects", pcm)):
        t0 = time.perf_counter()
        m = CimMatrix(w, c)
        program = time.perf_counter() - t0
        m.matmul(x)  # warm-up
        best, mean = timed(lambda m=m: m.matmul(x), args.repeat)
        print(f"cim matmul, {label:16s}: program {program * 1e3:7.1f} ms, matmul "
              f"{best * 1e3:7.1f} ms best of {args.repeat} ({mean * 1e3:.1f} ms mean)")
    xf, wf = x.astype(np.float32), w.astype(np.float32)
    best, mean = timed(lambda: xf @ wf, args.repeat)
    print(f"numpy float32 matmul          : {best * 1e3:7.2f} ms best ({mean * 1e3:.2f} ms mean)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
