"""The drainer of a matrix's tile units: each token's results, channel by channel, through the
requantiser -- with its per-channel multiplier and bias, the token's exponent and, for the
blocks that end in a residual sum, the block input requantised alongside
(docs/hw-accelerator.md, "Engines").

For token ``t = 0, 1, ...`` in order: once every unit has a result and the previous token's
row is done downstream (``row_done``: the consumer at the end of the chain finished it), the
drainer takes the results and issues one requantiser item per channel per cycle while the
requantiser takes them, reading each channel from its unit's result port as it issues it (the
units' used channels in order): the items go through a stall pipeline as deep as the units'
result pipelines (``AnalogTileTiming.RESULT_DEPTH``), which hold when it holds (their
``stall``), and one stage more that registers the channel chosen among the units' ports
(``DRAIN_ACC_STAGES``), so a channel reaches the requantiser with its item. When the row is done it
releases the units' results. With a
residual, it starts reading row ``t`` of the residual buffer at the take, requantises it by
the block's residual multiplier (a second requantiser) and joins the two streams.

Parameters live in the drainer: a memory of multipliers with their shifts (a matrix's
channels share a shift, but q, k and v, drained together, each have their own), one of biases
(``bias_bits`` wide, written as two 32-bit halves), and the residual multiplier and shift.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from cimforge.config import SHIFT_BITS
from cimforge.golden.accel_regmap import DRAINER_REGS, MULT_BASE, MULT_SHIFT_LSB, bias_base
from cimforge.golden.accel_timing import DRAIN_ACC_STAGES
from cimforge.golden.analog_tile import AnalogTileSpec, AnalogTileTiming
from cimforge.golden.requant import RequantSpec
from cimforge.hw.analog_tile import result_signature
from cimforge.hw.numerics import select
from cimforge.hw.requant import Requantizer
from cimforge.hw.scratchpad import row_read_signature

__all__ = ["TileDrainer", "param_signature"]

def param_signature(addr_bits: int) -> wiring.Signature:
    """A parameter write port, from the writer's side: 32-bit ``data`` to word ``addr`` of
    the block's region in a cycle with ``we`` high."""
    return wiring.Signature({"addr": Out(addr_bits), "data": Out(32), "we": Out(1)})


