"""IR drop: what the resistance of the word and bit lines does to a crossbar read.

The network of one tile: row ``r``'s word line is driven from its left end (the DAC, input
voltage ``v_r``, or 0 V for a 0 bit) and runs through one wire segment of ``r_wire`` per
column; column ``c``'s bit line runs down through one segment per row to the sense amplifier
below the last row, a virtual ground that measures the column current. The cell at ``(r, c)``
is a conductance ``G[r, c]`` between the two lines. The reference column is one more column
of the tile (the last one, furthest from the drivers).

Every element is linear, so a column current is a linear function of the row voltages:
``I_c = sum_r v_r T[r, c]``, with ``T`` the tile's *effective conductance*. Without wires
``T = G``; with them, each cell's current loses what the voltage drops along its word line
and the rise along its bit line take away. ``T`` is fixed once the cells are, so IR drop is
folded into the array at programming time and reads stay one matrix product.

- :func:`transfer_exact`: ``T`` from the nodal solve of the whole network (a sparse
  symmetric system of 2 R C unknowns, one solve per column by reciprocity). The reference.
- :func:`transfer_ladders`: ``T`` with every word line and every bit line solved exactly on
  its own (tridiagonal solves, O(R C)), the coupling between them left out. The fast
  approximation; ``docs/analog-model.md`` gives its measured error against the exact solve.
"""

from __future__ import annotations

import numpy as np

__all__ = ["transfer_exact", "transfer_ladders"]

_US = 1e-6  # conductances are in microsiemens


def transfer_exact(g_us: np.ndarray, r_wire_ohm: float) -> np.ndarray:
    """Effective conductance (uS) of every cell from the nodal solve: ``T[r, c]`` is the
    current into column ``c``'s sense amplifier per volt on row ``r``, every other row at 0 V.

    ``g_us`` (R, C): cell conductances. Unknowns are the word-line node voltages ``w[r, c]``
    and the bit-line node voltages ``b[r, c]``; Kirchhoff's current law at each gives a
    symmetric positive definite system ``A z = s``. By reciprocity
    ``T[r, c] = g_w^2 (A^-1)[w(r, 0), b(R - 1, c)]``, so one solve per column suffices.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import splu

    g = np.asarray(g_us, dtype=np.float64) * _US
    rows, cols = g.shape
    if r_wire_ohm == 0:
        return g / _US
    gw = 1.0 / r_wire_ohm
    n = rows * cols
    wl = np.arange(n).reshape(rows, cols)
    bl = n + wl
    edges_i, edges_j, edges_g = [], [], []

    def edge(i, j, cond):
        edges_i.append(i.ravel())
        edges_j.append(j.ravel())
        edges_g.append(np.broadcast_to(cond, i.shape).ravel())

    edge(wl[:, :-1], wl[:, 1:], gw)  # word-line segments
    edge(bl[:-1, :], bl[1:, :], gw)  # bit-line segments
    edge(wl, bl, g)  # cells
    i, j, c = (np.concatenate(a) for a in (edges_i, edges_j, edges_g))
    diag = np.bincount(i, c, 2 * n) + np.bincount(j, c, 2 * n)
    diag[wl[:, 0]] += gw  # the segment from each driver
    diag[bl[-1, :]] += gw  # the segment to each sense amplifier
    a = coo_matrix((np.concatenate([-c, -c, diag]),
                    (np.concatenate([i, j, np.arange(2 * n)]),
                     np.concatenate([j, i, np.arange(2 * n)]))), shape=(2 * n, 2 * n))
    lu = splu(a.tocsc())
    out = np.empty((rows, cols))
    for first in range(0, cols, 64):  # right-hand sides in batches (dense n x batch)
        batch = range(first, min(first + 64, cols))
        rhs = np.zeros((2 * n, len(batch)))
        rhs[bl[-1, batch.start : batch.stop], np.arange(len(batch))] = 1.0
        out[:, batch.start : batch.stop] = lu.solve(rhs)[wl[:, 0]] * gw * gw
    return out / _US


def transfer_ladders(g_us: np.ndarray, r_wire_ohm: float) -> np.ndarray:
    """Effective conductance (uS) with each line solved exactly on its own: the fast
    approximation, O(R C) and batched over any trailing axes of ``g_us`` (R, C, ...).

    Word line ``r``, driven with 1 V, is a ladder of wire segments with the row's cells as
    shunts to the bit lines, taken at 0 V: its node voltages ``a[r, c]`` (a tridiagonal
    solve). Bit line ``c`` is a ladder with its cells as shunts to the word lines, taken at
    0 V except the driven one, whose cell injects ``G[r, c] a[r, c]``; the share ``h[r, c]``
    of a current injected at row ``r`` that reaches the sense amplifier is one adjoint
    tridiagonal solve per column. ``T = G a h``. What it leaves out is the coupling between
    the two: the bit-line rise lowers the cells' currents and so the word-line drop, and the
    word lines of undriven rows are not exactly at 0 V.
    """
    g = np.asarray(g_us, dtype=np.float64)
    if r_wire_ohm == 0:
        return g.copy()
    rows, cols = g.shape[:2]
    eps = r_wire_ohm * _US * g  # each cell's conductance in units of one wire segment's
    # word lines (along axis 1): a segment on each side, the far end open
    diag = eps + 2.0
    diag[:, -1] -= 1.0
    rhs = np.zeros_like(g)
    rhs[:, 0] = 1.0  # the driver, through the first segment
    a = np.moveaxis(_ladder_solve(np.moveaxis(diag, 1, 0), np.moveaxis(rhs, 1, 0)), 0, 1)
    # bit lines (along axis 0): the top end open, the bottom segment to the sense amplifier
    diag = eps + 2.0
    diag[0] -= 1.0
    rhs = np.zeros_like(g)
    rhs[-1] = 1.0
    h = _ladder_solve(diag, rhs)
    return g * a * h


def _ladder_solve(diag: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve the symmetric tridiagonal systems with diagonal ``diag`` and off-diagonals -1
    along axis 0, for every index of the other axes (Thomas algorithm; the systems are
    diagonally dominant, so no pivoting)."""
    n = len(diag)
    c = np.empty_like(diag)
    d = np.empty_like(rhs)
    c[0] = -1.0 / diag[0]
    d[0] = rhs[0] / diag[0]
    for i in range(1, n):
        m = diag[i] + c[i - 1]
        c[i] = -1.0 / m
        d[i] = (rhs[i] + d[i - 1]) / m
    x = np.empty_like(rhs)
    x[-1] = d[-1]
    for i in range(n - 2, -1, -1):
        x[i] = d[i] - c[i] * x[i + 1]
    return x
