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
    Inputs are applied bit-serially (two's complement, MSB weighted negative) to groups of
    ``rows_per_read`` word lines. One read per (vector, row tile, row group, input bit); every
    column of every column tile is converted once per read.

Non-idealities (each switched in ``[analog]``, seeded from the config's ``seed`` and the
matrix's ``key``; turning one on never changes another's random draws):
    programming noise, faults, drift, 1/f read noise (static at ``t_inference``), per-read
    noise, ADC offsets, global drift compensation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cimforge.config import Config
from golden.numerics import round_shift, saturate, wrap
from golden.shift_add import Beats, ShiftAddSpec, shift_add

__all__ = ["PCM", "CimMatrix", "Conversion", "pcm_prog_sigma_us", "pcm_drift_nu_stats",
           "pcm_read_noise_q"]

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

# Drift-compensation register: unsigned fixed point, DRIFT_COMP_BITS wide with
# DRIFT_COMP_FRAC_BITS fraction bits (factors up to 16; PCM decays to ~0.45 in a year).
DRIFT_COMP_BITS = 16
DRIFT_COMP_FRAC_BITS = 12

_GT_FLOOR = 1e-7  # relative conductance floor inside logarithms (an unprogrammed cell)


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


def pcm_read_noise_q(g_prog_us: np.ndarray, g_max_us: float) -> np.ndarray:
    """1/f noise amplitude Q_s of the PCM model."""
    c, e, top = PCM["q_s"]
    gt = np.abs(g_prog_us) / g_max_us
    return np.minimum(c / np.maximum(gt**e, 1e-3), top)


@dataclass(frozen=True)
class Conversion:
    """Every ADC conversion of one matmul, in read order (the per-read entry point).

    ``analog[n, t, g, d, col]``: the column's read value in ADC LSBs (reference subtracted,
    offsets not included) for vector ``n``, row tile ``t``, row group ``g``, input bit ``d``
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

    Attributes
    ----------
    g_us : float64 array (row_tiles * rows, col_tiles * cols)
        Conductances at inference time (after programming noise, faults, drift, 1/f noise).
    g_ref_us : float64 array (row_tiles * rows, col_tiles)
        The reference column of every tile.
    """

    def __init__(self, w: np.ndarray, cfg: Config, *, key: int = 0):
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
        dev = cfg.device
        self.g_max = dev.g_max_us
        self.g_min = dev.g_min_us
        self.dg = (self.g_max - self.g_min) / (self.levels - 1)
        streams = ("prog", "drift", "flicker", "faults", "adc", "read",
                   "ref_prog", "ref_drift", "ref_flicker", "ref_faults")
        seeds = np.random.SeedSequence(entropy=cfg.seed, spawn_key=(key,)).spawn(len(streams))
        self._rng = {name: np.random.default_rng(s) for name, s in zip(streams, seeds)}
        self.level_map = self._levels(w)
        self.lsb = self._adc_lsb()
        self._adc_offsets()
        self._program()

    # -- mapping -------------------------------------------------------------------------------

    def _levels(self, w: np.ndarray) -> np.ndarray:
        """Target level of every cell: (row_tiles * rows, col_tiles * cols) int."""
        t = self.cfg.tile
        k_pad = self.row_tiles * t.rows
        n_pad = self.col_tiles * self.cfg.channels_per_tile
        w = np.pad(w.astype(np.int64), ((0, k_pad - self.k), (0, n_pad - self.n)))
        mags = np.stack([np.maximum(w, 0), np.maximum(-w, 0)], axis=-1)  # (K, N, P)
        shifts = np.arange(self.slices) * t.bits_per_cell
        lv = (mags[:, :, None, :] >> shifts[None, None, :, None]) & (self.levels - 1)
        return lv.reshape(k_pad, n_pad * self.slices * 2)  # column = 2 (c S + k) + p

    # -- devices -------------------------------------------------------------------------------

    def _program(self) -> None:
        a = self.cfg.analog
        target = self.g_min + self.level_map * self.dg
        ref_target = np.full((target.shape[0], self.col_tiles), self.g_min)
        cells = self._devices(target, self._rng["prog"], self._rng["drift"],
                              self._rng["flicker"], self._rng["faults"])
        # the reference column is a column of real cells: the same physics, its own draws
        refs = self._devices(ref_target, self._rng["ref_prog"], self._rng["ref_drift"],
                             self._rng["ref_flicker"], self._rng["ref_faults"])
        self.g_us, self.g_ref_us = cells[-1], refs[-1]
        # cells in conductance-level units, as the reads use them (exact integers when ideal)
        self._u = ((self.g_us - self.g_min) / self.dg).astype(np.float32)
        self._u_ref = ((self.g_ref_us - self.g_min) / self.dg).astype(np.float32)
        # per-read fluctuation: each active cell's conductance varies by read_sigma (relative)
        # from read to read; a read's variance is the sum over its active cells
        self._read_var = None
        if a.read_noise and self.cfg.device.read_sigma:
            s = self.cfg.device.read_sigma / self.dg
            self._read_var = ((s * self.g_us) ** 2).astype(np.float32)
            self._read_var_ref = ((s * self.g_ref_us) ** 2).astype(np.float32)
        self.drift_comp_q = None
        if a.drift_compensation:
            self.drift_comp_q = self._drift_compensation(cells[0], refs[0], cells[-1], refs[-1])

    def _devices(self, target, prog, drift, flicker, faults) -> tuple[np.ndarray, np.ndarray]:
        """Conductances (uS) of cells programmed to ``target``: (as read right after
        programming, at t0; as read at ``t_inference``)."""
        a, dev = self.cfg.analog, self.cfg.device
        g = target.copy()
        if a.prog_noise:
            if dev.pcm_model:
                sigma = pcm_prog_sigma_us(target, self.g_max)
            else:
                sigma = dev.prog_sigma * self.g_max
            g = np.maximum(g + sigma * prog.standard_normal(g.shape), 0.0)
        t0 = dev.drift_t0_s
        g_t = self._drift(g, target, a.t_inference, drift) if a.drift else g
        g0 = g
        if a.read_noise and dev.pcm_model:
            g0 = self._flicker(g, t0, flicker)
            g_t = self._flicker(g_t, a.t_inference, flicker)
        if a.stuck_on_rate or a.stuck_off_rate:
            u = faults.random(g.shape)
            on = u < a.stuck_on_rate
            off = (u >= a.stuck_on_rate) & (u < a.stuck_on_rate + a.stuck_off_rate)
            g0 = np.where(on, self.g_max, np.where(off, self.g_min, g0))
            g_t = np.where(on, self.g_max, np.where(off, self.g_min, g_t))
        return g0, g_t

    def _flicker(self, g: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
        """PCM 1/f read noise accumulated up to time ``t`` after programming."""
        q = pcm_read_noise_q(g, self.g_max)
        scale = math.sqrt(math.log((t + PCM["t_read_s"]) / (2 * PCM["t_read_s"])))
        return np.maximum(g + np.abs(g) * q * scale * rng.standard_normal(g.shape), 0.0)

    def _drift_nu(self, target: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        dev = self.cfg.device
        z = rng.standard_normal(target.shape)
        if dev.pcm_model:
            mean, std = pcm_drift_nu_stats(target, self.g_max)
            return np.abs(mean + std * z)
        return np.maximum(dev.drift_nu_mean + dev.drift_nu_std * z, 0.0)

    def _drift(self, g: np.ndarray, target: np.ndarray, t: float,
               rng: np.random.Generator) -> np.ndarray:
        t0 = self.cfg.device.drift_t0_s
        nu = self._drift_nu(target, rng)
        if t <= t0:
            return g
        return g * (t / t0) ** (-nu)

    # -- ADC -----------------------------------------------------------------------------------

    def _adc_lsb(self) -> float:
        """LSB in conductance levels: 1 (``unit``), or the power of two that makes 2^bits - 1
        codes cover ``range_scale`` times the largest possible read (``full``)."""
        adc = self.cfg.adc
        if adc.range == "unit":
            return 1.0
        if adc.range == "full":
            full = adc.range_scale * self.cfg.tile.rows_per_read * (self.levels - 1)
            return 2.0 ** math.ceil(math.log2(full / ((1 << adc.bits) - 1)))
        raise ValueError(f"adc.range must be 'unit' or 'full', not {adc.range!r}")

    def _adc_offsets(self) -> None:
        adc = self.cfg.adc
        n_adcs = self.col_tiles * self.cfg.adcs_per_tile
        per_adc = 1 if adc.kind == "sar" else (1 << adc.bits) - 1
        self.adc_offsets = adc.offset_sigma_lsb * self._rng["adc"].standard_normal(
            (n_adcs, per_adc))

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
                analog -= self.adc_offsets[adc_of_col, 0].astype(analog.dtype)
            analog += 0.5
            np.floor(analog, out=analog)
            return np.clip(analog, 0, top, out=analog)
        # flash: thermometer of 2^bits - 1 comparators, each with its own offset; a ones
        # counter encodes it, so the code is the number of thresholds at or below the input
        thresholds = np.arange(1, top + 1) - 0.5 + self.adc_offsets  # (adcs, top)
        flat = analog.reshape(-1, cols)
        for col in range(cols):
            flat[:, col] = np.searchsorted(np.sort(thresholds[adc_of_col[col]]),
                                           flat[:, col], side="right")
        return analog

    def _adc_of_column(self, cols: int) -> np.ndarray:
        """ADC index of every physical column: columns ``a * cols_per_adc`` ... belong to ADC
        ``a`` of their tile (adjacent columns share a converter)."""
        return np.arange(cols) // self.cfg.adc.cols_per_adc

    # -- drift compensation --------------------------------------------------------------------

    def _full_range_lsb(self) -> float:
        """The LSB that covers the largest possible read (used for calibration reads)."""
        full = self.cfg.tile.rows_per_read * (self.levels - 1)
        return 2.0 ** max(0, math.ceil(math.log2(full / ((1 << self.cfg.adc.bits) - 1))))

    def _calibration_sums(self, g: np.ndarray, g_ref: np.ndarray) -> np.ndarray:
        """Sum of the codes of the calibration read, per column tile: every word line driven
        (group by group), the ADCs set to the full range so nothing clips."""
        t = self.cfg.tile
        u = (g - self.g_min) / self.dg
        u_ref = (g_ref - self.g_min) / self.dg
        groups = u.reshape(-1, t.rows_per_read, u.shape[1]).sum(axis=1)
        ref = np.repeat(u_ref.reshape(-1, t.rows_per_read, self.col_tiles).sum(axis=1),
                        t.cols, axis=1)
        codes = self._convert((groups - ref) / self._full_range_lsb())
        return codes.sum(axis=0).reshape(self.col_tiles, t.cols).sum(axis=1)

    def _drift_compensation(self, g0, ref0, g_t, ref_t) -> np.ndarray:
        """Per column tile, the fixed-point factor (``DRIFT_COMP_FRAC_BITS`` fraction bits)
        that scales today's calibration read back to the one taken at programming time."""
        then = self._calibration_sums(g0, ref0)
        now = self._calibration_sums(g_t, ref_t)
        factor = then / np.maximum(now, 1)
        q = np.rint(factor * (1 << DRIFT_COMP_FRAC_BITS)).astype(np.int64)
        return np.clip(q, 0, (1 << DRIFT_COMP_BITS) - 1)

    @property
    def drift_factor(self) -> np.ndarray:
        """The compensation factors as real numbers, per column tile (1 when off)."""
        if self.drift_comp_q is None:
            return np.ones(self.col_tiles)
        return self.drift_comp_q / (1 << DRIFT_COMP_FRAC_BITS)

    # -- the matmul ----------------------------------------------------------------------------

    def _reads(self, x: np.ndarray) -> np.ndarray:
        """Read values in ADC LSBs, (n * D, row_tiles * groups, physical columns) float32."""
        x = np.asarray(x)
        cfg = self.cfg
        ab = cfg.numerics.act_bits
        if x.ndim != 2 or x.shape[1] != self.k:
            raise ValueError(f"x must have shape (n, {self.k}), not {x.shape}")
        if x.size and (x.min() < -(1 << (ab - 1)) or x.max() >= 1 << (ab - 1)):
            raise ValueError(f"x must be signed {ab}-bit")
        t = cfg.tile
        n = x.shape[0]
        k_pad = self.row_tiles * t.rows
        xu = np.zeros((n, k_pad), dtype=np.int64)
        xu[:, : self.k] = x
        xu &= (1 << ab) - 1
        # bit planes as rows of one matrix: (n * D, K), row n * D + d is bit d of vector n
        planes = ((xu[:, None, :] >> np.arange(ab)[None, :, None]) & 1).astype(np.float32)
        planes = planes.reshape(n * ab, k_pad)
        groups_total = k_pad // t.rows_per_read
        analog = np.empty((n * ab, groups_total, self._u.shape[1]), dtype=np.float32)
        for g in range(groups_total):
            rows = slice(g * t.rows_per_read, (g + 1) * t.rows_per_read)
            np.matmul(planes[:, rows], self._u[rows], out=analog[:, g])
            ref = planes[:, rows] @ self._u_ref[rows]  # (n*D, col_tiles)
            view = analog[:, g].reshape(n * ab, self.col_tiles, t.cols)
            view -= ref[:, :, None]
            if self._read_var is not None:
                var = planes[:, rows] @ self._read_var[rows]
                var_ref = planes[:, rows] @ self._read_var_ref[rows]
                var = var.reshape(view.shape) + var_ref[:, :, None]
                view += np.sqrt(var) * self._rng["read"].standard_normal(
                    var.shape, dtype=np.float32)
        if self.lsb != 1.0:
            analog *= np.float32(1.0 / self.lsb)
        return analog

    def convert(self, x: np.ndarray) -> Conversion:
        """All reads and conversions of ``x @ W`` for ``x`` (n, K) signed ``act_bits`` ints,
        in read order (the per-read entry point)."""
        analog = self._reads(x)
        codes = self._convert(analog.copy())
        n, ab = len(x), self.cfg.numerics.act_bits
        shape = (n, ab, self.row_tiles, self.groups, -1)
        order = (0, 2, 3, 1, 4)
        return Conversion(analog=analog.reshape(shape).transpose(order),
                          codes=codes.astype(np.int64).reshape(shape).transpose(order))

    def matmul(self, x: np.ndarray) -> np.ndarray:
        """Shift-add results (n, N) in units of ``lsb`` levels (drift-compensated when on):
        exactly ``x @ W`` when every effect is off and the ADC resolves every read."""
        cfg = self.cfg
        ab, s = cfg.numerics.act_bits, self.slices
        codes = self._convert(self._reads(x))  # (n*D, G, C)
        n = len(x)
        acc, bound = self._shift_add_sums(codes.reshape(n, ab, -1, s * 2))
        if (bound > (1 << (cfg.numerics.acc_bits - 1)) - 1).any():
            # the shift-add saturates after every beat: run its specification in read order
            conv = codes.astype(np.int64).reshape(n, ab, self.row_tiles, self.groups, -1)
            acc = self._shift_add_in_order(conv.transpose(0, 2, 3, 1, 4))
        if self.drift_comp_q is not None:
            q = np.repeat(self.drift_comp_q, cfg.channels_per_tile)
            acc = round_shift(acc * q, DRIFT_COMP_FRAC_BITS, cfg.numerics.rounding)
            acc = (saturate if cfg.numerics.saturate else wrap)(acc, cfg.numerics.acc_bits)
        return acc[:, : self.n]

    def _shift_add_sums(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Exact shift-add sums and the sums of the terms' magnitudes, (n, N_pad) int64.

        ``codes``: (n, D, G * N_pad, 2 S). Input bit d, slice k, polarity p weighs
        ``sign * 2^(d + k bpc)``, negative for the G- column and for the MSB input bit.
        """
        cfg = self.cfg
        ab, bpc, s = cfg.numerics.act_bits, cfg.tile.bits_per_cell, self.slices
        n = codes.shape[0]
        k = np.arange(s)[:, None]
        p = np.arange(2)[None, :]
        w_slice = (np.where(p == 1, -1.0, 1.0) * 2.0 ** (k * bpc)).reshape(s * 2)
        # slice/polarity first: exact in float32 while codes * 2^((S-1) bpc) * 2S < 2^24
        small = cfg.adc.bits + (s - 1) * bpc + (2 * s).bit_length() <= 24
        dt = np.float32 if small else np.float64
        c = codes.astype(dt, copy=False)
        per_slice = c @ w_slice.astype(dt)  # (n, D, G*N_pad)
        per_slice_abs = c @ np.abs(w_slice).astype(dt)
        d = np.arange(ab)
        w_bit = np.where(d == ab - 1, -1.0, 1.0) * 2.0**d
        g = self.row_tiles * self.groups
        acc = np.einsum("ndgc,d->nc", per_slice.astype(np.float64).reshape(n, ab, g, -1),
                        w_bit)
        # magnitudes: |sign_d * sum_j w_j c_j| <= 2^d * sum_j |w_j| c_j
        bound = np.einsum("ndgc,d->nc", per_slice_abs.astype(np.float64).reshape(n, ab, g, -1),
                          np.abs(w_bit))
        return acc.astype(np.int64), bound

    def _shift_add_in_order(self, codes: np.ndarray) -> np.ndarray:
        """The shift-add specification beat by beat (read order: row tile, group, input bit,
        slice, polarity), all channels as lanes."""
        cfg = self.cfg
        spec = ShiftAddSpec(
            lanes=codes.shape[-1] // (2 * self.slices), adc_bits=cfg.adc.bits,
            input_digits=cfg.input_digits, dac_bits=cfg.tile.dac_bits,
            weight_slices=self.slices, bits_per_cell=cfg.tile.bits_per_cell,
            acc_bits=cfg.numerics.acc_bits, saturate=cfg.numerics.saturate)
        n, t, g, d = codes.shape[:4]
        c = codes.reshape(n, t, g, d, spec.lanes, self.slices, 2)
        beats_codes = c.transpose(0, 1, 2, 3, 5, 6, 4).reshape(-1, spec.lanes)
        tags = np.indices((n, t, g, d, self.slices, 2)).reshape(6, -1)
        per_vec = t * g * d * self.slices * 2
        last = (np.arange(beats_codes.shape[0]) % per_vec) == per_vec - 1
        negative = (tags[5] == 1) ^ (tags[3] == d - 1)
        return shift_add(spec, Beats(beats_codes, tags[3], tags[4], negative.astype(np.int64),
                                     last.astype(np.int64)))
