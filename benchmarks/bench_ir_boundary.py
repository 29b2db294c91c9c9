"""IR drop under other word-line boundary conditions than the model's: what the model's
assumption (every row outside the read group driven at 0 V) is worth.

Run from the repository root::

    python benchmarks/bench_ir_boundary.py [--cases 64x16,64x32,128x32,128x16] [--seed 0]

For each tile of ``rows`` rows (plus the reference column) of 2-bit PCM-like cells (the cell
distribution of ``bench_ir_drop.py``), 1 ohm wires, reads of random bits on the rows of one
read group of ``rows_per_read`` rows, every group in turn, 5 reads each: the mean drop (|read
- wireless read|, in levels) of a full nodal solve of the passive crossbar with the other
rows

* ``grounded``: driven at 0 V -- the model (:func:`cimforge.golden.ir_drop.transfer_exact`;
  the solve must reproduce it, which the script checks),
* ``floating``: not driven at all (high-impedance drivers),
* ``1T1R``: cut off by an access transistor per cell (their cells carry no current),

and how much smaller than the model's the other two drops are. Prints a table.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve

from cimforge.golden.ir_drop import transfer_exact

LEVELS_US = np.array([0.25, 8.5, 16.75, 25.0])
LEVEL_P = np.array([0.55, 0.25, 0.12, 0.08])
MODES = ("grounded", "floating", "1T1R")


def column_currents(g_us: np.ndarray, r_wire: float, x: np.ndarray, group: np.ndarray,
                    mode: str) -> np.ndarray:
    """Currents (uS x V) into the bit lines' virtual grounds: rows of ``group`` driven at
    ``x``, the others as ``mode`` says; drivers at each word line's left end, amplifiers at
    each bit line's bottom end, ``r_wire`` ohm per segment."""
    rows, cols = g_us.shape
    n = rows * cols
    gw = 1e6 / r_wire  # a segment's conductance in uS
    wl = np.arange(n).reshape(rows, cols)
    bl = n + wl
    selected = np.zeros(rows, bool)
    selected[group] = True
    cells = np.where(selected[:, None], g_us, 0.0) if mode == "1T1R" else g_us
    edges = [(wl[:, :-1], wl[:, 1:], gw), (bl[:-1], bl[1:], gw), (wl, bl, cells)]
    i = np.concatenate([a.ravel() for a, _, _ in edges])
    j = np.concatenate([b.ravel() for _, b, _ in edges])
    c = np.concatenate([np.broadcast_to(v, a.shape).ravel() for a, _, v in edges])
    diag = np.bincount(i, c, 2 * n) + np.bincount(j, c, 2 * n)
    driven = selected if mode == "floating" else np.ones(rows, bool)
    diag[wl[driven, 0]] += gw
    diag[bl[-1]] += gw
    a = coo_matrix((np.concatenate([-c, -c, diag]),
                    (np.concatenate([i, j, np.arange(2 * n)]),
                     np.concatenate([j, i, np.arange(2 * n)]))), shape=(2 * n, 2 * n))
    rhs = np.zeros(2 * n)
    rhs[wl[:, 0]] = np.where(selected, x, 0.0) * gw
    return spsolve(a.tocsc(), rhs)[bl[-1]] * gw


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="64x16,64x32,128x32,128x16",
                        help="rows x rows_per_read, comma-separated")
    parser.add_argument("--r-wire", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    dg = (LEVELS_US[-1] - LEVELS_US[0]) / 3
    print(f"{'rows':>5} {'per read':>8} " + " ".join(f"{m:>9}" for m in MODES)
          + "  (mean drop, levels)  floating / 1T1R vs grounded")
    for case in args.cases.split(","):
        rows, per_read = (int(v) for v in case.split("x"))
        g = rng.choice(LEVELS_US, size=(rows, rows + 1), p=LEVEL_P)
        model = transfer_exact(g, args.r_wire)
        drops = {m: [] for m in MODES}
        for first in range(0, rows, per_read):
            group = np.arange(first, min(first + per_read, rows))
            for _ in range(5):
                x = np.zeros(rows)
                x[group] = rng.integers(0, 2, len(group))
                for m in MODES:
                    got = column_currents(g, args.r_wire, x, group, m)
                    if m == "grounded":
                        gap = np.abs(got - x @ model).max()
                        assert gap < 1e-9 * np.abs(x @ g).max(), f"solve != model ({gap})"
                    drops[m].append(np.abs(got - x @ g) / dg)
        mean = {m: float(np.concatenate(v).mean()) for m, v in drops.items()}
        rel = [100 * (mean[m] / mean["grounded"] - 1) for m in MODES[1:]]
        print(f"{rows:5d} {per_read:8d} " + " ".join(f"{mean[m]:9.3f}" for m in MODES)
              + "  " + " / ".join(f"{r:+.0f} %" for r in rel))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
