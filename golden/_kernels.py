"""Compiled inner loops of golden/cim.py (numba).

Each kernel does exactly what the numpy code it stands in for specifies, operation for
operation in the same float32 arithmetic; ``tests/golden/test_cim.py`` checks them against it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["sar_shift_add"]

_HALF = np.float32(0.5)


@njit(cache=True)
def _sar_codes(row, offsets, top, out):
    """Codes of one read row (strict float32 arithmetic: no reassociation)."""
    for c in range(row.shape[0]):
        x = np.float32(row[c] - offsets[c])
        x = np.float32(x + _HALF)
        x = np.floor(x)
        out[c] = min(max(x, np.float32(0.0)), top)


@njit(cache=True)
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
        Signed weight of each input bit: 2^d, negative for the MSB.
    part, mag : float64 (n, C / cols_per_channel)
        Accumulated in place: the exact sum of the terms, and the sum of their magnitudes
        (which bounds every partial sum: the saturation check).

    A code is ``clip(floor((x - offset) + 0.5), 0, top)``, each step rounded to float32 as
    ``CimMatrix._convert`` does. The bits of one column are summed first (in float32, exact:
    below 2^(D + ADC bits) <= 2^24), then the columns of a channel (in float64, exact: integers
    below 2^53), so the order of additions cannot change the result. Single-threaded on
    purpose: BLAS owns the cores between calls.
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
