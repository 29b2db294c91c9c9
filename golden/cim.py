"""Bit-accurate model of an integer matmul on analog crossbar tiles.

The specification the RTL analog tile is checked against, and the tool that says what a device,
an ADC or a mapping does to accuracy. ``docs/analog-model.md`` gives every equation.

Mapping
    ``W`` (K x N, signed ``weight_bits``) is split into a positive and a negative magnitude
    (the G+ and G- cells of a differential pair), each cut into ``weight_slices`` slices of
    ``bits_per_cell`` bits. Output channel ``c`` of a tile occupies ``2 * weight_slices``
    adjacent columns: slice ``k`` polarity ``p`` is column ``2 * (c * S + k) + p``. Rows beyond
    ``tile.rows`` go to further row tiles (partial sums added digitally), channels beyond a
    tile's ``cols / (2 S)`` to further column tiles. Level ``l`` of a cell is conductance
    ``G_min + l * dG`` with ``dG = (G_max - G_min) / (levels - 1)``.

Offset cancellation
    Each tile has one reference column of cells programmed to ``G_min``; its current is
    subtracted from every column's before conversion, so a read measures
    ``sum_r v_r (G_rc - G_ref,r) / dG``: exactly the sum of levels in an ideal array, whatever
    the on/off ratio.

Reads
    Inputs are applied digit by digit to groups of ``rows_per_read`` word lines: the bits below
    the sign in unsigned digits of ``dac_bits`` (word-line drive 0 .. 2^dac_bits - 1), then the
    sign bit alone, weighted negative (two's complement; with a 1-bit DAC simply bit-serial,
    MSB negative). One read per (vector, row tile, row group, input digit); every column of
    every column tile is converted once per read.

Non-idealities (each switched in ``[analog]``, seeded from the config's ``seed`` and the
matrix's ``key``; turning one on never changes another's random draws):
    programming noise, faults, drift, 1/f read noise (static at ``t_inference``), per-read
    noise, ADC offsets, global drift compensation.
"""

from __future__ import annotations

import functools
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from cimforge.config import Config
from cimforge.golden._kernels import group_sums, program_cells, sar_shift_add
from cimforge.golden.ir_drop import transfer_exact, transfer_ladders
from cimforge.golden.numerics import round_shift, saturate, wrap
from cimforge.golden.shift_add import ShiftAddSpec, accumulate, input_digits_of

__all__ = ["PCM", "CimMatrix", "Conversion", "pcm_prog_sigma_us", "pcm_drift_nu_stats",
           "pcm_read_noise_q", "SCALE_BITS", "SCALE_FRAC_BITS", "OFFSET_TRIM_BITS",
           "OFFSET_TRIM_FRAC_BITS", "ADC_EXP_LIMIT", "RANGE_EXP_BITS"]

# PCM statistical model: published fits (Nandakumar et al., ICECS 2019; the constants of IBM's
# analog hardware toolkit, fitted on 1M devices), with conductances relative to G_max = 25 uS.
PCM = {
    "g_max_ref_us": 25.0,
    "prog_coeff": (0.26348, 1.9650, -1.1731),  # sigma(gT) = c0 + c1 gT + c2 gT^2  [uS]
    "nu_mean": (-0.0155, 0.0244, 0.049, 0.1),  # a ln(gT) + b, clipped to [lo, hi]
    "nu_std": (-0.0125, -0.0059, 0.008, 0.045),
    "q_s": (0.0088, 0.65, 0.2),  # Q_s = min(c / gT^e, max)
    "t_read_s": 250e-9,
}

# The calibration scales (drift compensation and ADC gain registers): unsigned fixed point,
# SCALE_BITS wide with SCALE_FRAC_BITS fraction bits (factors up to 16; PCM decays to ~0.45
# in a year).
SCALE_BITS = 16
SCALE_FRAC_BITS = 12

_GT_FLOOR = 1e-7  # relative conductance floor inside logarithms (an unprogrammed cell)

# ADC offset trim registers: signed OFFSET_TRIM_BITS, in steps of 2^-OFFSET_TRIM_FRAC_BITS
# LSB (+-7.9 LSB).
OFFSET_TRIM_BITS = 8
OFFSET_TRIM_FRAC_BITS = 4

# ADC range exponents: the LSB of a slice's conversions is 2^e conductance levels with
# |e| <= ADC_EXP_LIMIT (the range register of the ADC interface).
ADC_EXP_LIMIT = 8
RANGE_EXP_BITS = ADC_EXP_LIMIT.bit_length() + 1  # a range register: signed, holds +-limit

# Vectors per chunk of a matmul: enough rows (x input digit planes) for efficient GEMMs.
CHUNK_VECTORS = 128
# Physical columns per block of a row group's reads in the compiled path (whole column tiles).
COLUMN_BLOCK = 512


