"""SRAM digital-CIM macro: the bit-exact specification and cycle model of ``hw/dcim.py``.

The macro stores ``rows`` vectors (tokens) of ``cols`` signed ``bits``-bit elements and
computes, on the stored array ``M`` (rows x cols):

* ``SCORES``: ``M @ q`` for an input ``q`` of ``cols`` elements -- attention scores
  ``q . K^T`` with the keys stored, one result per row;
* ``WEIGHTED``: ``a @ M`` for an input ``a`` of ``rows`` *unsigned* ``bits``-bit elements --
  ``P . V`` with the values stored and the attention probabilities (never negative, and
  ``2^prob_bits - 1`` means 1) as input, one result per column.

Writes: ``WRITE`` puts a vector into row ``addr``; ``APPEND`` puts it into row ``tokens mod
rows`` and counts a token (``tokens`` stops at ``rows``: a full cache wraps and overwrites its
oldest row) -- the KV-cache case. Results carry ``tokens`` so the consumer can mask rows not
yet written.

Arithmetic, as the hardware does it: the input is applied bit-serially, most significant bit
first; in each bit cycle every stored element is ANDed with its input bit and an adder tree
sums them per output (the *partial*); the accumulator doubles and adds the partial, the
first bit's partial subtracted for a signed input (SCORES: ``acc = -p_(B-1)``) and added for
an unsigned one (WEIGHTED: ``acc = p_(B-1)``), then ``acc = 2 acc + p_d``. That is the product
exactly, so results are the exact integer products, sign-extended to ``acc_bits`` (the spec
refuses an ``acc_bits`` that could not hold them).

Timing (:class:`DcimTiming`): one command per cycle for writes, ``bits`` cycles per compute,
a result ``bits + tree_stages + 1`` cycles after its command was accepted (the adder trees are
pipelined, ``TREE_LEVELS_PER_STAGE`` levels a stage).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from cimforge.config import Config
from cimforge.golden.numerics import as_dict, positive_int

__all__ = ["WRITE", "APPEND", "SCORES", "WEIGHTED", "OPS", "TREE_LEVELS_PER_STAGE", "DcimSpec",
           "DcimCommand", "DcimModel", "DcimTiming", "DcimSchedule", "bit_serial"]

WRITE, APPEND, SCORES, WEIGHTED = 0, 1, 2, 3
TREE_LEVELS_PER_STAGE = 2  # adder-tree levels between two registers (the AND in the first)
OPS = {"write": WRITE, "append": APPEND, "scores": SCORES, "weighted": WEIGHTED}


@dataclass(frozen=True)
class DcimSpec:
    """Parameters of the macro: ``rows`` x ``cols`` signed ``bits``-bit elements, inputs of
    ``bits`` bits, results of ``acc_bits``."""

    rows: int
    cols: int
    bits: int
    acc_bits: int

    def __post_init__(self):
        for f in fields(self):
            positive_int(f.name, getattr(self, f.name))
        if self.bits < 2:
            raise ValueError(f"bits must be at least 2 (signed), not {self.bits}")
        if self.exact_bits > self.acc_bits:
            raise ValueError(
                f"acc_bits must be at least {self.exact_bits} to hold every exact result of "
                f"{self.width} products of two signed {self.bits}-bit values, not {self.acc_bits}")

    @classmethod
    def from_config(cls, cfg: Config) -> DcimSpec:
        return cls(rows=cfg.dcim.rows, cols=cfg.dcim.cols, bits=cfg.numerics.act_bits,
                   acc_bits=cfg.numerics.acc_bits)

    def as_dict(self) -> dict:
        return as_dict(self)

    @property
    def width(self) -> int:
        """Elements of an input or a result: the larger of rows and cols."""
        return max(self.rows, self.cols)

    @property
    def partial_bits(self) -> int:
        """Signed width of one bit cycle's sum of ``width`` signed ``bits``-bit elements."""
        return self.bits + (self.width - 1).bit_length()

    @property
    def exact_bits(self) -> int:
        """Signed width that holds every exact result: the largest magnitude is ``rows *
        (2^bits - 1) * 2^(bits-1)`` for WEIGHTED (unsigned inputs at their maximum, stored
        elements at their minimum), ``cols * 2^(bits-1) * 2^(bits-1)`` for SCORES."""
        weighted = self.rows * ((1 << self.bits) - 1) << (self.bits - 1)
        scores = self.cols << (2 * self.bits - 2)
        return max(weighted, scores).bit_length() + 1

    @property
    def addr_bits(self) -> int:
        return max(1, (self.rows - 1).bit_length())

    @property
    def tree_levels(self) -> int:
        """Levels of an output's adder tree (over ``width`` terms)."""
        return (self.width - 1).bit_length()

    @property
    def tree_stages(self) -> int:
        """Registered stages of the adder trees: ``TREE_LEVELS_PER_STAGE`` levels each (at
        least one stage; the choice of SCORES or WEIGHTED tree in the last)."""
        return max(1, -(-self.tree_levels // TREE_LEVELS_PER_STAGE))


@dataclass(frozen=True)
class DcimCommand:
    """One command: ``op`` (WRITE, APPEND, SCORES, WEIGHTED), ``addr`` (WRITE's row) and
    ``data`` (``width`` values; a row to store uses the first ``cols``, a SCORES input the
    first ``cols``, all signed ``bits``-bit; a WEIGHTED input the first ``rows``, unsigned
    ``bits``-bit; the rest must be 0)."""

    op: int
    data: tuple[int, ...]
    addr: int = 0

    @property
    def computes(self) -> bool:
        return self.op in (SCORES, WEIGHTED)

    def wire_data(self, bits: int) -> list[int]:
        """``data`` as the payload's signed ``bits``-bit elements carry it: a WEIGHTED input's
        unsigned values by their bit patterns."""
        if self.op != WEIGHTED:
            return list(self.data)
        top = 1 << (bits - 1)
        return [v - (top << 1) if v >= top else v for v in self.data]


def bit_serial(m: np.ndarray, x: np.ndarray, bits: int, axis: int, *,
               signed_input: bool = True) -> np.ndarray:
    """The macro's arithmetic: ``x`` applied bit-serially, MSB first, each bit ANDed with the
    stored elements and summed along ``axis`` of ``m`` (0: ``x @ m``; 1: ``m @ x``); the
    accumulator doubles and adds each partial, the first one subtracted for a signed input
    (two's complement) and added for an unsigned one."""
    m = np.asarray(m, dtype=np.int64)
    xu = np.asarray(x, dtype=np.int64) & ((1 << bits) - 1)
    acc = None
    for d in reversed(range(bits)):
        b = (xu >> d) & 1
        partial = (b @ m) if axis == 0 else (m @ b)
        if acc is None:
            acc = -partial if signed_input else partial
        else:
            acc = 2 * acc + partial
    return acc


class DcimModel:
    """The macro's state and results, command by command."""

    def __init__(self, spec: DcimSpec):
        self.spec = spec
        self.array = np.zeros((spec.rows, spec.cols), dtype=np.int64)
        self.tokens = 0
        self._next = 0  # row the next APPEND writes

    def check(self, cmd: DcimCommand) -> None:
        s = self.spec
        lo, hi = -(1 << (s.bits - 1)), (1 << (s.bits - 1)) - 1
        if cmd.op not in OPS.values():
            raise ValueError(f"op must be one of {sorted(OPS.values())}, not {cmd.op}")
        if len(cmd.data) != s.width:
            raise ValueError(f"data must have {s.width} elements, not {len(cmd.data)}")
        if cmd.op == WEIGHTED:
            if min(cmd.data) < 0 or max(cmd.data) > (1 << s.bits) - 1:
                raise ValueError(f"a WEIGHTED input must be unsigned {s.bits}-bit")
        elif min(cmd.data) < lo or max(cmd.data) > hi:
            raise ValueError(f"data must be signed {s.bits}-bit")
        used = s.rows if cmd.op == WEIGHTED else s.cols
        if any(cmd.data[used:]):
            raise ValueError(f"data beyond the first {used} elements must be 0")
        if not 0 <= cmd.addr < s.rows:
            raise ValueError(f"addr must lie in [0, {s.rows - 1}], not {cmd.addr}")

    def apply(self, cmd: DcimCommand) -> list[int] | None:
        """Carry out ``cmd``; the result of a compute (``width`` ints, zero beyond the used
        ones), None otherwise."""
        self.check(cmd)
        s = self.spec
        data = np.array(cmd.data, dtype=np.int64)
        if cmd.op == WRITE:
            self.array[cmd.addr] = data[: s.cols]
            return None
        if cmd.op == APPEND:
            self.array[self._next] = data[: s.cols]
            self._next = (self._next + 1) % s.rows
            self.tokens = min(self.tokens + 1, s.rows)
            return None
        out = np.zeros(s.width, dtype=np.int64)
        if cmd.op == SCORES:
            out[: s.rows] = self.array @ data[: s.cols]
        else:
            out[: s.cols] = data[: s.rows] @ self.array
        return out.tolist()


@dataclass(frozen=True)
class DcimSchedule:
    accepted: list[int]
    offered: list[int]  # per compute command, in order
    taken: list[int]


@dataclass(frozen=True)
class DcimTiming:
    """Cycle model of the macro (cycles as in :mod:`cimforge.verif.streams`).

    * ``i_stream.ready`` in a cycle when no compute is applying its bits, or the one that is
      applies its last bit; and fewer than two computes are in flight (accepted, result not
      yet taken).
    * A write takes effect at the end of its acceptance cycle. A compute accepted in cycle
      ``A`` applies its bits in cycles ``A + 1 .. A + bits`` and its result is offered in cycle
      ``A + bits + tree_stages + 2`` (the gated elements' register, the adder trees'
      stages, then the accumulator), or the
      cycle after the previous result was taken, whichever is later.
    """

    spec: DcimSpec

    @property
    def latency(self) -> int:
        """Cycles from a compute's acceptance to its result being offered (no back-pressure)."""
        return self.spec.bits + self.spec.tree_stages + 2

    def schedule(self, commands: Sequence[DcimCommand], offered: Sequence[int | None],
                 sink_ready: Callable[[int], bool] | None = None) -> DcimSchedule:
        """Predict a run: command ``i`` offered from cycle ``offered[i]`` (``None``: the cycle
        after command ``i - 1`` was accepted) and held until taken; the sink ready in cycle
        ``c`` when ``sink_ready(c)`` (always by default)."""
        ready_out = sink_ready or (lambda c: True)
        bits = self.spec.bits
        accepted: list[int] = []
        results: list[int] = []  # offered cycle of each compute's result
        taken: list[int] = []
        busy_until = -1  # last bit cycle of the compute being applied
        for i, (cmd, o) in enumerate(zip(commands, offered, strict=True)):
            if o is None:
                o = accepted[-1] + 1 if accepted else 0
            elif accepted and o <= accepted[-1]:
                raise ValueError(f"command {i} offered in cycle {o}, not after command {i - 1} "
                                 f"was accepted (cycle {accepted[-1]})")
            c = max(o, busy_until)  # free, or in the last bit cycle
            if len(results) >= 2:  # fewer than two computes in flight: the one two back taken
                c = max(c, self._taken(results, taken, len(results) - 2, ready_out) + 1)
            accepted.append(c)
            if cmd.computes:
                busy_until = c + bits
                f = c + self.latency
                if results:
                    f = max(f, self._taken(results, taken, len(results) - 1, ready_out) + 1)
                results.append(f)
        for j in range(len(taken), len(results)):
            self._taken(results, taken, j, ready_out)
        return DcimSchedule(accepted, results, taken)

    @staticmethod
    def _taken(results: list[int], taken: list[int], j: int, ready) -> int:
        """Cycle result ``j`` is taken (computed once, in order)."""
        while len(taken) <= j:
            k = len(taken)
            t = results[k]
            while not ready(t):
                t += 1
            taken.append(t)
        return taken[j]
