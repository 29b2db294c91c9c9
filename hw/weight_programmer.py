"""The weight programmer: takes the weight image off the input stream and writes it, crossbar
row by crossbar row, through every tile unit's programming port (the image's format and
order: :mod:`cimforge.golden.accel_program`; docs/hw-accelerator.md, "Programming the
weights").

One row buffer of ``beats_per_row`` beats: a beat is taken in any cycle the buffer is not
full; a full buffer is strobed into its crossbar as soon as that crossbar is not busy, and the
buffer takes the next row's beats from the next cycle. The image ends with its final row;
``last`` must be on its final beat: ``last`` earlier ends programming there (the rows not yet
written stay as they were), ``last`` missing is reported and the image ends all the same. Both
raise ``tlast_error`` for a cycle.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from cimforge.golden.accel_program import ProgramFormat
from cimforge.hw.accelerator import beat_layout
from cimforge.hw.crossbar_shell import prog_signature
from cimforge.hw.transformer_layer import unit_spec

__all__ = ["WeightProgrammer"]


class WeightProgrammer(wiring.Component):
    """Members
    -------
    i_stream : In(stream.Signature(beat_layout(cfg)))
        The image's beats (taken only while ``active``).
    start : In(1)
        Start a new image (ignored while ``active``).
    active : Out(1)
        An image is being taken.
    tlast_error : Out(1)
        The image's ``last`` is misplaced (see the module docstring).
    prog<u> : Out(prog_signature(...))
        Tile unit ``u``'s programming port.
    """

    def __init__(self, fmt: ProgramFormat):
        self.fmt = fmt
        cfg = fmt.cfg
        members = {
            "i_stream": In(stream.Signature(beat_layout(cfg))),
            "start": In(1),
            "active": Out(1),
            "tlast_error": Out(1),
        }
        for u in fmt.mapping.units:
            members[f"prog{u.index}"] = Out(prog_signature(unit_spec(cfg, u)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        fmt, cfg = self.fmt, self.fmt.cfg
        units = fmt.mapping.units
        sb, bpr = cfg.accelerator.stream_bits, fmt.beats_per_row
        rows = cfg.tile.rows

        buf = Signal(sb * bpr)
        count = Signal(range(bpr + 1))
        unit = Signal(range(max(2, len(units))))  # position in mapping.units
        xbar = Signal(range(max(2, max(u.crossbars for u in units))))
        row = Signal(range(max(2, rows)))
        full = count == bpr
        last_xbar = Signal()
        for i, u in enumerate(units):
            with m.If(unit == i):
                m.d.comb += last_xbar.eq(xbar == u.crossbars - 1)
        final_row = (row == rows - 1) & (unit == len(units) - 1) & last_xbar

        target_busy = Signal()
        for i, u in enumerate(units):
            p = getattr(self, f"prog{u.index}")
            m.d.comb += [p.xbar.eq(xbar), p.row.eq(row), p.levels.eq(buf[:fmt.row_bits])]
            with m.If(unit == i):
                m.d.comb += target_busy.eq(p.busy.bit_select(xbar, 1))
        fire = self.active & full & ~target_busy
        for i, u in enumerate(units):
            m.d.comb += getattr(self, f"prog{u.index}").strobe.eq(fire & (unit == i))

        ib = self.i_stream
        m.d.comb += ib.ready.eq(self.active & ~full)
        with m.If(ib.valid & ib.ready):
            # shift in from the top: after bpr beats the first is in the low bits
            m.d.sync += [buf.eq(Cat(buf[sb:], ib.payload.data) if bpr > 1 else ib.payload.data),
                         count.eq(count + 1)]
            final_beat = final_row & (count == bpr - 1)
            with m.If(ib.payload.last & ~final_beat):
                m.d.comb += self.tlast_error.eq(1)
                m.d.sync += [self.active.eq(0), count.eq(0)]
            with m.If(final_beat & ~ib.payload.last):
                m.d.comb += self.tlast_error.eq(1)
        with m.If(fire):
            m.d.sync += count.eq(0)
            with m.If(last_xbar):
                m.d.sync += xbar.eq(0)
                with m.If(unit == len(units) - 1):
                    m.d.sync += [unit.eq(0), row.eq(row + 1)]
                    with m.If(row == rows - 1):
                        m.d.sync += self.active.eq(0)
                with m.Else():
                    m.d.sync += unit.eq(unit + 1)
            with m.Else():
                m.d.sync += xbar.eq(xbar + 1)
        with m.If(self.start & ~self.active):
            m.d.sync += [self.active.eq(1), count.eq(0), unit.eq(0), xbar.eq(0), row.eq(0)]
        return m
