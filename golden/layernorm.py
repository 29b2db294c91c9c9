"""The LayerNorm unit (:class:`cimforge.hw.layernorm.LayerNorm`): its parameters, the golden
LayerNorm of rows (:func:`cimforge.golden.nonlinear.layer_norm`) and its cycle model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cimforge.config import MAX_SHIFT, SHIFT_BITS, WIDE_BITS, Config
from cimforge.golden.nonlinear import LayerNormParams, NonlinearSpec, layer_norm
from cimforge.golden.numerics import as_dict, positive_int
from cimforge.golden.stream_timing import OutputPipeline, RowRing, Schedule, Source

__all__ = ["LayerNormSpec", "LayerNormTiming", "layer_norm_rows"]




@dataclass(frozen=True)
class LayerNormSpec:
    """The LayerNorm unit: rows of ``d`` signed ``in_bits`` values (the residual stream), one
    per beat; signed ``out_bits`` out (:func:`cimforge.golden.nonlinear.layer_norm`), gamma/beta
    programmed per element."""

    d: int
    in_bits: int
    out_bits: int
    mult_bits: int
    ln_frac_bits: int
    recip_bits: int
    recip_seed_bits: int
    recip_steps: int
    rounding: str
    slots: int = 3  # row buffers: filling, statistics, output

    def __post_init__(self):
        positive_int("slots", self.slots)
        if self.v_bits > WIDE_BITS:
            raise ValueError(f"a row of {self.d} {self.in_bits}-bit values needs a "
                             f"{self.v_bits}-bit variance sum: must be <= {WIDE_BITS} (fewer "
                             "residual_bits)")
        # the normalising shift: the root's exponent (below its width) + recip - frac bits
        root_exp_max = (self.v_bits + 1) // 2
        if root_exp_max + self.recip_bits - self.ln_frac_bits > MAX_SHIFT:
            raise ValueError(
                f"LayerNorm's normalising shift ({root_exp_max} + recip_bits "
                f"{self.recip_bits} - ln_frac_bits {self.ln_frac_bits}) would exceed the "
                f"{SHIFT_BITS}-bit shift ({MAX_SHIFT})")

    @classmethod
    def from_config(cls, cfg: Config) -> LayerNormSpec:
        nl = cfg.nonlinear
        per_token = cfg.numerics.act_scale == "per_token"
        return cls(d=cfg.model.d_model, in_bits=nl.residual_bits,
                   out_bits=nl.residual_bits if per_token else cfg.numerics.act_bits,
                   mult_bits=nl.mult_bits, ln_frac_bits=nl.ln_frac_bits,
                   recip_bits=nl.recip_bits, recip_seed_bits=nl.recip_seed_bits,
                   recip_steps=nl.recip_steps, rounding=cfg.numerics.rounding)

    def as_dict(self) -> dict:
        return as_dict(self)

    @property
    def nonlinear(self) -> NonlinearSpec:
        keep = ("mult_bits", "ln_frac_bits", "recip_bits", "recip_seed_bits", "recip_steps",
                "rounding")
        return NonlinearSpec(**{k: getattr(self, k) for k in keep})

    @property
    def d_bits(self) -> int:
        return self.d.bit_length()

    @property
    def s1_bits(self) -> int:
        """Signed width of a row's sum."""
        return self.in_bits + self.d_bits

    @property
    def s2_bits(self) -> int:
        """Unsigned width of a row's sum of squares."""
        return 2 * self.in_bits + self.d_bits

    @property
    def v_bits(self) -> int:
        """Unsigned width of ``V = d S2 - S1^2``."""
        return 2 * self.in_bits + 2 * self.d_bits

    @property
    def norm_bits(self) -> int:
        """Signed width of the normalised value ``n``: ``|c_i| / isqrt(V)`` is at most
        ``sqrt(3 d)`` (``|c_i| <= sqrt(d V)``, and the floor of the root loses at most a factor
        ``sqrt 3``, at ``V = 3``), with ``ln_frac_bits`` fraction bits, a sign and a bit for
        the reciprocal's and the rounding's excess."""
        return self.ln_frac_bits + (3 * self.d).bit_length() // 2 + 1 + 2

    @property
    def v_max(self) -> int:
        """The largest ``V``: ``V = d^2`` times the row's variance, at most a quarter of the
        square of the values' range (Popoviciu; half the row at each end of signed
        ``in_bits`` reaches it for an even ``d``)."""
        return (self.d * ((1 << self.in_bits) - 1)) ** 2 // 4

    @property
    def sqrt_steps(self) -> int:
        """Cycles of the square root, one result bit each: the root of :attr:`v_max`'s
        bits (tiny: 20; ``v_bits`` would give 22)."""
        return (self.v_max.bit_length() + 1) // 2

    @property
    def g_bits(self) -> int:
        """Signed width of ``g = (d - 1) h - 2 S1`` (``S1`` of at most ``d - 1`` values), the
        factor of ``h`` in a value's increment of ``V``."""
        return self.in_bits + (3 * (self.d - 1)).bit_length()

    @property
    def timing(self) -> LayerNormTiming:
        return LayerNormTiming(self)


