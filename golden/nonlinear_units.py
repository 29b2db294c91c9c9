"""The non-linear units as blocks: their parameters, the bit-exact function of one stream item
and the cycle model of ``hw/nonlinear.py``.

The arithmetic is :mod:`golden.nonlinear`'s; this module says how the RTL streams it (payload
fields, widths) and when each item is accepted and each result offered.

Element-wise units (requantiser, GELU) are stall pipelines: ``depth`` registered stages that
all advance together unless the last holds a result the sink does not take
(``i_ready = ~o_valid | o_ready``): one item per cycle, a result ``depth`` cycles after its
item was accepted (:class:`PipelineTiming`). Row units (softmax, LayerNorm, per-token
scaling) collect a row into a buffer and read it out again; their cycle models
(:class:`SoftmaxTiming`, :class:`LayerNormTiming`, :class:`TokenQuantTiming`) step the same
registers as the RTL, cycle by cycle, from the source's offers and the sink's ready trace.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cimforge.config import Config
from golden.nonlinear import (
    GeluPoly,
    LayerNormParams,
    Multiplier,
    NonlinearSpec,
    gelu_lut,
    gelu_poly,
    gelu_poly_const_bits,
    layer_norm,
    relu,
    softmax,
    token_quantize,
)
from golden.numerics import as_dict, round_shift_var, saturate

__all__ = ["Schedule", "PipelineTiming", "RequantSpec", "requant_item", "SoftmaxSpec",
           "SoftmaxTiming", "softmax_rows", "ActivationSpec", "activation_items", "LayerNormSpec",
           "LayerNormTiming", "layer_norm_rows", "TokenQuantSpec", "TokenQuantTiming",
           "token_quant_rows"]


@dataclass(frozen=True)
class Schedule:
    """Predicted cycles: each item's acceptance, each result's first offered cycle and the
    cycle it was taken."""

    accepted: list[int]
    offered: list[int]
    taken: list[int]


class _Source:
    """The input side of a cycle model: item ``k`` offered from cycle ``offered[k]``
    (``None``: the cycle after item ``k - 1`` was accepted) and held until accepted."""

    def __init__(self, offered: Sequence[int | None]):
        self.offered = offered
        self.accepted: list[int] = []

    def offering(self, cycle: int) -> bool:
        """Whether the next item is offered in ``cycle``."""
        k, acc = len(self.accepted), self.accepted
        if k >= len(self.offered):
            return False
        start = self.offered[k] if self.offered[k] is not None else (acc[-1] + 1 if acc else 0)
        if acc and start <= acc[-1]:
            raise ValueError(f"item {k} offered in cycle {start}, not after item {k - 1} was "
                             f"accepted (cycle {acc[-1]})")
        return start <= cycle


class _Output:
    """The output side of a cycle model: a ``depth``-stage stall pipeline whose last stage
    is ``o_stream`` (``advance = ~o_valid | o_ready``). Per cycle: :meth:`begin`, then the
    unit's decisions, then :meth:`end` with whether a new item entered the first stage."""

    def __init__(self, depth: int, sink_ready: Callable[[int], bool] | None, items: int):
        self.valid = [False] * depth
        self.ready = sink_ready or (lambda c: True)
        self.offered: list[int] = []
        self.taken: list[int] = []
        self.items = items
        self.limit = 2000 + 100 * items
        self.advance = True

    def begin(self, cycle: int) -> bool:
        if cycle > self.limit:
            raise RuntimeError("the cycle model did not drain (a sink that is never ready?)")
        ready = self.ready(cycle)
        if self.valid[-1] and ready:
            self.taken.append(cycle)
        self.advance = not self.valid[-1] or ready
        return self.advance

    def end(self, cycle: int, entered: bool) -> None:
        if self.advance:
            self.valid = [entered, *self.valid[:-1]]
            if self.valid[-1]:
                self.offered.append(cycle + 1)

    @property
    def done(self) -> bool:
        return len(self.taken) >= self.items

    def schedule(self, source: _Source) -> Schedule:
        return Schedule(source.accepted, self.offered, self.taken)


