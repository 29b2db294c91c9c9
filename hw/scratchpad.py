"""The activation scratchpad: one buffer of token rows between two stages of the accelerator.

A :class:`TokenBuffer` holds up to ``tokens`` rows of ``width`` signed ``bits``-bit elements
in one memory (``amaranth.lib.memory``), written as a stream in token order (row 0's elements
0 .. width-1, then row 1, ...) and read back by row through any number of read ports. It
counts the rows written completely (``done``): a consumer of row ``t`` waits for
``done > t``. ``clear`` starts a new sequence (the count and the write pointer to 0).

Every buffer holds a whole sequence (``tokens`` is the KV capacity), so a writer never waits:
that is what keeps the accelerator's internal timing free of back-pressure
(docs/hw-accelerator.md).
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["TokenBuffer", "row_read_signature"]


def row_read_signature(tokens: int, width: int, bits: int) -> wiring.Signature:
    """A read port, from the reader's side: a pulse on ``start`` streams elements ``first ..
    first + count - 1`` of row ``token`` on ``data`` (``busy`` until the last is taken), the
    first three cycles after ``start`` (:data:`cimforge.golden.accel_timing.READ_LATENCY`)."""
    return wiring.Signature({
        "start": Out(1),
        "token": Out(range(max(tokens, 2))),
        "first": Out(range(max(width, 2))),
        "count": Out(range(width + 1)),
        "busy": In(1),
        "data": In(stream.Signature(signed(bits))),
    })


class TokenBuffer(wiring.Component):
    """Rows of ``width`` signed ``bits``-bit elements for ``tokens`` tokens.

    Members
    -------
    clear : In(1)
        Start a new sequence: ``done`` and the write pointer to 0 at the next edge.
    w_stream : In(stream.Signature(signed(bits)))
        Elements in token order; always ready (a write beyond ``tokens`` rows is dropped).
    done : Out(range(tokens + 1))
        Rows written completely.
    r0, r1, ... : In(row_read_signature(...))
        ``readers`` read ports; each streams at one element per cycle while its sink is ready,
        the first element three cycles after ``start``.
    """

    def __init__(self, tokens: int, width: int, bits: int, readers: int = 1):
        self.tokens, self.width, self.bits, self.readers = tokens, width, bits, readers
        members = {
            "clear": In(1),
            "w_stream": In(stream.Signature(signed(bits))),
            "done": Out(range(tokens + 1)),
        }
        for i in range(readers):
            members[f"r{i}"] = In(row_read_signature(tokens, width, bits))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        depth = self.tokens * self.width
        m.submodules.mem = mem = Memory(shape=signed(self.bits), depth=depth, init=[])

        # -- writer: elements in order ------------------------------------------------------
        wp = mem.write_port()
        ptr = Signal(range(depth + 1))
        col = Signal(range(self.width))
        m.d.comb += [self.w_stream.ready.eq(1), wp.addr.eq(ptr),
                     wp.data.eq(self.w_stream.payload),
                     wp.en.eq(self.w_stream.valid & (ptr < depth))]
        with m.If(self.clear):
            m.d.sync += [ptr.eq(0), col.eq(0), self.done.eq(0)]
        with m.Elif(self.w_stream.valid & (ptr < depth)):
            m.d.sync += ptr.eq(ptr + 1)
            with m.If(col == self.width - 1):
                m.d.sync += [col.eq(0), self.done.eq(self.done + 1)]
            with m.Else():
                m.d.sync += col.eq(col + 1)

        # -- readers: a row (or part of one) at one element per cycle -------------------------
        # two stages that move together while the sink takes: the memory's read (its address
        # register is the memory's own) and a register of its output, so that what reads the
        # element starts at a flip-flop, not at a block RAM's slow output
        for i in range(self.readers):
            port = getattr(self, f"r{i}")
            rp = mem.read_port()
            addr = Signal(range(depth + 1), name=f"r{i}_addr")
            left = Signal(range(self.width + 1), name=f"r{i}_left")
            read = Signal(name=f"r{i}_read")  # rp.data holds an element
            valid = Signal(name=f"r{i}_valid")
            data = Signal(signed(self.bits), name=f"r{i}_data")
            move = ~valid | port.data.ready
            issue = move & (left != 0)
            m.d.comb += [rp.addr.eq(addr),
                         rp.en.eq(issue), port.data.payload.eq(data),
                         port.data.valid.eq(valid),
                         port.busy.eq((left != 0) | read | valid)]
            with m.If(move):
                m.d.sync += [read.eq(issue), valid.eq(read), data.eq(rp.data)]
            with m.If(port.start):
                m.d.sync += [addr.eq(port.token * self.width + port.first),
                             left.eq(port.count)]
            with m.Elif(issue):
                m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
        return m