class TileDrainer(wiring.Component):
    """Drains the tile units of one matrix through a requantiser.

    Parameters
    ----------
    tokens : int
        The KV capacity.
    units : list of (AnalogTileSpec, int)
        Each unit and how many of its channels the matrix uses (the first ones).
    rq : RequantSpec
    narrow : bool
        Requantise to ``act_bits`` (else ``residual_bits``).
    residual : int or None
        The row width of the residual buffer (the block input), or None for no residual.
    addr_bits : int
        Width of the parameter port's word address.

    Members
    -------
    run : In(1)
        A sequence is in progress; low: back to token 0.
    u0, u1, ... : In(result_signature(unit))
        The units' result ports.
    token : Out(range(tokens)); exp : In(...)
        The token being drained and its exponent (from the feeder).
    res_src : Out(row_read_signature(...))
        The residual buffer's read port (with ``residual``).
    o_stream : Out(stream.Signature(signed(residual_bits)))
        The requantised channels, in order.
    row_done : In(1)
        The consumer finished the row being drained.
    drained : Out(range(tokens + 1))
        Rows finished.
    param : In(param_signature(addr_bits))
    """

    def __init__(self, tokens: int, units: list[tuple[AnalogTileSpec, int]], rq: RequantSpec,
                 narrow: bool, residual: int | None, addr_bits: int):
        self.tokens, self.units, self.rq = tokens, list(units), rq
        self.narrow, self.residual, self.addr_bits = narrow, residual, addr_bits
        self.channels = sum(n for _, n in self.units)
        members = {
            "run": In(1),
            "token": Out(range(max(tokens, 2))),
            "exp": In(unsigned(rq.exp_field_bits)),
            "o_stream": Out(stream.Signature(signed(rq.residual_bits))),
            "row_done": In(1),
            "drained": Out(range(tokens + 1)),
            "param": In(param_signature(addr_bits)),
        }
        if residual is not None:
            members["res_src"] = Out(row_read_signature(tokens, residual, rq.residual_bits))
        for i, (u, _) in enumerate(self.units):
            members[f"u{i}"] = In(result_signature(u))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        rq, n = self.rq, self.channels
        acc_bits = rq.acc_bits

        # -- parameters -------------------------------------------------------------------------
        p = self.param
        res_mult = Signal(rq.mult_bits)
        res_shift = Signal(SHIFT_BITS)
        for name, reg in (("res_mult", res_mult), ("res_shift", res_shift)):
            with m.If(p.we & (p.addr == DRAINER_REGS[name])):
                m.d.sync += reg.eq(p.data[: len(reg)])
        m.submodules.mults = mults = Memory(shape=unsigned(32), depth=n, init=[])
        m.submodules.biases = biases = Memory(shape=unsigned(64), depth=n, init=[])
        mw = mults.write_port()
        bw = biases.write_port(granularity=32)
        b0 = bias_base(n)
        m.d.comb += [mw.addr.eq(p.addr - MULT_BASE), mw.data.eq(p.data),
                     mw.en.eq(p.we & (p.addr >= MULT_BASE) & (p.addr < MULT_BASE + n)),
                     bw.addr.eq((p.addr - b0) >> 1), bw.data.eq(Cat(p.data, p.data))]
        with m.If(p.we & (p.addr >= b0) & (p.addr < b0 + 2 * n)):
            m.d.comb += bw.en.eq(Mux(p.addr[0], 0b10, 0b01))  # high or low half
        mr = mults.read_port()
        br = biases.read_port()

        # -- take a token's results -----------------------------------------------------------
        taken = Signal(range(self.tokens + 1))
        busy = Signal()  # a row is being drained (until row_done)
        ports = [getattr(self, f"u{i}") for i in range(len(self.units))]
        take = self.run & Cat(*(q.valid for q in ports)).all() & ~busy
        left = Signal(range(n + 1))
        index = Signal(range(max(n, 2)))
        m.d.comb += self.token.eq(taken - busy)  # the token in the drain
        with m.If(take):
            m.d.sync += [left.eq(n), index.eq(0), busy.eq(1), taken.eq(taken + 1)]
        release = self.row_done & busy
        with m.If(release):
            m.d.sync += [busy.eq(0), self.drained.eq(self.drained + 1)]

        # -- items: one channel per cycle -------------------------------------------------------
        # a stall pipeline of the units' result pipelines' depth and DRAIN_ACC_STAGES more: a
        # channel read as it issues is on its unit's data port once the pipeline has moved
        # `depth` times, and is registered as it moves once more (the choice among the units'
        # ports is not on the requantiser's first stage); every stage moves unless the last
        # holds an item the requantiser does not take
        depth = {AnalogTileTiming(u).RESULT_DEPTH for u, _ in self.units}
        assert len(depth) == 1, "the units' result pipelines must be alike"
        depth = depth.pop()
        assert DRAIN_ACC_STAGES == 1
        stages = depth + DRAIN_ACC_STAGES
        m.submodules.rq = main = Requantizer(rq)
        stage_valid = [Signal(name=f"valid{k + 1}") for k in range(stages)]
        valid = stage_valid[-1]
        acc = Signal(signed(acc_bits))
        res_ok = Const(1)
        residual = Const(0, rq.residual_bits)
        if self.residual is not None:
            m.submodules.res_rq = res_rq = Requantizer(rq)
            src = self.res_src
            m.d.comb += [src.start.eq(take), src.token.eq(taken), src.first.eq(0),
                         src.count.eq(self.residual)]
            ri = res_rq.i_stream
            x = Signal(signed(rq.acc_bits))  # the residual code, sign-extended
            m.d.comb += [x.eq(src.data.payload), ri.valid.eq(src.data.valid),
                         src.data.ready.eq(ri.ready),
                         ri.payload.eq(Cat(x, Const(0, rq.exp_field_bits),
                                           Const(0, rq.bias_bits), res_mult, res_shift,
                                           Const(0, rq.residual_bits), Const(0, 1)))]
            res_ok = res_rq.o_stream.valid
            residual = res_rq.o_stream.payload
            m.d.comb += res_rq.o_stream.ready.eq(valid & main.i_stream.ready)
        advance = ~valid | (main.i_stream.ready & res_ok)
        issue = advance & (left != 0) & ~take
        with m.If(advance):
            m.d.sync += [stage_valid[0].eq(issue),
                         *(stage_valid[k].eq(stage_valid[k - 1]) for k in range(1, stages))]
        with m.If(issue):
            m.d.sync += [left.eq(left - 1), index.eq(index + 1)]
        # the channel and its unit travel along (stage k + 1 holds them in units[k] and
        # indices[k]) up to the stage whose channel is on its unit's port; the parameters are
        # read as the item enters the last stage
        unit_bits = range(max(len(ports), 2))
        units = [Signal(unit_bits, name=f"unit{k + 1}") for k in range(depth)]
        indices = [Signal.like(index, name=f"index{k + 1}") for k in range(stages - 1)]
        with m.If(advance):
            m.d.sync += [units[k].eq(units[k - 1]) for k in range(1, depth)]
            m.d.sync += [indices[0].eq(index),
                         *(indices[k].eq(indices[k - 1]) for k in range(1, stages - 1))]
        param_index = indices[-1]
        m.d.comb += [mr.addr.eq(param_index), br.addr.eq(param_index), mr.en.eq(advance),
                     br.en.eq(advance)]
        # each channel read from its unit as it issues, that unit's result pipeline moving
        # with this one
        first = 0
        for i, (q, (_, k)) in enumerate(zip(ports, self.units, strict=True)):
            mine = Const(1)  # (comparisons that are constant would be lint warnings)
            if first:
                mine &= index >= first
            if first + k < n:
                mine &= index < first + k
            m.d.comb += [q.addr.eq(index - first), q.en.eq(issue & mine),
                         q.stall.eq(~advance), q.release.eq(release)]
            with m.If(issue & mine):
                m.d.sync += units[0].eq(i)
            first += k
        with m.If(advance):
            m.d.sync += acc.eq(select(units[-1], [q.data for q in ports]))
        # the token's exponent, registered (the feeder selects it among its tokens': a path
        # of its own): the token is set the cycle after a take, so the register has it the
        # cycle after that, while the row's first item is still in the stall pipeline
        exp = Signal.like(self.exp)
        m.d.sync += exp.eq(self.exp)
        mi = main.i_stream
        # one expression for a whole item (a field left at its default would be a constant
        # `always @*`, which Icarus never evaluates)
        m.d.comb += [mi.valid.eq(valid & res_ok),
                     mi.payload.eq(Cat(acc, exp, br.data[: rq.bias_bits],
                                       mr.data[: rq.mult_bits],
                                       mr.data[MULT_SHIFT_LSB: MULT_SHIFT_LSB + SHIFT_BITS],
                                       residual, Const(int(self.narrow), 1)))]
        wiring.connect(m, main.o_stream, wiring.flipped(self.o_stream))
        with m.If(~self.run):
            m.d.sync += [taken.eq(0), busy.eq(0), left.eq(0), self.drained.eq(0),
                         *(v.eq(0) for v in stage_valid)]
        return m
