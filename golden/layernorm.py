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
    def sqrt_steps(self) -> int:
        """Cycles of the square root: one result bit each."""
        return (self.v_bits + 1) // 2

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

    **Collect** takes a value per cycle into one of ``slots`` row buffers (default 3), summing
    values and squares; **statistics** takes finished rows in order: ``V = d S2 - S1^2``
    (1 cycle), the square root (:attr:`LayerNormSpec.sqrt_steps` cycles), then the
    reciprocal pipeline (``2 + recip_steps`` stages, overlapping the next row); **output**
    reads a row whose reciprocal is known, a value per cycle, through a three-stage stall pipeline
    (normalise; gamma and beta; output register). A row's first result comes
    :meth:`first_result_latency` cycles after its first value; with the default slots, rows
    of at least :attr:`full_rate_length` values stream at one value per cycle."""

    OUT_DEPTH = 3

    def __init__(self, spec: LayerNormSpec):
        self.spec = spec

    def first_result_latency(self) -> int:
        """Cycles from a row's first value accepted to its first result offered, at full rate
        into an idle unit: the row, the square root, the reciprocal, the output stages."""
        return self.spec.d + self.spec.sqrt_steps + self.spec.recip_steps + 7

    @property
    def full_rate_length(self) -> int:
        """Shortest row that streams at one value per cycle, back to back: the statistics
        stage and the reciprocal must finish a row while the next is collected. For the
        default 3 slots (others raise ``ValueError``: ask :meth:`schedule`)."""
        if self.spec.slots != 3:
            raise ValueError(f"full_rate_length holds for 3 slots, not {self.spec.slots}: "
                             "use schedule()")
        return self.spec.sqrt_steps + self.spec.recip_steps + 4

    @property
    def recip_depth(self) -> int:
        return 2 + self.spec.recip_steps

    def schedule(self, offered: Sequence[int | None],
                 sink_ready: Callable[[int], bool] | None = None) -> Schedule:
        """Predict a run of values (rows of ``d``), offered as for
        :meth:`~cimforge.golden.stream_timing.PipelineTiming.schedule`."""
        steps, slots = self.spec.sqrt_steps, self.spec.slots
        src, out = Source(offered), OutputPipeline(self.OUT_DEPTH, sink_ready, len(offered))
        rows = RowRing(self.spec.d, slots)
        started = [False] * slots
        done = [False] * slots
        r_busy, r_slot, r_k = False, 0, 0
        recip_pipe: list[int | None] = [None] * self.recip_depth
        cycle = 0
        while not out.done:
            advance = out.begin(cycle)
            rows.begin()
            take_in = rows.can_collect and src.offering(cycle)
            r_start = not r_busy and rows.full[r_slot] and not started[r_slot]
            feed = r_busy and r_k == steps
            c_issue = advance and (rows.c_busy or done[rows.c_slot])
            # -- edge ----------------------------------------------------------------------
            if take_in:
                rows.collect()
                src.accepted.append(cycle)
            finished = recip_pipe[-1]
            recip_pipe = [r_slot if feed else None, *recip_pipe[:-1]]
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
                    started[freed] = done[freed] = False
            if finished is not None:
                done[finished] = True
            out.end(cycle, c_issue)
            rows.end()
            cycle += 1
        return out.schedule(src)
