"""The streaming softmax unit (:class:`cimforge.hw.softmax.Softmax`): its parameters, the
golden probabilities of a row (:func:`cimforge.golden.nonlinear.softmax`) and its cycle
model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cimforge.config import MAX_SHIFT, SHIFT_BITS, WIDE_BITS, Config
from cimforge.golden.nonlinear import Multiplier, NonlinearSpec, softmax
from cimforge.golden.numerics import as_dict, positive_int
from cimforge.golden.stream_timing import OutputPipeline, Schedule, Source

__all__ = ["SoftmaxSpec", "SoftmaxTiming", "softmax_rows"]




@dataclass(frozen=True)
class SoftmaxSpec:
    """The streaming softmax unit: rows of up to ``max_len`` signed ``score_bits`` scores,
    ``lanes`` per beat with a keep bit each, the last beat of a row flagged; probabilities
    out (:func:`cimforge.golden.nonlinear.softmax` with the formats of ``[nonlinear]``)."""

    lanes: int
    max_len: int
    score_bits: int
    mult_bits: int
    exp_method: str
    exp_frac_bits: int
    exp_bits: int
    recip_bits: int
    recip_seed_bits: int
    recip_steps: int
    prob_bits: int
    rounding: str
    score_slots: int = 2  # score rows: one filling, one being read
    exp_slots: int = 3  # exp rows: one being written, one waiting for its reciprocal, one read

    def __post_init__(self):
        positive_int("score_slots", self.score_slots)
        positive_int("exp_slots", self.exp_slots)
        if self.sum_bits - 1 + self.recip_bits > MAX_SHIFT:
            raise ValueError(
                f"softmax's normalising shift (row-sum exponent up to {self.sum_bits - 1} + "
                f"recip_bits {self.recip_bits}) would exceed the {SHIFT_BITS}-bit shift "
                f"({MAX_SHIFT}): use a shorter model.seq_len or narrower exp_bits/recip_bits")
        if self.score_bits + 1 + self.mult_bits > WIDE_BITS:
            raise ValueError(
                f"softmax's score difference times its multiplier would be "
                f"{self.score_bits + 1 + self.mult_bits} bits wide (numerics.acc_bits "
                f"{self.score_bits} + 1 + nonlinear.mult_bits {self.mult_bits}): it must fit "
                f"{WIDE_BITS} bits; use a narrower acc_bits or mult_bits")

    @classmethod
    def from_config(cls, cfg: Config) -> SoftmaxSpec:
        nl = cfg.nonlinear
        return cls(lanes=nl.softmax_lanes, max_len=cfg.model.seq_len,
                   score_bits=cfg.numerics.acc_bits, mult_bits=nl.mult_bits,
                   exp_method=nl.exp_method, exp_frac_bits=nl.exp_frac_bits,
                   exp_bits=nl.exp_bits, recip_bits=nl.recip_bits,
                   recip_seed_bits=nl.recip_seed_bits, recip_steps=nl.recip_steps,
                   prob_bits=nl.prob_bits, rounding=cfg.numerics.rounding)

    def as_dict(self) -> dict:
        return as_dict(self)

    @property
    def nonlinear(self) -> NonlinearSpec:
        """The golden functions' formats."""
        keep = ("mult_bits", "exp_method", "exp_frac_bits", "exp_bits", "recip_bits",
                "recip_seed_bits", "recip_steps", "prob_bits", "rounding")
        # (ln_frac_bits is LayerNorm's and unused here, but must be legal for recip_bits)
        return NonlinearSpec(**{k: getattr(self, k) for k in keep},
                             ln_frac_bits=min(NonlinearSpec.ln_frac_bits, self.recip_bits))

    @property
    def beats_max(self) -> int:
        return -(-self.max_len // self.lanes)

    @property
    def sum_bits(self) -> int:
        """Unsigned width of a row's sum of exp values."""
        return self.exp_bits + (self.beats_max * self.lanes - 1).bit_length()

    @property
    def timing(self) -> SoftmaxTiming:
        return SoftmaxTiming(self)


def softmax_rows(spec: SoftmaxSpec, mult: int, shift: int, rows: Sequence[np.ndarray],
                 keeps: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Golden probabilities of each row (any length 1 .. ``max_len``)."""
    m = Multiplier(mult, shift)
    sp = spec.nonlinear
    return [softmax(np.asarray(r, dtype=np.int64)[None, :], m, sp, np.asarray(k)[None, :])[0]
            for r, k in zip(rows, keeps, strict=True)]


class SoftmaxTiming:
    """Cycle model of :class:`cimforge.hw.softmax.Softmax`.

    Three stages with row buffers between them. **Collect** takes a beat per cycle into one of
    ``score_slots`` score rows (default 2; a row longer than ``beats_max`` beats ends there)
    and tracks the maximum. **Exp** reads a finished row a beat per cycle -- rows back to
    back -- once one of ``exp_slots`` exp rows (default 3) is free: ``t`` (1 cycle),
    ``2^frac`` (1), shift, mask and sum (1); a row's sum then goes through the reciprocal
    pipeline (normalise, seed, one cycle per Newton-Raphson step, scale: ``3 +
    recip_steps`` cycles). **Normalise** reads a row whose reciprocal is known, a
    beat per cycle, through a two-stage stall pipeline to ``o_stream``.

    At full rate a row of ``n`` beats into an idle unit gives its first result
    ``2n + 7 + recip_steps`` cycles after its first beat was accepted
    (:meth:`first_result_latency`: the row is read twice before it is normalised). With the
    default slot counts, rows of at least ``5 + recip_steps`` beats (:attr:`full_rate_beats`)
    stream at one beat per cycle; shorter rows leave gaps (the three exp rows no longer cover
    the reciprocal). Other slot counts move that length: :meth:`schedule` models them all.
    """

    EXP_DEPTH = 3  # issue -> t -> 2^frac -> e and sum

    def __init__(self, spec: SoftmaxSpec):
        self.spec = spec

    @property
    def recip_depth(self) -> int:
        """Registered stages of the reciprocal pipeline: normalise, seed, the steps."""
        return 2 + self.spec.recip_steps

    def first_result_latency(self, beats: int) -> int:
        """Cycles from a row's first beat accepted to its first result offered, for a row of
        ``beats`` beats at full rate into an idle unit."""
        return 2 * beats + 7 + self.spec.recip_steps

    @property
    def full_rate_beats(self) -> int:
        """Shortest row (in beats) that streams at one beat per cycle, back to back, with the
        default slot counts (2 score rows, 3 exp rows; others raise ``ValueError``: ask
        :meth:`schedule`)."""
        s = self.spec
        if (s.score_slots, s.exp_slots) != (2, 3):
            raise ValueError(f"full_rate_beats holds for 2 score and 3 exp slots, not "
                             f"{s.score_slots} and {s.exp_slots}: use schedule()")
        return 5 + s.recip_steps

    def schedule(self, lasts: Sequence[bool], offered: Sequence[int | None],
                 sink_ready: Callable[[int], bool] | None = None) -> Schedule:
        """Predict a run of input beats (``lasts[i]``: beat ``i`` ends a row; ``offered[i]``
        as for :meth:`~cimforge.golden.stream_timing.PipelineTiming.schedule`); one result
        beat per input beat."""
        bmax = self.spec.beats_max
        sa_slots, se_slots = self.spec.score_slots, self.spec.exp_slots
        src, out = Source(offered), OutputPipeline(2, sink_ready, len(lasts))
        # collect
        a_slot, a_count = 0, 0
        sa_full = [False] * sa_slots
        sa_beats = [0] * sa_slots
        # exp
        b_busy, b_idx, b_beats, b_slot, b_eslot = False, 0, 0, 0, 0
        se_owned = [False] * se_slots
        exp_pipe: list[tuple | None] = [None] * self.EXP_DEPTH  # (last, eslot) per stage
        recip_pipe: list[tuple | None] = [None] * self.recip_depth  # (eslot, beats)
        # normalise
        se_ready = [False] * se_slots
        se_beats = [0] * se_slots
        c_busy, c_idx, c_beats, c_slot = False, 0, 0, 0
        cycle = 0
        while not out.done:
            # -- combinational decisions of this cycle, from the registered state ----------
            advance = out.begin(cycle)
            take_in = not sa_full[a_slot] and src.offering(cycle)
            b_start = not b_busy and sa_full[b_slot] and not se_owned[b_eslot]
            b_issue = b_busy or b_start
            c_start = not c_busy and se_ready[c_slot]
            c_issue = advance and (c_busy or c_start)
            # -- register updates at the edge ending this cycle -----------------------------
            nxt_sa_full = list(sa_full)
            if take_in:
                if lasts[len(src.accepted)] or a_count == bmax - 1:
                    nxt_sa_full[a_slot] = True
                    sa_beats[a_slot] = a_count + 1
                    a_slot, a_count = (a_slot + 1) % sa_slots, 0
                else:
                    a_count += 1
                src.accepted.append(cycle)
            new_exp = None
            if b_issue:
                beats = b_beats if b_busy else sa_beats[b_slot]
                idx = b_idx if b_busy else 0
                if b_start:
                    se_owned[b_eslot] = True
                last = idx == beats - 1
                new_exp = (last, b_eslot, beats)
                if last:
                    b_busy = False
                    nxt_sa_full[b_slot] = False
                    b_slot, b_eslot = (b_slot + 1) % sa_slots, (b_eslot + 1) % se_slots
                else:
                    b_busy, b_idx, b_beats = True, idx + 1, beats
            done = exp_pipe[-1]
            exp_pipe = [new_exp, *exp_pipe[:-1]]
            finished = recip_pipe[-1]
            recip_pipe = [(done[1], done[2]) if done and done[0] else None, *recip_pipe[:-1]]
            if c_issue:
                beats = c_beats if c_busy else se_beats[c_slot]
                idx = c_idx if c_busy else 0
                if idx == beats - 1:
                    c_busy = False
                    se_ready[c_slot] = False
                    se_owned[c_slot] = False
                    c_slot = (c_slot + 1) % se_slots
                else:
                    c_busy, c_idx, c_beats = True, idx + 1, beats
            if finished is not None:
                se_ready[finished[0]] = True
                se_beats[finished[0]] = finished[1]
            out.end(cycle, c_issue)
            sa_full = nxt_sa_full
            cycle += 1
        return out.schedule(src)