class _Rows:
    """Row buffers of ``d`` values between a collecting stage (a value per accepted item)
    and a reading stage (a value per issue), as LayerNorm and the per-token scaling have
    them. Per cycle: :meth:`begin`, the stages' decisions, :meth:`end` (flags change at the
    edge)."""

    def __init__(self, d: int, slots: int):
        self.d, self.slots = d, slots
        self.full = [False] * slots
        self.a_slot, self.a_count = 0, 0
        self.c_busy, self.c_idx, self.c_slot = False, 0, 0
        self._next = list(self.full)

    def begin(self) -> None:
        self._next = list(self.full)

    @property
    def can_collect(self) -> bool:
        return not self.full[self.a_slot]

    def collect(self) -> None:
        if self.a_count == self.d - 1:
            self._next[self.a_slot] = True
            self.a_slot, self.a_count = (self.a_slot + 1) % self.slots, 0
        else:
            self.a_count += 1

    def issue(self) -> int | None:
        """Read the next value out; returns the slot the row's last value frees."""
        idx = self.c_idx if self.c_busy else 0
        if idx == self.d - 1:
            freed = self.c_slot
            self.c_busy, self._next[freed] = False, False
            self.c_slot = (freed + 1) % self.slots
            return freed
        self.c_busy, self.c_idx = True, idx + 1
        return None

    def end(self) -> None:
        self.full = self._next


@dataclass(frozen=True)
class PipelineTiming:
    """Cycle model of a ``depth``-stage stall pipeline (one result per item)."""

    depth: int

    @property
    def latency(self) -> int:
        return self.depth

    def schedule(self, offered: Sequence[int | None],
                 sink_ready: Callable[[int], bool] | None = None) -> Schedule:
        """Item ``i`` offered from cycle ``offered[i]`` (``None``: the cycle after item
        ``i - 1`` was accepted) and held until taken; the sink ready in cycle ``c`` when
        ``sink_ready(c)`` (always by default)."""
        src, out = _Source(offered), _Output(self.depth, sink_ready, len(offered))
        cycle = 0
        while not out.done:
            entered = out.begin(cycle) and src.offering(cycle)
            if entered:
                src.accepted.append(cycle)
            out.end(cycle, entered)
            cycle += 1
        return out.schedule(src)


# --------------------------------------------------------------------------------------------
# requantiser


@dataclass(frozen=True)
class RequantSpec:
    """The requantiser: ``y = sat(sat(round(((acc << exp) + bias) * mult / 2^shift)) +
    residual)``, saturated to ``act_bits`` when ``narrow`` else ``residual_bits``.

    ``acc`` is a signed ``acc_bits`` accumulator, ``exp`` the token's exponent (0 ..
    ``max_exp``, see :func:`golden.nonlinear.token_quantize`), ``bias`` signed ``acc_bits +
    max_exp``, ``mult`` unsigned ``mult_bits``, ``shift`` 0 .. 63, ``residual`` signed
    ``residual_bits`` (0 for a plain requantisation)."""

    acc_bits: int
    act_bits: int
    residual_bits: int
    mult_bits: int
    rounding: str

    DEPTH = 3  # (acc << exp) + bias | * mult | round, saturate, + residual, saturate

    def __post_init__(self):
        if self.product_bits > 63:
            raise ValueError(
                f"the requantiser's product would be {self.product_bits} bits wide "
                f"(numerics.acc_bits {self.acc_bits} + token exponent "
                f"{self.max_exp} + 1 + nonlinear.mult_bits {self.mult_bits}): it must fit "
                "63 bits; use a narrower acc_bits or mult_bits")

    @classmethod
    def from_config(cls, cfg: Config) -> RequantSpec:
        nl = cfg.nonlinear
        return cls(acc_bits=cfg.numerics.acc_bits, act_bits=cfg.numerics.act_bits,
                   residual_bits=nl.residual_bits, mult_bits=nl.mult_bits,
                   rounding=cfg.numerics.rounding)

    def as_dict(self) -> dict:
        return as_dict(self)

    @property
    def max_exp(self) -> int:
        """Largest token exponent: a ``residual_bits`` row scaled to ``act_bits``."""
        return self.residual_bits - self.act_bits + 1

    @property
    def bias_bits(self) -> int:
        return self.acc_bits + self.max_exp

    @property
    def full_bits(self) -> int:
        """Signed width of ``(acc << exp) + bias``."""
        return self.bias_bits + 1

    @property
    def product_bits(self) -> int:
        return self.full_bits + self.mult_bits

    @property
    def timing(self) -> PipelineTiming:
        return PipelineTiming(self.DEPTH)


