"""cimforge.golden.ir_drop: the crossbar's wire network, solved exactly and approximately."""

import numpy as np
import pytest

from cimforge.golden.ir_drop import transfer_exact, transfer_ladders


def kcl_column_currents(g_us, r_wire, v):
    """Column currents (uA) for row voltages ``v``: Kirchhoff's current law at every node,
    written out node by node and solved densely (an independent check, tiny arrays only)."""
    rows, cols = g_us.shape
    n = rows * cols
    gw = 1.0 / r_wire
    a = np.zeros((2 * n, 2 * n))
    s = np.zeros(2 * n)

    def wl(r, c):
        return r * cols + c

    def bl(r, c):
        return n + r * cols + c

    def conduct(i, j, cond):
        a[i, i] += cond
        a[j, j] += cond
        a[i, j] -= cond
        a[j, i] -= cond

    for r in range(rows):
        a[wl(r, 0), wl(r, 0)] += gw  # driver segment
        s[wl(r, 0)] += gw * v[r]
        for c in range(cols):
            conduct(wl(r, c), bl(r, c), g_us[r, c] * 1e-6)
            if c + 1 < cols:
                conduct(wl(r, c), wl(r, c + 1), gw)
            if r + 1 < rows:
                conduct(bl(r, c), bl(r + 1, c), gw)
    for c in range(cols):
        a[bl(rows - 1, c), bl(rows - 1, c)] += gw  # sense segment to virtual ground
    z = np.linalg.solve(a, s)
    return np.array([gw * z[bl(rows - 1, c)] for c in range(cols)]) * 1e6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_transfer_is_the_network(seed):
    rng = np.random.default_rng(seed)
    g = rng.uniform(0.25, 25.0, size=(6, 5))
    t = transfer_exact(g, 300.0)  # a large wire resistance: large drops
    for _ in range(3):
        v = rng.integers(0, 2, size=6) * rng.uniform(0.1, 0.3)
        want = kcl_column_currents(g, 300.0, v)
        assert np.allclose(v @ t, want, rtol=1e-9, atol=1e-12), f"seed {seed}"
    assert (v @ t < v @ g).all() or not v.any()  # wires only lose current


def test_no_wire_no_drop():
    g = np.random.default_rng(3).uniform(0.25, 25.0, size=(8, 9))
    assert np.allclose(transfer_exact(g, 0.0), g)
    assert np.allclose(transfer_ladders(g, 0.0), g)


def test_ladders_batch_over_tiles():
    g = np.random.default_rng(4).uniform(0.0, 25.0, size=(16, 17, 3, 2))
    batched = transfer_ladders(g, 2.0)
    for i, j in np.ndindex(3, 2):
        assert np.allclose(batched[:, :, i, j], transfer_ladders(g[:, :, i, j], 2.0))


@pytest.mark.parametrize("r_wire", [1.0, 4.0])
def test_ladder_approximation_error(r_wire):
    # a 64 x 64 tile (plus its reference column) of PCM-like 2-bit levels, reads of all rows
    # with random bits: the measured error (docs/analog-model.md) holds, and it is a small
    # part of the drop it corrects
    rng = np.random.default_rng(5)
    dg = 25.0 / 3
    g = rng.choice([0.25, 8.5, 16.75, 25.0], size=(64, 65), p=[0.55, 0.25, 0.12, 0.08])
    exact = transfer_exact(g, r_wire)
    approx = transfer_ladders(g, r_wire)
    x = rng.integers(0, 2, size=(200, 64)).astype(float)
    drop = np.abs(x @ g - x @ exact) / dg
    err = np.abs(x @ approx - x @ exact) / dg
    assert err.mean() < 0.03 * drop.mean(), (err.mean(), drop.mean())
    assert err.max() < {1.0: 0.01, 4.0: 0.15}[r_wire], err.max()
