"""Shift-add bit-slice reduction: the bit-exact specification of ``hw/shift_add.py``.

A crossbar read gives, per column, an unsigned ADC code: the (quantised) dot product of one
input digit with one weight slice of one polarity over one group of rows. The shift-add unit
turns a sequence of such codes into the integer dot product::

    acc = sum over beats of  (-1)^negative * code * 2^(digit_shift(digit) + slice * bits_per_cell)

One *beat* carries one code per lane (lanes run in lock-step) and the tags shared by all
lanes: ``digit`` (input digit index, 0 = least significant; digit ``d`` weighs
``2^(d * dac_bits)``, the last one -- the sign bit alone -- ``2^(input_bits - 1)``, see
:func:`cimforge.config.input_digits`), ``slice`` (weight slice index),
``negative`` (subtract this term: set for the G- column, and toggled for the most significant
digit of a two's-complement input, whose weight is negative) and ``last`` (the final beat of
one dot product: emit the accumulator, then restart from zero). Beats of further row tiles of
the same output simply continue the sum before ``last``.

Numerics, as named steps:

1. *term*: ``code << (digit_shift(digit) + slice * bits_per_cell)``, negated when ``negative``;
   exact (the config guarantees ``acc_bits`` > term width).
2. *accumulate*: ``acc + term``, exact, then
3. *saturate* to signed ``acc_bits`` (clamp) when ``saturate`` is set, else *wrap* (two's
   complement truncation) -- after **every** beat, as the hardware accumulator does.
4. *emit* on ``last`` and reset ``acc`` to 0.

Timing (the cycle model the RTL meets exactly): one beat per cycle per lane, a two-stage
pipeline (term register, accumulator/output register) stalled as a whole while a result waits
on a full output. See :class:`ShiftAddTiming`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from cimforge.config import Config, digit_bits, digit_shift, input_digits, max_shift
from cimforge.golden.numerics import CodeAccRanges, as_dict, positive_int, saturate, wrap

__all__ = [
    "ShiftAddSpec", "ShiftAddTiming", "Beats", "shift_add", "accumulate", "dot_product_beats",
    "input_digits_of",
    "saturate", "wrap",
]


@dataclass(frozen=True)
class ShiftAddSpec(CodeAccRanges):
    """Parameters of one shift-add reduction unit.

    Parameters
    ----------
    lanes : int
        Parallel accumulators (one per ADC of the tile).
    adc_bits : int
        Width of an (unsigned) ADC code.
    input_bits : int
        Width of a signed input (``act_bits``); :attr:`input_digits` digits apply it.
    dac_bits : int
        Bits applied per digit; digit ``d`` weighs ``2^(d * dac_bits)``, the last (the sign
        bit) ``2^(input_bits - 1)``.
    weight_slices : int
        Weight slices per weight (``weight_bits / bits_per_cell``).
    bits_per_cell : int
        Bits per slice; slice ``k`` weighs ``2^(k * bits_per_cell)``.
    acc_bits : int
        Signed accumulator and output width.
    saturate : bool
        Clamp (True) or wrap (False) the accumulator after every beat.
    """

    lanes: int
    adc_bits: int
    input_bits: int
    dac_bits: int
    weight_slices: int
    bits_per_cell: int
    acc_bits: int
    saturate: bool = True

    def __post_init__(self):
        for f in fields(self):
            if f.name != "saturate":
                positive_int(f.name, getattr(self, f.name))
        if not isinstance(self.saturate, bool):
            raise ValueError(f"saturate must be a bool, not {self.saturate!r}")
        if self.adc_bits > 16:
            raise ValueError(f"adc_bits must be at most 16, not {self.adc_bits}")
        if self.term_bits + 1 > self.acc_bits:
            raise ValueError(
                f"acc_bits must be at least {self.term_bits + 1} to hold one signed term "
                f"(adc_bits {self.adc_bits} + max_shift {self.max_shift}), not {self.acc_bits}"
            )

    @classmethod
    def from_config(cls, cfg: Config) -> ShiftAddSpec:
        return cls(
            lanes=cfg.adcs_per_tile,
            adc_bits=cfg.adc.bits,
            input_bits=cfg.numerics.act_bits,
            dac_bits=cfg.tile.dac_bits,
            weight_slices=cfg.weight_slices,
            bits_per_cell=cfg.tile.bits_per_cell,
            acc_bits=cfg.numerics.acc_bits,
            saturate=cfg.numerics.saturate,
        )

    def as_dict(self) -> dict[str, int | bool]:
        return as_dict(self)

    @property
    def max_shift(self) -> int:
        return max_shift(self.input_bits, self.weight_slices, self.bits_per_cell)

    @property
    def input_digits(self) -> int:
        return input_digits(self.input_bits, self.dac_bits)

    def digit_shifts(self) -> np.ndarray:
        """Weight exponent of every input digit, int64 (input_digits,)."""
        return np.array([digit_shift(d, self.input_bits, self.dac_bits)
                         for d in range(self.input_digits)], dtype=np.int64)

    @property
    def term_bits(self) -> int:
        """Magnitude bits of a shifted code."""
        return self.adc_bits + self.max_shift

    @property
    def digit_bits(self) -> int:
        return max(1, (self.input_digits - 1).bit_length())

    @property
    def slice_bits(self) -> int:
        return max(1, (self.weight_slices - 1).bit_length())


@dataclass(frozen=True)
class ShiftAddTiming:
    """Cycle model of the shift-add unit.

    Cycles are counted at the clock edge that completes a stream transfer. The unit accepts one
    beat per cycle unless its output holds a result that is not being taken (then the whole
    pipeline, and with it ``i_stream.ready``, stalls). A result is offered ``latency`` cycles
    after its ``last`` beat is accepted, and never before the cycle after the previous result
    was taken.
    """

    latency: int = 2

    def accepts(self, out_valid: int, out_ready: int) -> bool:
        """Whether the unit takes an offered beat in a cycle with these output handshake
        signals: the pipeline advances unless a result waits on a sink that is not ready."""
        return not out_valid or bool(out_ready)

    def output_cycle(self, last_accept_cycle: int, prev_transfer_cycle: int | None) -> int:
        """Cycle in which the result of a vector whose last beat was accepted in
        ``last_accept_cycle`` is first offered, given the cycle the previous result was taken."""
        earliest = last_accept_cycle + self.latency
        if prev_transfer_cycle is None:
            return earliest
        return max(earliest, prev_transfer_cycle + 1)

    def stream_cycles(self, beats: int) -> int:
        """Cycles from the first accepted beat to the last result offered, with the input
        always valid and the output always ready: one beat per cycle plus the pipeline."""
        return beats - 1 + self.latency


@dataclass(frozen=True)
class Beats:
    """A sequence of ``n`` beats: ``codes`` (n, lanes) and per-beat tags (n,)."""

    codes: np.ndarray
    digit: np.ndarray
    slice: np.ndarray
    negative: np.ndarray
    last: np.ndarray

    def __post_init__(self):
        n = len(self.codes)
        for name in ("digit", "slice", "negative", "last"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} entries, codes has {n}")

    def __len__(self) -> int:
        return len(self.codes)

    def check(self, spec: ShiftAddSpec) -> None:
        """Raise ValueError if any field is outside what the hardware port can carry."""
        if self.codes.ndim != 2 or self.codes.shape[1] != spec.lanes:
            raise ValueError(f"codes must have shape (n, {spec.lanes}), not {self.codes.shape}")
        for name, hi in (
            ("codes", spec.code_max),
            ("digit", spec.input_digits - 1),
            ("slice", spec.weight_slices - 1),
            ("negative", 1),
            ("last", 1),
        ):
            a = np.asarray(getattr(self, name))
            if a.size and (a.min() < 0 or a.max() > hi):
                raise ValueError(f"{name} must lie in [0, {hi}]")


def terms(spec: ShiftAddSpec, beats: Beats) -> np.ndarray:
    """Step 1: the signed, shifted term of every beat and lane, int64 (n, lanes)."""
    shift = spec.digit_shifts()[beats.digit.astype(np.int64)] + beats.slice.astype(np.int64) * (
        spec.bits_per_cell
    )
    t = beats.codes.astype(np.int64) << shift[:, None]
    return np.where(beats.negative.astype(bool)[:, None], -t, t)


def shift_add(spec: ShiftAddSpec, beats: Beats) -> np.ndarray:
    """Results (one row of ``lanes`` int64 per ``last`` beat) of a beat sequence.

    Beats after the final ``last`` belong to no result and are ignored.
    """
    beats.check(spec)
    return accumulate(terms(spec, beats), beats.last, spec.acc_bits, spec.saturate)


def accumulate(t: np.ndarray, last: np.ndarray, acc_bits: int, saturate_: bool) -> np.ndarray:
    """Steps 2-4 on signed terms ``t`` (n, lanes): one row per ``last`` beat.

    Vectorised: the exact running sums come from one cumulative sum per lane; only where a
    running sum leaves the accumulator range (so clamping or wrapping after a beat changes
    later sums) does the per-beat recurrence run, for that segment alone.
    """
    ends = np.flatnonzero(np.asarray(last).astype(bool))
    out = np.empty((len(ends), t.shape[1]), dtype=np.int64)
    limit = saturate if saturate_ else wrap
    acc_min, acc_max = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    start = 0
    for i, end in enumerate(ends):
        seg = t[start : end + 1]
        running = np.cumsum(seg, axis=0)
        if running.size == 0 or (running.min() >= acc_min and running.max() <= acc_max):
            out[i] = running[-1]
        else:
            acc = np.zeros(t.shape[1], dtype=np.int64)
            for row in seg:
                acc = limit(acc + row, acc_bits)
            out[i] = acc
        start = end + 1
    return out


def input_digits_of(x: np.ndarray, input_bits: int, dac_bits: int) -> np.ndarray:
    """The DAC digits of signed ``input_bits`` inputs ``x`` (..., k): (..., D, k) int64.

    Digit ``d < D - 1`` holds bits ``d * dac_bits`` up to (not including) ``min((d + 1) *
    dac_bits, input_bits - 1)`` of the two's complement, unsigned; digit ``D - 1`` is the sign
    bit. ``sum_d (-1)^[d = D-1] digit_d 2^digit_shift(d) == x``.
    """
    x = np.asarray(x, dtype=np.int64)
    xu = x & ((1 << input_bits) - 1)
    n_digits = input_digits(input_bits, dac_bits)
    out = np.empty(x.shape[:-1] + (n_digits, x.shape[-1]), dtype=np.int64)
    for d in range(n_digits):
        lo, hi = digit_bits(d, input_bits, dac_bits)
        out[..., d, :] = (xu >> lo) & ((1 << (hi - lo)) - 1)
    return out


def dot_product_beats(
    spec: ShiftAddSpec, x: np.ndarray, w: np.ndarray, rows_per_read: int
) -> Beats:
    """The beats an *ideal* crossbar (exact conductances, an ADC that resolves every level)
    delivers for the dot products ``x @ w``, one result per row of ``x``.

    ``x``: (n, k) signed ``input_bits`` inputs, applied digit by digit (:func:`input_digits`);
    ``w``: (k, lanes) signed weights, split into a positive and a negative magnitude (the G+ and
    G- columns), each cut into ``weight_slices`` slices of ``bits_per_cell`` bits. Reads go
    row group by row group (``rows_per_read`` rows, the last group zero-padded), and within a
    group digit by digit, slice by slice, G+ then G-. The last digit (the sign bit) weighs
    negative (two's complement), so its G+ terms are subtracted and its G- terms added.
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    n, k = x.shape
    if w.shape != (k, spec.lanes):
        raise ValueError(f"w must have shape ({k}, {spec.lanes}), not {w.shape}")
    in_bits = spec.input_bits
    w_bits = spec.weight_slices * spec.bits_per_cell
    if x.min(initial=0) < -(1 << (in_bits - 1)) or x.max(initial=0) >= 1 << (in_bits - 1):
        raise ValueError(f"x must be signed {in_bits}-bit")
    if w.min(initial=0) < -(1 << (w_bits - 1)) or w.max(initial=0) >= 1 << (w_bits - 1):
        raise ValueError(f"w must be signed {w_bits}-bit")
    levels_max = (1 << spec.bits_per_cell) - 1
    drive_max = (1 << spec.dac_bits) - 1
    if rows_per_read * levels_max * drive_max > spec.code_max:
        raise ValueError(
            f"an ideal read of {rows_per_read} rows of {spec.bits_per_cell}-bit cells driven by "
            f"{spec.dac_bits}-bit digits reaches {rows_per_read * levels_max * drive_max}, "
            f"beyond the {spec.adc_bits}-bit ADC's {spec.code_max}"
        )
    groups = -(-k // rows_per_read)
    pad = groups * rows_per_read - k
    n_digits = spec.input_digits
    xbits = input_digits_of(np.pad(x, ((0, 0), (0, pad))), in_bits, spec.dac_bits)  # (n, D, K)
    xbits = xbits.transpose(0, 2, 1)  # (n, K, D)
    mags = np.stack([np.maximum(w, 0), np.maximum(-w, 0)], axis=-1)  # (k, L, P)
    mags = np.pad(mags, ((0, pad), (0, 0), (0, 0)))
    shifts = np.arange(spec.weight_slices) * spec.bits_per_cell
    levels = (mags[..., None] >> shifts) & levels_max  # (K, L, P, S)
    xbits = xbits.reshape(n, groups, rows_per_read, n_digits)
    levels = levels.reshape(groups, rows_per_read, spec.lanes, 2, spec.weight_slices)
    codes = np.einsum("ngrd,grlps->ngdspl", xbits, levels)  # (n, G, D, S, P, L)
    per_vec = groups * n_digits * spec.weight_slices * 2
    g, d, s, p = np.meshgrid(
        np.arange(groups), np.arange(n_digits), np.arange(spec.weight_slices), np.arange(2),
        indexing="ij",
    )
    digit = np.tile(d.ravel(), n)
    slice_ = np.tile(s.ravel(), n)
    negative = np.tile((p.ravel() == 1) ^ (d.ravel() == n_digits - 1), n).astype(np.int64)
    last = np.zeros(n * per_vec, dtype=np.int64)
    last[per_vec - 1 :: per_vec] = 1
    return Beats(codes.reshape(n * per_vec, spec.lanes), digit, slice_, negative, last)