def requant_item(spec: RequantSpec, acc, exp, bias, mult, shift, residual, narrow):
    """The requantiser's result for one item (or arrays of items)."""
    full = (np.asarray(acc, dtype=np.int64) << np.asarray(exp, dtype=np.int64)) + bias
    y = round_shift_var(full * np.asarray(mult, dtype=np.int64), shift, spec.rounding)
    narrow = np.asarray(narrow, dtype=bool)
    y = np.where(narrow, saturate(y, spec.act_bits), saturate(y, spec.residual_bits))
    y = y + np.asarray(residual, dtype=np.int64)
    return np.where(narrow, saturate(y, spec.act_bits), saturate(y, spec.residual_bits))


# --------------------------------------------------------------------------------------------
# softmax


SA_SLOTS = 2  # score buffer rows: one filling, one being read
SE_SLOTS = 3  # exp buffer rows: one being written, one waiting for its reciprocal, one read


@dataclass(frozen=True)
class SoftmaxSpec:
    """The streaming softmax unit: rows of up to ``max_len`` signed ``score_bits`` scores,
    ``lanes`` per beat with a keep bit each, the last beat of a row flagged; probabilities
    out (:func:`golden.nonlinear.softmax` with the formats of ``[nonlinear]``)."""

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

    def __post_init__(self):
        if self.score_bits + 1 + self.mult_bits > 62:
            raise ValueError(
                f"softmax's score difference times its multiplier would be "
                f"{self.score_bits + 1 + self.mult_bits} bits wide (numerics.acc_bits "
                f"{self.score_bits} + 1 + nonlinear.mult_bits {self.mult_bits}): it must fit "
                "62 bits; use a narrower acc_bits or mult_bits")

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
    """Cycle model of :class:`hw.nonlinear.Softmax`.

    Three stages with row buffers between them. **Collect** takes a beat per cycle into one of
    two score rows (a row longer than ``beats_max`` beats ends there) and tracks the maximum.
    **Exp** reads a finished row a beat per cycle -- rows back to back -- once one of three exp
    rows is free: ``t`` (1 cycle), ``2^frac`` (1), shift, mask and sum (1); a row's sum then
    goes through the reciprocal pipeline (normalise, seed, one cycle per Newton-Raphson step,
    scale: ``3 + recip_steps`` cycles). **Normalise** reads a row whose reciprocal is known, a
    beat per cycle, through a two-stage stall pipeline to ``o_stream``.

    At full rate a row of ``n`` beats into an idle unit gives its first result
    ``2n + 7 + recip_steps`` cycles after its first beat was accepted
    (:meth:`first_result_latency`: the row is read twice before it is normalised). Rows of
    at least ``5 + recip_steps`` beats (:attr:`full_rate_beats`) stream at one beat per
    cycle; shorter rows leave gaps (the three exp rows no longer cover the reciprocal).
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
        """Shortest row (in beats) that streams at one beat per cycle, back to back."""
        return 5 + self.spec.recip_steps

    def schedule(self, lasts: Sequence[bool], offered: Sequence[int | None],
                 sink_ready: Callable[[int], bool] | None = None) -> Schedule:
        """Predict a run of input beats (``lasts[i]``: beat ``i`` ends a row; ``offered[i]``
        as for :meth:`PipelineTiming.schedule`); one result beat per input beat."""
        bmax = self.spec.beats_max
        src, out = _Source(offered), _Output(2, sink_ready, len(lasts))
        # collect
        a_slot, a_count = 0, 0
        sa_full = [False] * SA_SLOTS
        sa_beats = [0] * SA_SLOTS
        # exp
        b_busy, b_idx, b_beats, b_slot, b_eslot = False, 0, 0, 0, 0
        se_owned = [False] * SE_SLOTS
        exp_pipe: list[tuple | None] = [None] * self.EXP_DEPTH  # (last, eslot) per stage
        recip_pipe: list[tuple | None] = [None] * self.recip_depth  # (eslot, beats)
        # normalise
        se_ready = [False] * SE_SLOTS
        se_beats = [0] * SE_SLOTS
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
                    a_slot, a_count = a_slot ^ 1, 0
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
                    b_slot, b_eslot = b_slot ^ 1, (b_eslot + 1) % SE_SLOTS
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
                    c_slot = (c_slot + 1) % SE_SLOTS
                else:
                    c_busy, c_idx, c_beats = True, idx + 1, beats
            if finished is not None:
                se_ready[finished[0]] = True
                se_beats[finished[0]] = finished[1]
            out.end(cycle, c_issue)
            sa_full = nxt_sa_full
            cycle += 1
        return out.schedule(src)


# --------------------------------------------------------------------------------------------
# GELU / ReLU


ACT_FUNCTIONS = ("lut", "poly", "relu")


@dataclass(frozen=True)
class ActivationSpec:
    """The activation unit: signed ``in_bits`` codes in, signed ``out_bits`` out, by
    ``function``: ``lut`` (a programmable ``2^in_bits``-entry table,
    :func:`golden.nonlinear.gelu_lut`), ``poly`` (I-BERT's integer GELU with programmable
    constants, :func:`golden.nonlinear.gelu_poly`) or ``relu``."""

    function: str
    in_bits: int
    out_bits: int
    mult_bits: int
    rounding: str

    def __post_init__(self):
        if self.function not in ACT_FUNCTIONS:
            raise ValueError(f"function must be one of {', '.join(ACT_FUNCTIONS)}, "
                             f"not {self.function!r}")
        if self.function == "relu" and self.out_bits < self.in_bits:
            raise ValueError("relu needs out_bits >= in_bits")

    @classmethod
    def from_config(cls, cfg: Config) -> ActivationSpec:
        nl = cfg.nonlinear
        relu = nl.activation == "relu"
        per_token = cfg.numerics.act_scale == "per_token"
        out_bits = nl.residual_bits if per_token else cfg.numerics.act_bits
        # ReLU takes the FFN's output requantised straight to the activation format
        return cls(function="relu" if relu else nl.gelu_method,
                   in_bits=out_bits if relu else nl.gelu_in_bits, out_bits=out_bits,
                   mult_bits=nl.mult_bits, rounding=cfg.numerics.rounding)

    def as_dict(self) -> dict:
        return as_dict(self)

    @property
    def const_bits(self) -> int:
        """Signed width of the polynomial constants (``gelu_poly_const_bits``)."""
        return gelu_poly_const_bits(self.nonlinear())

    @property
    def product_bits(self) -> int:
        """Signed width of ``q (one - L) * mult``."""
        return self.in_bits + self.const_bits + self.mult_bits

    @property
    def depth(self) -> int:
        return {"lut": 2, "poly": 5, "relu": 1}[self.function]

    @property
    def timing(self) -> PipelineTiming:
        return PipelineTiming(self.depth)

    def nonlinear(self) -> NonlinearSpec:
        # (ReLU uses no GELU method; "poly" has no limit on the input width)
        return NonlinearSpec(gelu_method="lut" if self.function == "lut" else "poly",
                             gelu_in_bits=self.in_bits, mult_bits=self.mult_bits,
                             rounding=self.rounding)


def activation_items(spec: ActivationSpec, q: np.ndarray, table: np.ndarray | None = None,
                     poly: GeluPoly | None = None) -> np.ndarray:
    """The activation unit's output for codes ``q``."""
    sp = spec.nonlinear()
    if spec.function == "lut":
        return gelu_lut(q, table, sp)
    if spec.function == "poly":
        return gelu_poly(q, poly, sp, spec.out_bits)
    return relu(q)