def _normal(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.standard_normal(shape, dtype=np.float32)


def _exact_sum_grid(a: np.ndarray, rows: int) -> np.ndarray:
    """``a`` (R, C) as float32, each column rounded to the finest power-of-two grid on which
    every sum of ``rows`` of its entries is exact in float32 (below 2^24 grid steps).

    A read is such a sum, computed by BLAS, which adds in an order that depends on the
    matrix shapes, blocking and thread count; on the grid the order cannot change a bit, so a
    read is the same in a matmul and in the per-read entry point, on any machine. Integer
    levels (an ideal array) are on the grid already; otherwise the grid step is at most
    ``rows * max|a| / 2^23`` of the column.
    """
    a = np.asarray(a, dtype=np.float32)
    _, exp = np.frexp(np.abs(a).max(axis=0, initial=0).astype(np.float64) * rows)
    scale = np.ldexp(np.float32(1.0), np.minimum(23 - exp, 100)).astype(np.float32)
    return np.rint(a * scale) / scale


def _pool() -> ThreadPoolExecutor:
    """Worker threads for the parallel parts of the model, one per core."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max(len(os.sched_getaffinity(0)), 1))
    return _POOL


_POOL: ThreadPoolExecutor | None = None


class _Stream:
    """A seeded stream of random numbers for a whole array at once: drawn in blocks of
    ``BLOCK`` values, block ``i`` of a draw from the ``i``-th next child of the seed, so the
    blocks fill in parallel threads and the values do not depend on how many there are."""

    BLOCK = 1 << 20

    def __init__(self, seed: np.random.SeedSequence):
        self._seed = seed

    def normals(self, n: int) -> np.ndarray:
        return self._fill(n, lambda rng, out: rng.standard_normal(out=out, dtype=np.float32))

    def uniforms(self, n: int) -> np.ndarray:
        return self._fill(n, lambda rng, out: rng.random(out=out, dtype=np.float32))

    def _fill(self, n: int, draw) -> np.ndarray:
        out = np.empty(n, dtype=np.float32)
        children = self._seed.spawn(-(-n // self.BLOCK))

        def block(i):
            draw(np.random.default_rng(children[i]), out[i * self.BLOCK : (i + 1) * self.BLOCK])

        list(_pool().map(block, range(len(children))))
        return out


def pcm_prog_sigma_us(g_target_us: np.ndarray, g_max_us: float) -> np.ndarray:
    """PCM programming-noise sigma in uS for target conductances, scaled to ``g_max_us``."""
    c0, c1, c2 = PCM["prog_coeff"]
    gt = g_target_us / g_max_us
    return np.maximum(c0 + c1 * gt + c2 * gt * gt, 0.0) * (g_max_us / PCM["g_max_ref_us"])


def pcm_drift_nu_stats(g_target_us: np.ndarray, g_max_us: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sigma of the PCM drift exponent for target conductances."""
    lg = np.log(np.maximum(g_target_us / g_max_us, _GT_FLOOR))
    a, b, lo, hi = PCM["nu_mean"]
    mean = np.clip(a * lg + b, lo, hi)
    a, b, lo, hi = PCM["nu_std"]
    return mean, np.clip(a * lg + b, lo, hi)


def _flicker_scale(t: float) -> np.float32:
    """How much 1/f noise has accumulated by ``t`` seconds after programming, relative to Q_s:
    ``sqrt(ln((t + t_read) / (2 t_read)))``."""
    t_read = PCM["t_read_s"]
    return np.float32(math.sqrt(math.log((t + t_read) / (2 * t_read))))


def pcm_read_noise_q(g_prog_us: np.ndarray, g_max_us: float) -> np.ndarray:
    """1/f noise amplitude Q_s of the PCM model."""
    c, e, top = PCM["q_s"]
    gt = np.abs(g_prog_us) / g_max_us
    return np.minimum(c / np.maximum(gt**e, 1e-3), top)


@dataclass(frozen=True)
class _Targets:
    """Target conductances (uS) of an array of cells: a table of the distinct values and every
    cell's index into it, so that functions of the target alone run on the table."""

    table: np.ndarray
    index: np.ndarray

    @classmethod
    def of(cls, target) -> _Targets:
        """Targets given cell by cell."""
        target = np.asarray(target, dtype=np.float32)
        return cls(target.ravel(), np.arange(target.size).reshape(target.shape))


@dataclass(frozen=True)
class Conversion:
    """Every ADC conversion of one matmul, in read order (the per-read entry point).

    ``analog[n, t, g, d, col]``: the column's read value in ADC LSBs (reference subtracted,
    offsets not included) for vector ``n``, row tile ``t``, row group ``g``, input digit ``d``
    and physical column ``col`` (all column tiles side by side, ``tile.cols`` each);
    ``codes``: the converted codes, same shape.
    """

    analog: np.ndarray
    codes: np.ndarray


class CimMatrix:
    """An integer weight matrix programmed onto analog tiles.

    Parameters
    ----------
    w : array (K, N) of int
        Signed ``numerics.weight_bits`` weights.
    cfg : Config
    key : int
        Identifies this matrix among others of the same config (e.g. a layer index), so each
        gets its own random draws.
    levels : array (row_tiles * rows, col_tiles * cols) of int, optional
        The level every cell was programmed to, when it is not the mapping of ``w`` (a
        crossbar programmed by the accelerator's weight image: what its programming port was
        sent). ``w`` then gives only the shape; the programming effects apply to these levels.

    Attributes
    ----------
    g_us : float64 array (row_tiles * rows, col_tiles * cols)
        Conductances at inference time (after programming noise, faults, drift, 1/f noise).
    g_ref_us : float64 array (row_tiles * rows, col_tiles)
        The reference column of every tile.
    """

    def __init__(self, w: np.ndarray, cfg: Config, *, key: int = 0,
                 levels: np.ndarray | None = None):
        w = np.asarray(w)
        if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
            raise ValueError(f"w must be a 2-D integer array, not {w.dtype} {w.shape}")
        bits = cfg.numerics.weight_bits
        if w.size and (w.min() < -(1 << (bits - 1)) or w.max() >= 1 << (bits - 1)):
            raise ValueError(f"w must be signed {bits}-bit")
        self.cfg = cfg
        self.key = key
        self.k, self.n = w.shape
        t = cfg.tile
        self.levels = 1 << t.bits_per_cell
        self.slices = cfg.weight_slices
        self.row_tiles = math.ceil(self.k / t.rows)
        self.col_tiles = math.ceil(self.n / cfg.channels_per_tile)
        self.groups = t.rows // t.rows_per_read
        self.digits = cfg.input_digits
        self.drive_max = (1 << t.dac_bits) - 1  # the largest word-line drive, in DAC steps
        dev = cfg.device
        self.g_max = dev.g_max_us
        self.g_min = dev.g_min_us
        streams = ("prog", "drift", "flicker", "faults", "adc", "read",
                   "ref_prog", "ref_drift", "ref_flicker", "ref_faults")
        seeds = np.random.SeedSequence(entropy=cfg.seed, spawn_key=(key,)).spawn(len(streams))
        seeds = dict(zip(streams, seeds))
        self._rng = {"adc": np.random.default_rng(seeds.pop("adc"))}
        self._read_seed = seeds.pop("read")
        self._streams = {name: _Stream(seed) for name, seed in seeds.items()}
        self.level_map = self._levels(w)
        if levels is not None:
            levels = np.asarray(levels)
            if levels.shape != self.level_map.shape or levels.min(initial=0) < 0 \
                    or levels.max(initial=0) >= self.levels:
                raise ValueError(f"levels must be {self.level_map.shape} in 0 .. "
                                 f"{self.levels - 1}, not {levels.shape}")
            self.level_map = levels.astype(np.uint8)
        # top level and conductance step of every slice
        self.slice_top = np.full(self.slices, self.levels - 1, dtype=np.int64)
        if t.slice_range == "fitted":  # the largest level the slice holds (a magnitude's)
            of_slice = self._slice_of_column(self.level_map.shape[1])
            used = [self.level_map[:, of_slice == k].max(initial=0) for k in range(self.slices)]
            self.slice_top = np.maximum(np.array(used, dtype=np.int64), 1)
        self.slice_dg = (self.g_max - self.g_min) / self.slice_top
        self._adc_offsets()
        self._program()

    # -- mapping -------------------------------------------------------------------------------

    def _levels(self, w: np.ndarray) -> np.ndarray:
        """Target level of every cell: (row_tiles * rows, col_tiles * cols) uint8."""
        t = self.cfg.tile
        k_pad = self.row_tiles * t.rows
        n_pad = self.col_tiles * self.cfg.channels_per_tile
        lv = np.zeros((k_pad, n_pad, self.slices, 2), dtype=np.uint8)
        w = w.astype(np.int32)
        for p, mag in enumerate((np.maximum(w, 0), np.maximum(-w, 0))):  # G+, G-
            for k in range(self.slices):
                lv[: self.k, : self.n, k, p] = (mag >> (k * t.bits_per_cell)) & (self.levels - 1)
        return lv.reshape(k_pad, -1)  # column = 2 (c S + k) + p

    # -- devices -------------------------------------------------------------------------------

    def _program(self) -> None:
        a = self.cfg.analog
        cols = self.level_map.shape[1]
        self._dg_col = self.slice_dg[self._slice_of_column(cols)]
        # what one uS of a cell adds to its column's read, in ADC input units (levels)
        self._col_scale = (1.0 / self._dg_col).astype(np.float32)
        # targets: level l of slice k is G_min + l * dG_k (a table of levels x slices)
        table = self.g_min + np.arange(self.levels)[:, None] * self.slice_dg[None, :]
        index = (self.level_map * np.int32(self.slices)
                 + self._slice_of_column(self.level_map.shape[1]).astype(np.int32))
        target = _Targets(table.astype(np.float32).ravel(), index)
        ref_target = _Targets(np.array([self.g_min], dtype=np.float32),
                              np.zeros((len(index), self.col_tiles), dtype=np.int64))
        # rows the matrix does not fill are never driven, not even by the calibration read:
        # left unprogrammed at G_min, like their reference cells, they read as exactly 0
        cells = self._unused_rows(self._devices(target, "", rows=self.k))
        # the reference column is a column of real cells: the same physics, its own draws
        refs = self._unused_rows(self._devices(ref_target, "ref_", rows=self.k))
        self.g_us, self.g_ref_us = cells[-1], refs[-1]
        self._u = self._read_units(self.g_us, self.g_ref_us)
        # per-read fluctuation: each active cell's conductance varies by read_sigma (relative)
        # from read to read; a read's variance is the sum over its active cells (uS^2)
        self._read_var = None
        if a.read_noise and self.cfg.device.read_sigma:
            s = self.cfg.device.read_sigma
            rpr = self.cfg.tile.rows_per_read
            # a read weighs each variance by the square of its row's drive
            self._read_var = _exact_sum_grid((s * self.g_us) ** 2, rpr * self.drive_max**2)
            self._read_var_ref = _exact_sum_grid((s * self.g_ref_us) ** 2,
                                                 rpr * self.drive_max**2)
        # the calibration read at inference time (against the one taken at programming time)
        # trims the ADC gains, then sets the ADC ranges and the digital drift factor
        now = self._calibration_read(self._u)
        then = None
        if a.drift_compensation or self.cfg.adc.gain_calibration:
            then = self._calibration_read(self._read_units(cells[0], refs[0]))
        self.adc_gain_q = np.full(self.col_tiles, 1 << SCALE_FRAC_BITS, dtype=np.int64)
        if self.cfg.adc.gain_calibration:
            self.adc_gain_q = self._drift_compensation(then, now)
            gain = np.repeat(self.adc_gain, self.cfg.tile.cols).astype(np.float32)
            self._u *= gain
            self._col_scale *= gain
            now = self._calibration_read(self._u)
        self._set_ranges(self._slice_exponents(now))
        self.drift_comp_q = None
        if a.drift_compensation:
            self.drift_comp_q = self._drift_compensation(then, now)

    @property
    def adc_gain(self) -> np.ndarray:
        """ADC gain trim per column tile (1 unless ``adc.gain_calibration``)."""
        return self.adc_gain_q / (1 << SCALE_FRAC_BITS)

    def _read_units(self, g: np.ndarray, g_ref: np.ndarray) -> np.ndarray:
        """What a read sees of each cell, in levels of its slice (float32): the reference
        column's current is subtracted from every column of its tile before conversion, and
        by linearity that is a read of the difference (exact integers if ideal).

        With ``analog.ir_drop`` on, cells count with their effective conductances
        (:mod:`cimforge.golden.ir_drop`), each tile's reference column its last column. Rows the
        matrix does not use read as 0."""
        t = self.cfg.tile
        g = g.reshape(self.row_tiles, t.rows, self.col_tiles, t.cols)
        g_ref = g_ref.reshape(self.row_tiles, t.rows, self.col_tiles, 1)
        mode, r_wire = self.cfg.analog.ir_drop, self.cfg.analog.r_wire_ohm
        if mode != "off":
            tiles = np.concatenate([g, g_ref], axis=3).transpose(1, 3, 0, 2)  # (R, C + 1, ..)
            if mode == "approx":
                eff = transfer_ladders(tiles, r_wire)
            else:
                eff = np.empty(tiles.shape)
                for i, j in np.ndindex(tiles.shape[2:]):
                    eff[:, :, i, j] = transfer_exact(tiles[:, :, i, j], r_wire)
            eff = eff.transpose(2, 0, 3, 1)
            g, g_ref = eff[..., : t.cols], eff[..., t.cols :]
        diff = (g - g_ref).reshape(self.row_tiles * t.rows, -1)
        diff[self.k :] = 0.0
        return (diff * (1.0 / self._dg_col)).astype(np.float32)

    def _devices(self, target: _Targets, stream: str, *, rows: int | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Conductances (uS, float32) of cells programmed to ``target`` (the first ``rows``
        rows of it): (as read right after programming, at t0; as read at ``t_inference``).
        Random draws come from the streams named ``stream + effect``."""
        a, dev = self.cfg.analog, self.cfg.device
        index = target.index[:rows]
        n = index.size
        rand = {name: self._streams[stream + name] for name in ("prog", "drift", "flicker",
                                                                  "faults")}
        table = target.table
        empty = np.empty(0, dtype=np.float32)
        f32 = np.float32
        if dev.pcm_model:
            sigma = pcm_prog_sigma_us(table, self.g_max)
            mu, sd = pcm_drift_nu_stats(table, self.g_max)
        else:
            sigma = np.full(table.shape, dev.prog_sigma * self.g_max)
            mu = np.full(table.shape, dev.drift_nu_mean)
            sd = np.full(table.shape, dev.drift_nu_std)
        t0, t = dev.drift_t0_s, a.t_inference
        drift = a.drift and t > t0
        flicker = a.read_noise and dev.pcm_model
        c, e, q_max = PCM["q_s"]
        g0 = np.empty(n, dtype=np.float32)
        g_t = np.empty(n, dtype=np.float32)
        program_cells(
            index.ravel(), table.astype(f32), sigma.astype(f32), mu.astype(f32),
            sd.astype(f32), dev.pcm_model,
            rand["prog"].normals(n) if a.prog_noise else empty,
            rand["drift"].normals(n) if drift else empty, f32(math.log(t / t0) if drift else 0),
            np.array([c, e, q_max], dtype=f32), f32(self.g_max),
            rand["flicker"].normals(n) if flicker else empty, _flicker_scale(t0),
            rand["flicker"].normals(n) if flicker else empty, _flicker_scale(t), g0, g_t)
        if a.stuck_on_rate or a.stuck_off_rate:
            u = rand["faults"].uniforms(n)
            on = u < a.stuck_on_rate
            off = (u >= a.stuck_on_rate) & (u < a.stuck_on_rate + a.stuck_off_rate)
            for g in (g0, g_t):
                g[on] = self.g_max
                g[off] = self.g_min
        return g0.reshape(index.shape), g_t.reshape(index.shape)

    def _unused_rows(self, cells: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
        """The conductance arrays of programmed rows, extended to whole row tiles at G_min."""
        rows = self.row_tiles * self.cfg.tile.rows
        return tuple(np.pad(g, ((0, rows - len(g)), (0, 0)), constant_values=self.g_min)
                     for g in cells)

    # -- ADC -----------------------------------------------------------------------------------

    def _slice_exponents(self, cal: np.ndarray) -> np.ndarray:
        """ADC range of every weight slice: its LSB is ``2^e`` conductance levels, (S,) int.

        ``unit``: e = 0. ``full``: the smallest e whose 2^bits - 1 codes cover ``range_scale``
        times the largest possible read (every row at its top level, driven at the DAC's top
        step). ``calibrated``: likewise for ``range_scale`` times the ``percentile`` of the
        slice's calibration reads ``cal`` (groups, columns; every row driven at one step) scaled
        to the DAC's top step. Clamped to ``[-ADC_EXP_LIMIT, ADC_EXP_LIMIT]``.
        """
        adc = self.cfg.adc
        top = (1 << adc.bits) - 1
        if adc.range == "unit":
            return np.zeros(self.slices, dtype=np.int64)
        if adc.range == "full":
            return self._covering_exp(adc.range_scale * self.drive_max * self._largest_reads(),
                                      top)
        slice_of_col = self._slice_of_column(cal.shape[1])
        ref = np.array([np.percentile(cal[:, slice_of_col == k], adc.percentile)
                        for k in range(self.slices)])
        return self._covering_exp(adc.range_scale * self.drive_max * ref, top)

    def _largest_reads(self) -> np.ndarray:
        """The largest possible read of every slice at one DAC step (every row at its top
        level), in levels."""
        return self.cfg.tile.rows_per_read * self.slice_top.astype(np.float64)

    @staticmethod
    def _covering_exp(full: np.ndarray, top: int) -> np.ndarray:
        """Smallest exponents e (clamped to +-ADC_EXP_LIMIT) with ``top * 2^e >= full``."""
        with np.errstate(divide="ignore"):
            e = np.ceil(np.log2(np.asarray(full, dtype=np.float64) / top))
        e = np.where(np.asarray(full) > 0, e, -ADC_EXP_LIMIT)
        return np.clip(e, -ADC_EXP_LIMIT, ADC_EXP_LIMIT).astype(np.int64)

    def _slice_of_column(self, cols: int) -> np.ndarray:
        return (np.arange(cols) // 2) % self.slices  # column = 2 (c S + k) + p

    @property
    def out_exp(self) -> int:
        """Results come in units of ``2^out_exp`` levels: the finest slice LSB."""
        return int(self.slice_exp.min())

    @property
    def out_lsb(self) -> float:
        return 2.0**self.out_exp

    def _adc_offsets(self) -> None:
        """Comparator offsets (LSB): one per SAR ADC, one per comparator of a flash ADC, and
        with ``adc.offset_calibration`` each SAR ADC's trim register (:attr:`adc_trim_q`)."""
        adc = self.cfg.adc
        n_adcs = self.col_tiles * self.cfg.adcs_per_tile
        per_adc = 1 if adc.kind == "sar" else (1 << adc.bits) - 1
        self.adc_offsets = adc.offset_sigma_lsb * self._rng["adc"].standard_normal(
            (n_adcs, per_adc))
        self.adc_trim_q = np.zeros(n_adcs, dtype=np.int64)
        if adc.offset_calibration:  # SAR only (the config refuses it for flash)
            # a calibration measures each comparator's offset and trims it, in steps of
            # 1 / 2^OFFSET_TRIM_FRAC_BITS LSB
            lim = (1 << (OFFSET_TRIM_BITS - 1)) - 1
            measured = self.adc_offsets[:, 0] * (1 << OFFSET_TRIM_FRAC_BITS)
            self.adc_trim_q = np.clip(np.rint(measured), -lim, lim).astype(np.int64)

    @property
    def adc_trim(self) -> np.ndarray:
        """Offset trim of every ADC, LSB (0 without ``adc.offset_calibration``)."""
        return self.adc_trim_q / (1 << OFFSET_TRIM_FRAC_BITS)

    @property
    def effective_offsets(self) -> np.ndarray:
        """Comparator offsets after the trims, LSB: (ADCs, comparators per ADC)."""
        return self.adc_offsets - self.adc_trim[:, None]

    def _convert(self, analog: np.ndarray) -> np.ndarray:
        """Codes of read values (in LSBs) for every physical column (last axis), as float32
        integers; ``analog`` is overwritten."""
        adc = self.cfg.adc
        top = (1 << adc.bits) - 1
        cols = analog.shape[-1]
        adc_of_col = self._adc_of_column(cols)
        if adc.kind == "sar" or not adc.offset_sigma_lsb:
            # SAR: binary search with one comparator whose threshold for trial code c is
            # c - 0.5 + offset; monotonic, so it lands on floor(x - offset + 0.5), clipped.
            if adc.kind == "sar" and adc.offset_sigma_lsb:
                analog -= self.effective_offsets[adc_of_col, 0].astype(analog.dtype)
            analog += 0.5
            np.floor(analog, out=analog)
            return np.clip(analog, 0, top, out=analog)
        # flash: thermometer of 2^bits - 1 comparators, each with its own offset; a ones
        # counter encodes it, so the code is the number of thresholds at or below the input
        thresholds = np.arange(1, top + 1) - 0.5 + self.effective_offsets  # (adcs, top)
        flat = analog.reshape(-1, cols)
        for col in range(cols):
            flat[:, col] = np.searchsorted(np.sort(thresholds[adc_of_col[col]]),
                                           flat[:, col], side="right")
        return analog

    def _step_of_column(self, col: np.ndarray) -> np.ndarray:
        """Conversion step of a column (index within its tile): ADC ``col // cols_per_adc``
        converts it as its ``col mod cols_per_adc``-th column of every read."""
        return np.asarray(col) % self.cfg.adc.cols_per_adc

    def _adc_of_column(self, cols: int) -> np.ndarray:
        """ADC index of every physical column: columns ``a * cols_per_adc`` ... belong to ADC
        ``a`` of their tile (adjacent columns share a converter)."""
        return np.arange(cols) // self.cfg.adc.cols_per_adc

    # -- drift compensation --------------------------------------------------------------------

    def _calibration_read(self, u: np.ndarray) -> np.ndarray:
        """The calibration read: every word line of a group driven, group by group, each
        column converted with the LSB that covers its largest possible read (at least one
        level: nothing clips). Measured values in levels, (groups of all row tiles, columns).
        """
        rpr = self.cfg.tile.rows_per_read
        sums = group_sums(u, rpr)
        e = np.maximum(self._covering_exp(self._largest_reads(), (1 << self.cfg.adc.bits) - 1),
                       0)
        lsb = 2.0 ** e[self._slice_of_column(u.shape[1])]
        return self._convert(sums / lsb) * lsb

    def _drift_compensation(self, then: np.ndarray, now: np.ndarray) -> np.ndarray:
        """Per column tile, the fixed-point factor (``SCALE_FRAC_BITS`` fraction bits)
        that scales today's calibration read back to the one taken at programming time."""
        # currents, so every cell weighs by its conductance whatever its slice's step
        then = (then * self._dg_col).reshape(len(then), self.col_tiles, -1).sum(axis=(0, 2))
        now = (now * self._dg_col).reshape(len(now), self.col_tiles, -1).sum(axis=(0, 2))
        factor = then / np.maximum(now, 1)
        q = np.rint(factor * (1 << SCALE_FRAC_BITS)).astype(np.int64)
        return np.clip(q, 0, (1 << SCALE_BITS) - 1)

    @property
    def drift_factor(self) -> np.ndarray:
        """The compensation factors as real numbers, per column tile (1 when off)."""
        if self.drift_comp_q is None:
            return np.ones(self.col_tiles)
        return self.drift_comp_q / (1 << SCALE_FRAC_BITS)

    # -- the matmul ---------------------------------------------------------------------------

    def _check_x(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        ab = self.cfg.numerics.act_bits
        if x.ndim != 2 or x.shape[1] != self.k:
            raise ValueError(f"x must have shape (n, {self.k}), not {x.shape}")
        if not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"x must be integers, not {x.dtype}")
        if x.size and (x.min() < -(1 << (ab - 1)) or x.max() >= 1 << (ab - 1)):
            raise ValueError(f"x must be signed {ab}-bit")
        return x

    def _planes(self, x: np.ndarray) -> np.ndarray:
        """Input digit planes (word-line drives) as rows of one float32 matrix (n * D, K): row
        ``n * D + d`` is digit ``d`` of vector ``n`` (bit ``d`` of the two's complement with a
        1-bit DAC; :func:`cimforge.golden.shift_add.input_digits_of`)."""
        planes = input_digits_of(x, self.cfg.numerics.act_bits, self.cfg.tile.dac_bits)
        return planes.astype(np.float32).reshape(len(x) * self.digits, self.k)

    def _group_reads(self, planes: np.ndarray, g: int, noise: np.ndarray | None,
                     tiles: range | None = None) -> np.ndarray:
        """Read values in ADC LSBs of row group ``g`` (over all row tiles) for every plane:
        (n * D, physical columns of column ``tiles``, all by default) float32. ``noise``:
        standard normals (n * D, those columns) for the per-read fluctuation, when on."""
        t = self.cfg.tile
        tiles = tiles or range(self.col_tiles)
        c = slice(tiles.start * t.cols, tiles.stop * t.cols)
        lo = g * t.rows_per_read
        hi = min(lo + t.rows_per_read, self.k)
        cols = len(tiles) * t.cols
        if hi <= lo:  # a group of padding rows only: every read is 0
            return np.zeros((len(planes), cols), dtype=np.float32)
        p = planes[:, lo:hi]
        out = p @ self._u_lsb[lo:hi, c]
        if noise is not None:  # variances in uS^2, then the sigma in LSBs
            p2 = p * p if self.drive_max > 1 else p  # a current's variance goes with drive^2
            var = (p2 @ self._read_var[lo:hi, c]).reshape(len(p), len(tiles), t.cols)
            var += (p2 @ self._read_var_ref[lo:hi, tiles.start : tiles.stop])[:, :, None]
            sigma = np.sqrt(var).reshape(len(p), cols) * (self._col_scale * self._inv_lsb)[c]
            out += sigma * noise
        return out

    def _read_noise(self, first: int, n: int) -> np.ndarray | None:
        """Standard normals for the per-read fluctuation of vectors ``first .. first + n - 1``
        of a sequence, (n * D, G, C) in read order.

        Vector ``p`` draws from its own stream, child ``p`` of the matrix's read seed: a
        vector's noise is a function of the seed, the matrix and its position in the sequence
        (the argument of :meth:`matmul` or :meth:`convert`), whatever else is computed with it
        or how a matmul is cut into chunks."""
        if self._read_var is None:
            return None
        shape = (self.digits, self.row_tiles * self.groups, self._u.shape[1])
        seed = self._read_seed
        return np.concatenate([
            _normal(np.random.default_rng(np.random.SeedSequence(
                seed.entropy, spawn_key=(*seed.spawn_key, p))), shape)
            for p in range(first, first + n)]) if n else np.empty((0, *shape[1:]), np.float32)

    def _reads(self, x: np.ndarray, first: int = 0) -> np.ndarray:
        """Read values in ADC LSBs, (n * D, row_tiles * groups, physical columns) float32, of
        vectors ``first ..`` of a sequence."""
        planes = self._planes(x)
        noise = self._read_noise(first, len(x))
        groups = self.row_tiles * self.groups
        return np.stack([self._group_reads(planes, g, None if noise is None else noise[:, g])
                         for g in range(groups)], axis=1)

    def _set_ranges(self, slice_exp: np.ndarray) -> None:
        self.slice_exp = slice_exp
        e = slice_exp[self._slice_of_column(self._u.shape[1])]
        self._inv_lsb = np.ldexp(np.float32(1.0), -e).astype(np.float32)  # exact
        self._u_lsb = _exact_sum_grid(self._u * self._inv_lsb,
                                      self.cfg.tile.rows_per_read * self.drive_max)

    def convert(self, x: np.ndarray, *, first: int = 0) -> Conversion:
        """All reads and conversions of ``x @ W`` for ``x`` (n, K) signed ``act_bits`` ints,
        in read order (the per-read entry point); row ``p`` of ``x`` is vector ``first + p``
        of a sequence (its read noise, :meth:`_read_noise`)."""
        x = self._check_x(x)
        analog = self._reads(x, first)
        codes = self._convert(analog.copy())
        n, n_dig = len(x), self.digits
        shape = (n, n_dig, self.row_tiles, self.groups, -1)
        order = (0, 2, 3, 1, 4)
        return Conversion(analog=analog.reshape(shape).transpose(order),
                          codes=codes.astype(np.int64).reshape(shape).transpose(order))

    def matmul(self, x: np.ndarray, *, first: int = 0, all_channels: bool = False
               ) -> np.ndarray:
        """Shift-add results (n, N) in units of ``out_lsb`` levels (drift-compensated when
        on): exactly ``x @ W`` when every effect is off and the ADC resolves every read.
        Row ``p`` of ``x`` is vector ``first + p`` of a sequence (its read noise,
        :meth:`_read_noise`).
        ``all_channels``: every channel of every column tile, (n, col_tiles *
        channels_per_tile), as the RTL tile computes them (unused ones read only noise)."""
        cfg = self.cfg
        x = self._check_x(x)
        n_dig = self.digits
        n_pad = self.col_tiles * cfg.channels_per_tile
        acc = np.empty((len(x), n_pad), dtype=np.int64)
        for i in range(0, len(x), CHUNK_VECTORS):
            xs = x[i : i + CHUNK_VECTORS]
            planes = self._planes(xs)
            noise = self._read_noise(first + i, len(xs))
            total = np.zeros((len(xs), n_pad))
            bound = np.zeros((len(xs), n_pad))
            if self._compiled_sar:  # the same conversion and sums, compiled
                self._sar_shift_add(planes, noise, total, bound)
            for g in range(0 if self._compiled_sar else self.row_tiles * self.groups):
                reads = self._group_reads(planes, g, None if noise is None else noise[:, g])
                codes = self._convert(reads).reshape(len(xs), n_dig, n_pad, 2 * self.slices)
                part, mag = self._shift_add_group(codes)
                total += part
                bound += mag
            if (bound + self._partial_margin() > (1 << (cfg.numerics.acc_bits - 1)) - 1).any():
                # the accumulator may clamp (or wrap) on the way: the spec, beat by beat
                codes = self._convert(np.stack(
                    [self._group_reads(planes, g, None if noise is None else noise[:, g])
                     for g in range(self.row_tiles * self.groups)], axis=1))
                total = self._shift_add_in_order(codes.reshape(len(xs), n_dig, -1,
                                                               2 * self.slices))
            acc[i : i + CHUNK_VECTORS] = total
        if self.drift_comp_q is not None:
            q = np.repeat(self.drift_comp_q, cfg.channels_per_tile)
            acc = round_shift(acc * q, SCALE_FRAC_BITS, cfg.numerics.rounding)
            acc = (saturate if cfg.numerics.saturate else wrap)(acc, cfg.numerics.acc_bits)
        return acc if all_channels else acc[:, : self.n]

    def _sar_shift_add(self, planes: np.ndarray, noise: np.ndarray | None,
                       total: np.ndarray, bound: np.ndarray) -> None:
        """Every row group's reads, SAR conversions and shift-add sums by the compiled kernel,
        added into ``total`` and ``bound`` (see :meth:`_shift_add_group`).

        Column tiles go in blocks of about ``COLUMN_BLOCK`` columns, so that reads stay in
        cache on their way from the GEMM to the kernel, and blocks run in parallel threads,
        each with a single-threaded BLAS: a block's sums add group by group as in the spec, and
        nothing depends on which thread ran it."""
        cfg = self.cfg
        cols, per_tile = cfg.tile.cols, cfg.channels_per_tile
        offsets, col_weights, bit_weights = self._sar_constants
        top = np.float32((1 << cfg.adc.bits) - 1)
        step = max(1, COLUMN_BLOCK // cols)

        def block(first: int) -> None:
            tiles = range(first, min(first + step, self.col_tiles))
            c = slice(tiles.start * cols, tiles.stop * cols)
            ch = slice(tiles.start * per_tile, tiles.stop * per_tile)
            for g in range(self.row_tiles * self.groups):
                reads = self._group_reads(planes, g, None if noise is None else noise[:, g, c],
                                          tiles)
                sar_shift_add(reads, offsets[c], top, 2 * self.slices, col_weights[c],
                              bit_weights, total[:, ch], bound[:, ch])

        with threadpool_limits(1, user_api="blas"):
            list(_pool().map(block, range(0, self.col_tiles, step)))

    @functools.cached_property
    def _sar_constants(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The compiled kernel's comparator offsets, column weights and input-bit weights."""
        return self._sar_offsets(), self._column_weights(), self._bit_weights().astype(np.float32)

    def _slice_shifts(self) -> np.ndarray:
        """Shift of slice ``k``'s codes relative to the finest LSB: ``k bpc + e_k - e_min``."""
        bpc = self.cfg.tile.bits_per_cell
        return np.arange(self.slices) * bpc + self.slice_exp - self.out_exp

    @property
    def _compiled_sar(self) -> bool:
        """Whether the compiled kernel applies: SAR conversion, and one column's bits summed in
        float32 stay exact."""
        cfg = self.cfg
        return cfg.adc.kind == "sar" and cfg.adc.bits + cfg.numerics.act_bits <= 24

    def _sar_offsets(self) -> np.ndarray:
        """Comparator offset of every physical column's SAR ADC, float32 (zeros when off)."""
        cols = self._u.shape[1]
        if not self.cfg.adc.offset_sigma_lsb:
            return np.zeros(cols, dtype=np.float32)
        return self.effective_offsets[self._adc_of_column(cols), 0].astype(np.float32)

    def _column_weights(self) -> np.ndarray:
        """Signed shift-add weight of every physical column's codes, relative to the finest
        LSB: ``+-2^shift_k`` of its slice, negative for G-."""
        cols = self._u.shape[1]
        sign = np.where(np.arange(cols) % 2 == 1, -1.0, 1.0)
        return sign * 2.0 ** self._slice_shifts()[self._slice_of_column(cols)]

    def _bit_weights(self) -> np.ndarray:
        """Signed weight of every input digit: 2^digit_shift(d), negative for the last (the sign
        bit, two's complement)."""
        d = np.arange(self.digits)
        shifts = ShiftAddSpec.from_config(self.cfg).digit_shifts()
        return np.where(d == len(d) - 1, -1.0, 1.0) * 2.0**shifts

    def _shift_add_group(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One row group's share of the shift-add: its exact sum (n, N_pad) float64 and a
        bound on how far any partial sum inside it can move the accumulator.

        ``codes``: (n, D, N_pad, 2 S) float32 integers. Input digit d, slice k, polarity p
        weighs ``sign * 2^(digit_shift(d) + shift_k)``, negative for the G- column and for the
        sign digit. The beats run group by group, d by d, and within d step by step: no
        partial sum is further from 0 than the magnitudes of the whole (group, d) sums before
        it plus :meth:`_partial_margin`.
        """
        cfg = self.cfg
        s = self.slices
        shifts = self._slice_shifts()
        w_slice = self._column_weights()[: 2 * s]  # one channel's columns
        # slice/polarity first: exact in float32 while codes * 2^max_shift * 2S < 2^24
        exact32 = cfg.adc.bits + int(shifts.max()) + (2 * s).bit_length() <= 24
        dt = np.float32 if exact32 else np.float64
        per_slice = codes.astype(dt, copy=False) @ w_slice.astype(dt)  # (n, D, N_pad)
        w_bit = self._bit_weights()
        part = np.einsum("ndc,d->nc", per_slice, w_bit, dtype=np.float64)
        mag = np.einsum("ndc,d->nc", np.abs(per_slice), np.abs(w_bit), dtype=np.float64)
        return part, mag

    def _partial_margin(self) -> float:
        """The furthest the beats of one read (one digit of one group) can move the
        accumulator."""
        top = (1 << self.cfg.adc.bits) - 1
        return top * float(np.sum(2.0 ** self._slice_shifts())) * 2 * 2.0 ** (
            self.cfg.numerics.act_bits - 1)

    def _shift_add_in_order(self, codes: np.ndarray) -> np.ndarray:
        """The shift-add specification beat by beat, all channels as lanes, the accumulator
        clamped or wrapped after every beat. ``codes``: (n, D, G * N_pad, 2 S).

        A beat is one conversion step of one read, in read order (row tile, group, input
        digit, step): the ADCs of a tile convert their columns one step after another
        (:meth:`_step_of_column`), and the terms of a channel's columns converted in the same
        step are summed exactly before they enter its accumulator -- the order of the RTL
        analog tile (``golden/analog_tile.py``)."""
        cfg = self.cfg
        n_dig, s = self.digits, self.slices
        n = codes.shape[0]
        g = self.row_tiles * self.groups
        cpa = cfg.adc.cols_per_adc
        c = codes.astype(np.int64).reshape(n, n_dig, g, -1, s, 2).transpose(0, 2, 1, 3, 4, 5)
        n_pad = c.shape[3]  # c: (n, G, D, N_pad, S, 2)
        d = np.arange(n_dig)[:, None, None]
        digit_shifts = ShiftAddSpec.from_config(cfg).digit_shifts()[:, None]
        shift = digit_shifts + self._slice_shifts()[None, :]  # (D, S)
        sign = np.where((np.arange(2)[None, None, :] == 1) ^ (d == n_dig - 1), -1, 1)  # (D, 1, 2)
        t = (c << shift[None, None, :, None, :, None]) * sign[None, None, :, None, :, :]
        t = t.reshape(n, g, n_dig, n_pad, 2 * s)
        # the step of every (channel, column of the channel), from the column's place in its tile
        col_in_tile = ((np.arange(n_pad) % cfg.channels_per_tile)[:, None] * 2 * s
                       + np.arange(2 * s)[None, :])
        steps = self._step_of_column(col_in_tile)
        beats = np.stack([(t * (steps == j)).sum(axis=-1) for j in range(cpa)], axis=3)
        beats = beats.reshape(-1, n_pad)  # (n, G, D, step) beats of N_pad lanes
        per_vec = g * n_dig * cpa
        last = (np.arange(len(beats)) % per_vec) == per_vec - 1
        return accumulate(beats, last, cfg.numerics.acc_bits, cfg.numerics.saturate)
