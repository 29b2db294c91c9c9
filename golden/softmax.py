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
    # exp rows: one being written, one read, and two for the time between a row's last exp
    # value and its reciprocal (SoftmaxTiming: 16 cycles with two Newton steps)
    exp_slots: int = 4

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
    back -- once one of ``exp_slots`` exp rows (default 4) is free, through
    :attr:`EXP_DEPTH` registered stages (the score read; ``d = s - max``; ``d * mult`` as
    partial products; their sum; the rounding shift by the shift's high bits; by its low
    bits, with the table's address; the table's data) to the cycle that shifts the beat's
    exp values, writes them and adds them to the row sum. A row's sum is registered, then
    goes through the reciprocal pipeline (leading zeros; normalise and seed; three stages per
    Newton-Raphson step): :attr:`recip_depth` cycles from the row's last exp values to its
    reciprocal.
    **Normalise** reads a row whose reciprocal is known, a beat per cycle, through an
    :attr:`OUT_DEPTH`-stage stall pipeline to ``o_stream``.

    At full rate a row of ``n`` beats into an idle unit gives its first result
    ``2n + 15 + 3 recip_steps`` cycles after its first beat was accepted
    (:meth:`first_result_latency`: the row is read twice before it is normalised). With the
    default slot counts, rows of at least ``ceil((10 + 3 recip_steps) / 2)`` beats
    (:attr:`full_rate_beats`; 8 with two Newton steps) stream at one beat per cycle; shorter
    rows leave gaps (the exp rows no longer cover the time to the reciprocal). Other slot
    counts move that length: :meth:`schedule` models them all.
    """

    EXP_DEPTH = 7  # read | d | partial products | x | shift (high) | shift (low) | 2^frac
    OUT_DEPTH = 5  # read | partial products | y | shift (high) | shift (low), round, cap

    def __init__(self, spec: SoftmaxSpec):
        self.spec = spec

    @property
    def recip_depth(self) -> int:
        """Registered stages from a row's last exp values to its reciprocal: the row sum,
        the leading zeros, normalise and seed, three per Newton-Raphson step."""
        return 3 + 3 * self.spec.recip_steps

    def first_result_latency(self, beats: int) -> int:
        """Cycles from a row's first beat accepted to its first result offered, for a row of
        ``beats`` beats at full rate into an idle unit."""
        return 2 * beats + self.EXP_DEPTH + self.recip_depth + self.OUT_DEPTH

    @property
    def full_rate_beats(self) -> int:
        """Shortest row (in beats) that streams at one beat per cycle, back to back, with the
        default slot counts (2 score rows, 4 exp rows; others raise ``ValueError``: ask
        :meth:`schedule`). An exp row is held from its exp stage's first read to the
        normalise stage's last, ``2n + EXP_DEPTH + recip_depth`` cycles, and must be free
        again after 4 rows' ``4n``."""
        s = self.spec
        if (s.score_slots, s.exp_slots) != (2, 4):
            raise ValueError(f"full_rate_beats holds for 2 score and 4 exp slots, not "
                             f"{s.score_slots} and {s.exp_slots}: use schedule()")
        return -(-(self.EXP_DEPTH + self.recip_depth) // 2)

    def schedule(self, lasts: Sequence[bool], offered: Sequence[int | None],
                 sink_ready: Callable[[int], bool] | None = None) -> Schedule:
        """Predict a run of input beats (``lasts[i]``: beat ``i`` ends a row; ``offered[i]``
        as for :meth:`~cimforge.golden.stream_timing.PipelineTiming.schedule`); one result
        beat per input beat."""
        bmax = self.spec.beats_max
        sa_slots, se_slots = self.spec.score_slots, self.spec.exp_slots
        src, out = Source(offered), OutputPipeline(self.OUT_DEPTH, sink_ready, len(lasts))
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