# --------------------------------------------------------------------------------------------
# LayerNorm


LN_SLOTS = 3  # row buffers: filling, statistics, output


@dataclass(frozen=True)
class LayerNormSpec:
    """The LayerNorm unit: rows of ``d`` signed ``in_bits`` values (the residual stream), one
    per beat; signed ``out_bits`` out (:func:`golden.nonlinear.layer_norm`), gamma/beta
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

    def __post_init__(self):
        if self.v_bits > 62:
            raise ValueError(f"a row of {self.d} {self.in_bits}-bit values needs a "
                             f"{self.v_bits}-bit variance sum: must be <= 62 (fewer "
                             "residual_bits)")

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
    """Cycle model of :class:`hw.nonlinear.LayerNorm`.

    **Collect** takes a value per cycle into one of three row buffers, summing values and
    squares; **statistics** takes finished rows in order: ``V = d S2 - S1^2`` (1 cycle), the
    square root (:attr:`LayerNormSpec.sqrt_steps` cycles), then the reciprocal pipeline
    (``2 + recip_steps`` stages, overlapping the next row); **output** reads a row whose
    reciprocal is known, a value per cycle, through a three-stage stall pipeline
    (normalise; gamma and beta; output register). A row's first result comes
    :meth:`first_result_latency` cycles after its first value; rows of at least
    :attr:`full_rate_length` values stream at one value per cycle."""

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
        stage and the reciprocal must finish a row while the next is collected."""
        return self.spec.sqrt_steps + self.spec.recip_steps + 4

    @property
    def recip_depth(self) -> int:
        return 2 + self.spec.recip_steps

    def schedule(self, offered: Sequence[int | None],
                 sink_ready: Callable[[int], bool] | None = None) -> Schedule:
        """Predict a run of values (rows of ``d``), offered as for
        :meth:`PipelineTiming.schedule`."""
        steps = self.spec.sqrt_steps
        src, out = _Source(offered), _Output(self.OUT_DEPTH, sink_ready, len(offered))
        rows = _Rows(self.spec.d, LN_SLOTS)
        started = [False] * LN_SLOTS
        done = [False] * LN_SLOTS
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
                r_slot = (r_slot + 1) % LN_SLOTS
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


