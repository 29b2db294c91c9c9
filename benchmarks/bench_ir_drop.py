"""IR drop: the ladder approximation against the exact nodal solve, and what each costs.

Run from the repository root::

    python benchmarks/bench_ir_drop.py [--sizes 64,128,256] [--r-wire 0.5,1,2] [--seed 0]

For square tiles (plus the reference column) of 2-bit PCM-like cells (levels 0..3 over
0.25..25 uS, level 0 for 55 % of cells, as int8 weights' low slices are), 200 reads with
random bits on every row: the drop the wires cause (exact minus wireless read) and the error
the approximation leaves (approximate minus exact read), both in levels (mean and max over
reads and columns), and the time of each solve.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cimforge.golden.ir_drop import transfer_exact, transfer_ladders

LEVELS_US = np.array([0.25, 8.5, 16.75, 25.0])
LEVEL_P = np.array([0.55, 0.25, 0.12, 0.08])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,128,256")
    parser.add_argument("--r-wire", default="0.5,1,2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    dg = (LEVELS_US[-1] - LEVELS_US[0]) / 3
    print(f"{'rows':>5} {'r_wire':>7} {'exact s':>8} {'ladder ms':>9} {'drop mean':>10} "
          f"{'drop max':>9} {'err mean':>9} {'err max':>8}  (levels)")
    for r_wire in (float(v) for v in args.r_wire.split(",")):
        for rows in (int(v) for v in args.sizes.split(",")):
            g = rng.choice(LEVELS_US, size=(rows, rows + 1), p=LEVEL_P)
            t0 = time.perf_counter()
            exact = transfer_exact(g, r_wire)
            t1 = time.perf_counter()
            approx = transfer_ladders(g, r_wire)
            t2 = time.perf_counter()
            x = rng.integers(0, 2, size=(200, rows)).astype(float)
            drop = np.abs(x @ g - x @ exact) / dg
            err = np.abs(x @ approx - x @ exact) / dg
            print(f"{rows:5d} {r_wire:7.2f} {t1 - t0:8.2f} {(t2 - t1) * 1e3:9.1f} "
                  f"{drop.mean():10.3f} {drop.max():9.2f} {err.mean():9.4f} {err.max():8.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
