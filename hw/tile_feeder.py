"""The feeder of a matrix's tile units: token rows from a scratchpad buffer, scaled to int8 per
token, collected into the units' input vector (docs/hw-accelerator.md, "Engines").

For token ``t = 0, 1, ...`` in order: once the source buffer holds row ``t`` (``avail > t``)
and the collector is empty, the feeder reads the row (one element per cycle) through the
per-token scaling unit (:class:`cimforge.hw.token_quant.TokenQuantizer`) into the collector;
a full collector is offered to every unit at once (zero beyond the row) and empties when all
have taken it. The token's exponent is kept (``exps``) for the drainer's requantiser. One row
is in the scaling unit at a time, so its timing is that of a single row into an idle unit.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from cimforge.golden.analog_tile import AnalogTileSpec
from cimforge.golden.token_quant import TokenQuantSpec
from cimforge.hw.analog_tile import input_layout
from cimforge.hw.scratchpad import row_read_signature
from cimforge.hw.token_quant import TokenQuantizer

__all__ = ["TileFeeder"]


class TileFeeder(wiring.Component):
    """Feeds rows of ``tq.d`` values to the tile units of one matrix.

    Parameters
    ----------
    tokens : int
        The buffers' capacity (the KV capacity).
    tq : TokenQuantSpec
        The per-token scaling of a row (``d`` the row width).
    units : list of AnalogTileSpec
        The units fed (inputs beyond ``tq.d`` are driven 0).

    Members
    -------
    run : In(1)
        A sequence is in progress; low: back to token 0.
    avail : In(range(tokens + 1))
        Rows the source buffer holds.
    src : Out(row_read_signature(...))
        The source buffer's read port.
    u0, u1, ... : Out(stream.Signature(input_layout(unit)))
        The units' input streams.
    fed : Out(range(tokens + 1))
        Tokens every unit has taken.
    exp_token : In(range(tokens)); exp : Out(range(max_exp + 1))
        The exponent of token ``exp_token`` (read combinationally).
    """

    def __init__(self, tokens: int, tq: TokenQuantSpec, units: list[AnalogTileSpec]):
        self.tokens, self.tq, self.units = tokens, tq, list(units)
        members = {
            "run": In(1),
            "avail": In(range(tokens + 1)),
            "src": Out(row_read_signature(tokens, tq.d, tq.in_bits)),
            "fed": Out(range(tokens + 1)),
            "exp_token": In(range(max(tokens, 2))),
            "exp": Out(range(tq.max_exp + 1)),
        }
        for i, u in enumerate(self.units):
            members[f"u{i}"] = Out(stream.Signature(input_layout(u)))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        tq, d = self.tq, self.tq.d
        m.submodules.tq = quant = TokenQuantizer(tq)
        m.d.comb += [quant.i_stream.valid.eq(self.src.data.valid),
                     quant.i_stream.payload.eq(self.src.data.payload),
                     self.src.data.ready.eq(quant.i_stream.ready)]

        # -- start a row: the next token, once its row is there and the collector is empty ----
        started = Signal(range(self.tokens + 1))  # rows started
        full = Signal()
        collecting = Signal()  # a row is on its way into the collector
        start = (self.run & (self.avail > started) & ~full & ~collecting & ~self.src.busy)
        m.d.comb += [self.src.start.eq(start), self.src.token.eq(started),
                     self.src.first.eq(0), self.src.count.eq(d)]

        # -- collector: a shift register, element 0 ends at the bottom ------------------------
        bits = tq.out_bits
        vec = Signal(bits * d)
        exp = Signal(range(tq.max_exp + 1))
        o = quant.o_stream
        # always ready: a row starts only with the collector empty and no row on its way, and
        # the collector is full only after the row's last value, so the scaling unit never
        # offers a value to a full collector (a constant ready leaves its pipeline without
        # stall logic, and the collector's shift enable is the unit's output valid)
        m.d.comb += o.ready.eq(1)
        with m.If(o.valid):
            m.d.sync += [vec.eq(Cat(vec[bits:], o.payload.q)), exp.eq(o.payload.exp)]
            with m.If(o.payload.last):
                m.d.sync += [full.eq(1), collecting.eq(0)]

        # -- offer to every unit; empty when all have taken it --------------------------------
        taken = [Signal(name=f"taken{i}") for i in range(len(self.units))]
        took = []
        for i in range(len(self.units)):
            port = getattr(self, f"u{i}")
            m.d.comb += [port.valid.eq(full & ~taken[i]),
                         port.payload.as_value().eq(vec)]  # zero-extended beyond the row
            took.append(taken[i] | (port.valid & port.ready))
        all_taken = full & Cat(*took).all()
        exps = [Signal(range(tq.max_exp + 1), name=f"exp{t}") for t in range(self.tokens)]
        with m.If(all_taken):
            m.d.sync += [full.eq(0), self.fed.eq(self.fed + 1)]
            m.d.sync += [t.eq(0) for t in taken]
            for t, reg in enumerate(exps):
                with m.If(self.fed == t):
                    m.d.sync += reg.eq(exp)
        with m.Else():
            for i in range(len(self.units)):
                port = getattr(self, f"u{i}")
                with m.If(port.valid & port.ready):
                    m.d.sync += taken[i].eq(1)
        chosen = exps[0]
        for t, reg in enumerate(exps[1:], start=1):
            chosen = Mux(self.exp_token == t, reg, chosen)
        m.d.comb += self.exp.eq(chosen)
        with m.If(start):
            m.d.sync += [started.eq(started + 1), collecting.eq(1)]
        with m.If(~self.run):
            m.d.sync += [started.eq(0), self.fed.eq(0), full.eq(0), collecting.eq(0)]
            m.d.sync += [t.eq(0) for t in taken]
        return m