# --------------------------------------------------------------------------------------------
# per-token scaling


TQ_SLOTS = 2  # row buffers: one filling, one being read


@dataclass(frozen=True)
class TokenQuantSpec:
    """The per-token scaling unit: rows of ``d`` signed ``in_bits`` values in, each row
    scaled to signed ``out_bits`` by a power of two (:func:`golden.nonlinear.token_quantize`);
    every output carries the row's exponent."""

    d: int
    in_bits: int
    out_bits: int
    rounding: str

    @classmethod
    def from_config(cls, cfg: Config) -> TokenQuantSpec:
        return cls(d=cfg.model.d_model, in_bits=cfg.nonlinear.residual_bits,
                   out_bits=cfg.numerics.act_bits, rounding=cfg.numerics.rounding)

    def as_dict(self) -> dict:
        return as_dict(self)

    @property
    def max_exp(self) -> int:
        return self.in_bits - self.out_bits + 1

    @property
    def timing(self) -> TokenQuantTiming:
        return TokenQuantTiming(self)


def token_quant_rows(spec: TokenQuantSpec, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Golden codes and exponents of ``rows`` (n, d)."""
    return token_quantize(np.asarray(rows, dtype=np.int64), spec.out_bits, spec.rounding)


class TokenQuantTiming:
    """Cycle model of :class:`hw.nonlinear.TokenQuantizer`: **collect** takes a value per
    cycle into one of two row buffers, tracking the largest magnitude (the exponent is known
    with the row's last value); **output** reads a finished row, a value per cycle, through a
    two-stage stall pipeline (read; shift, round and saturate). A row's first result comes
    ``d + 2`` cycles after its first value; rows stream at one value per cycle."""

    OUT_DEPTH = 2

    def __init__(self, spec: TokenQuantSpec):
        self.spec = spec

    def first_result_latency(self) -> int:
        return self.spec.d + 2

    def schedule(self, offered: Sequence[int | None],
                 sink_ready: Callable[[int], bool] | None = None) -> Schedule:
        """Predict a run of values (rows of ``d``), offered as for
        :meth:`PipelineTiming.schedule`."""
        src, out = _Source(offered), _Output(self.OUT_DEPTH, sink_ready, len(offered))
        rows = _Rows(self.spec.d, TQ_SLOTS)
        cycle = 0
        while not out.done:
            advance = out.begin(cycle)
            rows.begin()
            take_in = rows.can_collect and src.offering(cycle)
            c_issue = advance and (rows.c_busy or rows.full[rows.c_slot])
            if take_in:
                rows.collect()
                src.accepted.append(cycle)
            if c_issue:
                rows.issue()
            out.end(cycle, c_issue)
            rows.end()
            cycle += 1
        return out.schedule(src)
