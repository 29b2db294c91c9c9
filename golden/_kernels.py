"""Compiled inner loops of golden/cim.py (numba).

Each kernel does exactly what the numpy code it stands in for specifies, operation for
operation in the same float32 arithmetic; ``tests/golden/test_cim.py`` checks them against it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["group_sums", "program_cells", "sar_shift_add"]

_HALF = np.float32(0.5)


@njit(cache=True)
def _sar_codes(row, offsets, top, out):
    """Codes of one read row (strict float32 arithmetic: no reassociation)."""
    for c in range(row.shape[0]):
        x = np.float32(row[c] - offsets[c])
        x = np.float32(x + _HALF)
        x = np.floor(x)
        out[c] = min(max(x, np.float32(0.0)), top)


@njit(cache=True, nogil=True)
def sar_shift_add(reads, offsets, top, cols_per_channel, col_weight, bit_weight, part, mag):
    """SAR-convert one row group's reads and add them into the shift-add sums.

    reads : float32 (n * D, C)
        Read values in LSBs, row ``v * D + d`` for input bit ``d`` of vector ``v``.
    offsets : float32 (C,)
        Comparator offset of every column's ADC, in LSBs (zeros when off).
    top : float32
        Largest code.
    cols_per_channel : int
        Adjacent columns of one output channel (2 polarities x slices).
    col_weight : float64 (C,)
        Signed shift-add weight of each column's code: +-2^shift of its slice, negative for G-.
    bit_weight : float32 (D,)
        Signed weight of each input digit: 2^digit_shift(d), negative for the sign digit.
    part, mag : float64 (n, C / cols_per_channel)
        Accumulated in place: the exact sum of the terms, and the sum of their magnitudes
        (which bounds every partial sum: the saturation check).

    A code is ``clip(floor((x - offset) + 0.5), 0, top)``, each step rounded to float32 as
    ``CimMatrix._convert`` does. The bits of one column are summed first (in float32, exact:
    below 2^(D + ADC bits) <= 2^24), then the columns of a channel (in float64, exact: integers
    below 2^53), so the order of additions cannot change the result. Single-threaded, and
    releases the GIL: callers run it in threads over column blocks (a parallel kernel between
    multi-threaded BLAS calls fights BLAS's spinning threads for the cores; measured: both
    ten times slower).
    """
    n_bits = bit_weight.shape[0]
    cols = reads.shape[1]
    codes = np.empty(cols, dtype=np.float32)
    col_sum = np.empty(cols, dtype=np.float32)
    col_mag = np.empty(cols, dtype=np.float32)
    for v in range(reads.shape[0] // n_bits):
        col_sum[:] = 0.0
        col_mag[:] = 0.0
        for d in range(n_bits):
            _sar_codes(reads[v * n_bits + d], offsets, top, codes)
            wd = bit_weight[d]
            awd = abs(wd)
            for c in range(cols):
                col_sum[c] += wd * codes[c]
                col_mag[c] += awd * codes[c]
        for ch in range(cols // cols_per_channel):
            s = 0.0
            m = 0.0
            for j in range(ch * cols_per_channel, (ch + 1) * cols_per_channel):
                s += col_sum[j] * col_weight[j]
                m += col_mag[j] * abs(col_weight[j])
            part[v, ch] += s
            mag[v, ch] += m


@njit(parallel=True, cache=True)
def program_cells(index, g_table, sigma_table, mu_table, sd_table, nu_fold, z_prog, z_nu,
                  log_t, q_coeffs, g_max, z_f0, s0, z_ft, st, g0, gt):
    """Program cells and age them to inference time (the device model of
    ``CimMatrix._devices``, one pass over the cells).

    index : int (n,)
        Each cell's entry in the tables of per-target parameters (float32, uS): ``g_table``
        the target conductance, ``sigma_table`` the programming sigma, ``mu_table`` and
        ``sd_table`` the drift exponent's mean and sigma.
    nu_fold : bool
        ``nu = |mu + sd z|`` (PCM) rather than ``max(mu + sd z, 0)``.
    z_prog, z_nu, z_f0, z_ft : float32 (n,) or empty
        Standard normals of programming noise, drift exponent, and 1/f noise at t0 and at
        inference time; an empty array switches the effect off.
    log_t : float32
        ``ln(t / t0)``: the drift factor is ``exp(-nu ln(t / t0))``.
    q_coeffs : float32 (3,)
        ``(c, e, q_max)`` of the 1/f amplitude ``Q_s = min(c / max(gT^e, 1e-3), q_max)``, with
        ``gT`` the programmed conductance over ``g_max``; ``s0``, ``st`` the accumulated-noise
        factors ``sqrt(ln((t + t_read) / (2 t_read)))`` at t0 and at inference time.
    g0, gt : float32 (n,)
        Out: conductance as read at t0 (programming noise and 1/f noise) and at inference time
        (drift too). Conductances never go below 0.
    """
    zero = np.float32(0.0)
    prog = z_prog.shape[0] > 0
    drift = z_nu.shape[0] > 0
    flicker = z_f0.shape[0] > 0
    c, e, q_max = q_coeffs[0], q_coeffs[1], q_coeffs[2]
    floor = np.float32(1e-3)
    for i in prange(index.shape[0]):
        j = index[i]
        g = g_table[j]
        if prog:
            g = max(np.float32(g + sigma_table[j] * z_prog[i]), zero)
        g_t = g
        if drift:
            nu = np.float32(mu_table[j] + sd_table[j] * z_nu[i])
            nu = abs(nu) if nu_fold else max(nu, zero)
            g_t = np.float32(g * np.exp(np.float32(-nu * log_t)))
        g_0 = g
        if flicker:
            q = min(c / max(np.float32((g / g_max) ** e), floor), q_max)
            g_0 = max(np.float32(g + g * np.float32(q * s0) * z_f0[i]), zero)
            g_t = max(np.float32(g_t + g_t * np.float32(q * st) * z_ft[i]), zero)
        g0[i] = g_0
        gt[i] = g_t


@njit(parallel=True, cache=True)
def group_sums(u, rows):
    """Sums of every ``rows`` consecutive rows of ``u`` (float32 (R, C)), per column, in
    float64 and in row order: (R / rows, C)."""
    groups = u.shape[0] // rows
    out = np.zeros((groups, u.shape[1]))
    for g in prange(groups):
        for r in range(g * rows, (g + 1) * rows):
            for col in range(u.shape[1]):
                out[g, col] += u[r, col]
    return out
