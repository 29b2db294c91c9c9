"""The cycle-model steppers every streaming unit's model is made of.

Each stepper is the model of a piece of :mod:`cimforge.hw.pipeline`, advanced one clock cycle
at a time from the registered state, the source's offers and the sink's ready trace:
:class:`Source` (items offered and held until accepted), :class:`OutputPipeline` (the stall
pipeline in front of ``o_stream``), :class:`RowRing` (row buffers between a collecting and a
reading stage) and :class:`PipelineTiming`, the whole model of an element-wise unit.

Element-wise units (requantiser, GELU) are stall pipelines: ``depth`` registered stages that
all advance together unless the last holds a result the sink does not take
(``i_ready = ~o_valid | o_ready``): one item per cycle, a result ``depth`` cycles after its
item was accepted. Row units (softmax, LayerNorm, per-token scaling) collect a row into a
buffer and read it out again; their models step the same registers as the RTL.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["OutputPipeline", "PipelineTiming", "RowRing", "Schedule", "Source"]


@dataclass(frozen=True)
class Schedule:
    """Predicted cycles: each item's acceptance, each result's first offered cycle and the
    cycle it was taken."""

    accepted: list[int]
    offered: list[int]
    taken: list[int]


class Source:
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


class OutputPipeline:
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

    def schedule(self, source: Source) -> Schedule:
        return Schedule(source.accepted, self.offered, self.taken)


class RowRing:
    """Row buffers of ``d`` values in ``slots`` slots between a collecting stage (a value per
    accepted item) and a reading stage (a value per issue), as LayerNorm and the per-token
    scaling have them; both sides step through the slots modulo ``slots``
    (:class:`cimforge.hw.pipeline.RowWriter`, :class:`cimforge.hw.pipeline.RowReader`). Per
    cycle: :meth:`begin`, the stages' decisions, :meth:`end` (flags change at the edge)."""

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
        src, out = Source(offered), OutputPipeline(self.depth, sink_ready, len(offered))
        cycle = 0
        while not out.done:
            entered = out.begin(cycle) and src.offering(cycle)
            if entered:
                src.accepted.append(cycle)
            out.end(cycle, entered)
            cycle += 1
        return out.schedule(src)