def layer_norm_rows(spec: LayerNormSpec, rows: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                    shift: int) -> np.ndarray:
    """Golden LayerNorm of ``rows`` (n, d) with programmed gamma/beta/shift."""
    params = LayerNormParams(np.asarray(gamma), np.asarray(beta), shift)
    return layer_norm(np.asarray(rows, dtype=np.int64), params, spec.nonlinear, spec.out_bits)


class LayerNormTiming:
    """Cycle model of :class:`cimforge.hw.layernorm.LayerNorm`.

    **Collect** takes a value per cycle into one of ``slots`` row buffers (default 3); the
    value's share of ``S1`` and ``V`` is summed :attr:`SUM_DEPTH` registers later (a row's
    ``V`` is in its slot ``SUM_DEPTH`` edges after its last value was taken);
    **statistics** takes summed rows in order: a cycle to load ``V``, the square root
    (:attr:`LayerNormSpec.sqrt_steps` cycles), a cycle to feed the reciprocal's
    :attr:`recip_regs` stages (overlapping the next row); **output** reads a row whose
    reciprocal is known -- from one cycle before it is written, as the first value takes it
    at its second stage -- a value per cycle, through an :attr:`OUT_DEPTH`-stage stall
    pipeline. A row's first result comes :meth:`first_result_latency` cycles after its
    first value; with the default slots, rows of at least :attr:`full_rate_length` values
    stream at one value per cycle."""

    SUM_DEPTH = 3  # S1 and g | h g as partial products | V + their sum
    OUT_DEPTH = 9  # read | c | c r partial products | their sum, shift (high bits) | shift
    # (low bits), n | n gamma | + beta, shift (high bits) | shift (low bits) | saturate

    def __init__(self, spec: LayerNormSpec):
        self.spec = spec

    @property
    def recip_regs(self) -> int:
        """Registered stages of the reciprocal after the square root: the seed, three a
        Newton step (the last step's result goes into the row's own register)."""
        return max(1, 3 * self.spec.recip_steps)

    def first_result_latency(self) -> int:
        """Cycles from a row's first value accepted to its first result offered, at full rate
        into an idle unit: the row, its sums, the square root, the reciprocal, the output
        stages."""
        return (self.spec.d + self.SUM_DEPTH + self.spec.sqrt_steps + self.recip_regs
                + self.OUT_DEPTH + 1)

    @property
    def full_rate_length(self) -> int:
        """Shortest row that streams at one value per cycle, back to back: the sums, the
        square root and the reciprocal must finish a row while the next is collected. For
        the default 3 slots (others raise ``ValueError``: ask :meth:`schedule`)."""
        if self.spec.slots != 3:
            raise ValueError(f"full_rate_length holds for 3 slots, not {self.spec.slots}: "
                             "use schedule()")
        return self.SUM_DEPTH + self.spec.sqrt_steps + self.recip_regs + 1

    def schedule(self, offered: Sequence[int | None],
                 sink_ready: Callable[[int], bool] | None = None) -> Schedule:
        """Predict a run of values (rows of ``d``), offered as for
        :meth:`~cimforge.golden.stream_timing.PipelineTiming.schedule`."""
        steps, slots = self.spec.sqrt_steps, self.spec.slots
        src, out = Source(offered), OutputPipeline(self.OUT_DEPTH, sink_ready, len(offered))
        rows = RowRing(self.spec.d, slots)
        summed = [False] * slots
        started = [False] * slots
        done = [False] * slots
        r_busy, r_slot, r_k = False, 0, 0
        # a row's end on its way to its V; the reciprocal's stages up to the one that sets
        # the row's done flag (the last but one)
        sum_pipe: list[int | None] = [None] * self.SUM_DEPTH
        recip_pipe: list[int | None] = [None] * (self.recip_regs - 1)
        cycle = 0
        while not out.done:
            advance = out.begin(cycle)
            rows.begin()
            take_in = rows.can_collect and src.offering(cycle)
            r_start = not r_busy and summed[r_slot] and not started[r_slot]
            feed = r_busy and r_k == steps
            c_issue = advance and (rows.c_busy or done[rows.c_slot])
            # -- edge ----------------------------------------------------------------------
            ended = None
            if take_in:
                if rows.a_count == self.spec.d - 1:
                    ended = rows.a_slot
                rows.collect()
                src.accepted.append(cycle)
            now_summed = sum_pipe[-1]
            sum_pipe = [ended, *sum_pipe[:-1]]
            fed = r_slot if feed else None
            if recip_pipe:
                finished = recip_pipe[-1]
                recip_pipe = [fed, *recip_pipe[:-1]]
            else:
                finished = fed
            if r_start:
                started[r_slot] = True
                r_busy, r_k = True, 0
            elif feed:
                r_busy = False
                r_slot = (r_slot + 1) % slots
            elif r_busy:
                r_k += 1
            if c_issue:
                freed = rows.issue()
                if freed is not None:
                    summed[freed] = started[freed] = done[freed] = False
            if now_summed is not None:
                summed[now_summed] = True
            if finished is not None:
                done[finished] = True
            out.end(cycle, c_issue)
            rows.end()
            cycle += 1
        return out.schedule(src)
