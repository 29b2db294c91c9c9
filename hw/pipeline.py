"""Pipeline and row-buffer machinery the streaming units share: a stall pipeline, registers,
per-slot flags, the modulo step of a slot pointer, and the two sides of a ring of row slots.

Each piece is the RTL of a stepper of :mod:`cimforge.golden.stream_timing`, so a unit's cycle
model and its RTL advance the same state the same way. Slot counts are the units' spec
parameters: nothing here assumes two slots.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, unsigned

__all__ = ["RowReader", "RowWriter", "SlotFlags", "StallPipeline", "next_slot", "registers",
           "skid_buffer"]


def _shape_of(value):
    return value.shape() if hasattr(value, "shape") else unsigned(1)


def registers(m: Module, values: dict, prefix: str) -> dict:
    """A register per value (same shape; one bit for plain ints), loaded every cycle."""
    out = {}
    for key, v in values.items():
        reg = Signal(_shape_of(v), name=f"{prefix}_{key}")
        m.d.sync += reg.eq(v)
        out[key] = reg
    return out


def next_slot(slot, slots: int):
    """``(slot + 1) % slots`` for a slot pointer (``slots`` need not be a power of two)."""
    if slots == 1:
        return 0
    return Mux(slot == slots - 1, 0, slot + 1)


class StallPipeline:
    """Registered stages that advance together unless the last holds a result the sink does
    not take: ``i_ready = ~o_valid | o_ready``
    (:class:`cimforge.golden.stream_timing.PipelineTiming`).

    ``stage(values)`` registers a dict of values into the next stage and returns the
    registered signals; ``finish(payload)`` drives the output stream."""

    def __init__(self, m: Module, i_stream, o_stream, name: str):
        self.m = m
        self.o_stream = o_stream
        self.advance = Signal(name=f"{name}_advance")
        self._valid = i_stream.valid
        self._name = name
        self._depth = 0
        m.d.comb += [self.advance.eq(~o_stream.valid | o_stream.ready),
                     i_stream.ready.eq(self.advance)]

    def stage(self, values: dict) -> dict:
        m, k = self.m, self._depth
        valid = Signal(name=f"{self._name}_v{k}")
        out = {}
        with m.If(self.advance):
            m.d.sync += valid.eq(self._valid)
            for key, value in values.items():
                reg = Signal(_shape_of(value), name=f"{self._name}_s{k}_{key}")
                m.d.sync += reg.eq(value)
                out[key] = reg
        self._valid = valid
        self._depth += 1
        return out

    @property
    def depth(self) -> int:
        return self._depth

    def finish(self, payload) -> None:
        self.m.d.comb += [self.o_stream.valid.eq(self._valid), self.o_stream.payload.eq(payload)]


def skid_buffer(m: Module, src, dst, name: str, clear=None) -> None:
    """Connects stream ``src`` (its producer's side) to ``dst`` (its consumer's side) through
    a skid buffer: ``src.ready`` is a register, so the consumer's ready reaches no further
    than here, and nothing is delayed. An item the consumer does not take is kept and offered
    instead of the producer's next, which waits meanwhile.

    When the consumer's ready does not depend on ``valid``, the consumer sees every item in
    the cycle it would have seen it without the buffer: an item held here is offered from the
    cycle after it arrived, as the stalled producer would have kept offering it; the producer
    moves one item further during a stall. So the units' cycle models hold through it.
    ``clear`` (a signal) drops a held item, with the units it sits between."""
    held = Signal(name=f"{name}_held")
    item = Signal.like(src.payload, name=f"{name}_item")
    m.d.comb += [src.ready.eq(~held), dst.valid.eq(held | src.valid),
                 dst.payload.eq(Mux(held, item, src.payload))]
    with m.If(held):
        with m.If(dst.ready):
            m.d.sync += held.eq(0)
    with m.Elif(src.valid & ~dst.ready):
        m.d.sync += [held.eq(1), item.eq(src.payload)]
    if clear is not None:
        with m.If(clear):
            m.d.sync += held.eq(0)


class SlotFlags:
    """A flag per row slot. :meth:`set` and :meth:`clear` (called inside the condition that
    does it) act at the next edge; a set and a clear of one slot in one cycle clear it:
    ``flags <= (flags | set) & ~clear``."""

    def __init__(self, m: Module, slots: int, name: str):
        self._m = m
        self.value = Signal(slots, name=name)
        self._set = Signal(slots, name=f"{name}_set")
        self._clear = Signal(slots, name=f"{name}_clear")
        m.d.sync += self.value.eq((self.value | self._set) & ~self._clear)

    def __getitem__(self, slot):
        return self.value.bit_select(slot, 1)

    def set(self, slot) -> None:
        self._m.d.comb += self._set.eq(1 << slot)

    def clear(self, slot) -> None:
        self._m.d.comb += self._clear.eq(1 << slot)


class RowWriter:
    """The collecting side of a ring of ``slots`` row slots of up to ``max_len`` entries in
    one memory: the slot being filled and the entry within it
    (:class:`cimforge.golden.stream_timing.RowRing`)."""

    def __init__(self, slots: int, max_len: int, name: str):
        self.slots, self.max_len = slots, max_len
        self.slot = Signal(range(slots), name=f"{name}_slot")
        self.count = Signal(range(max_len), name=f"{name}_count")

    @property
    def addr(self):
        """Memory address of the next entry: ``slot * max_len + count``."""
        return self.slot * self.max_len + self.count

    def step(self, m: Module, take, end) -> None:
        """On ``take``, count the entry; ``end`` (this entry ends the row) moves to the next
        slot."""
        with m.If(take):
            with m.If(end):
                m.d.sync += [self.count.eq(0), self.slot.eq(next_slot(self.slot, self.slots))]
            with m.Else():
                m.d.sync += self.count.eq(self.count + 1)


class RowReader:
    """The reading side of a ring of row slots: a row's entries issued one per cycle from
    :attr:`slot`, then on to the next slot. Not :attr:`busy` means the next issue starts a
    row; values the row needs throughout are latched at its start with :meth:`hold`."""

    def __init__(self, slots: int, max_len: int, name: str):
        self.slots = slots
        self._name = name
        self.busy = Signal(name=f"{name}_busy")
        self.idx = Signal(range(max_len), name=f"{name}_idx")
        self.slot = Signal(range(slots), name=f"{name}_slot")
        self._held: list[tuple[Signal, object]] = []

    @property
    def index(self):
        """This cycle's entry within the row (0 when a row starts)."""
        return Mux(self.busy, self.idx, 0)

    def hold(self, at_start, name: str):
        """``at_start`` in a row's first issue, the value latched then in the others."""
        reg = Signal(_shape_of(at_start), name=f"{self._name}_{name}")
        now = Mux(self.busy, reg, at_start)
        self._held.append((reg, now))
        return now

    def step(self, m: Module, issue, last) -> None:
        """On ``issue``, move to the next entry, or (``last``) to the next slot."""
        with m.If(issue):
            with m.If(last):
                m.d.sync += [self.busy.eq(0), self.slot.eq(next_slot(self.slot, self.slots))]
            with m.Else():
                m.d.sync += [self.busy.eq(1), self.idx.eq(self.index + 1),
                             *(reg.eq(now) for reg, now in self._held)]
