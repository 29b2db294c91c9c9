"""The drainer of a matrix's tile units: each token's results, channel by channel, through the
requantiser -- with its per-channel multiplier and bias, the token's exponent and, for the
blocks that end in a residual sum, the block input requantised alongside
(docs/hw-accelerator.md, "Engines").

For token ``t = 0, 1, ...`` in order: once every unit has a result and the previous token's
row is done downstream (``row_done``: the consumer at the end of the chain finished it), the
drainer takes the results and issues one requantiser item per channel per cycle, reading each
channel from its unit's result port as it issues it (the units' used channels in order). A
channel is on its unit's data port ``AnalogTileTiming.RESULT_DEPTH`` cycles later (the units'
result pipelines never stall here); it goes into a queue and from there through two more
stages (``DRAIN_ACC_STAGES``), the second registering it with its parameters, the
requantiser's input. A
channel issues only while the queue has room for every channel on its way, and the queue
passes a channel straight on when it is empty: at full rate this is one pipeline, and when the
requantiser does not take an item its input holds as a stall pipeline's would, while no stall
reaches the units. The requantiser's output goes to the consumer through a skid buffer. When
the row is done it releases the units' results. With a residual, it starts reading row ``t``
of the residual buffer at the take, requantises it by the block's residual multiplier (a
second requantiser) and joins the two streams.

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
from cimforge.hw.pipeline import skid_buffer
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
        # the token in the drain: taken - busy, which is the rows released (a take needs
        # ~busy and sets it, a release clears it and counts the row), a register
        m.d.comb += self.token.eq(self.drained)
        with m.If(take):
            m.d.sync += [left.eq(n), index.eq(0), busy.eq(1), taken.eq(taken + 1)]
        release = self.row_done & busy
        with m.If(release):
            m.d.sync += [busy.eq(0), self.drained.eq(self.drained + 1)]

        # -- items: one channel per cycle -------------------------------------------------------
        # A channel read as it issues is on its unit's data port `depth` cycles later (the
        # units' result pipelines never stall here: their `stall` is 0, so no stall net
        # reaches them); it is taken off the port then into a queue, which holds it while the
        # requantiser does not take items, and from the queue into the stage that registers it
        # with its parameters (DRAIN_ACC_STAGES) before the requantiser. A channel issues only
        # while the queue has room for every channel on its way (`queued` < `queue_depth`),
        # so nothing is lost; the queue passes a channel straight through when it is empty, so
        # with the requantiser taking every cycle the timing is that of one pipeline of depth
        # + DRAIN_ACC_STAGES stages, and a stall holds the requantiser's input as a stall
        # pipeline would (the channels queued behind it follow at one a cycle).
        depth = {AnalogTileTiming(u).RESULT_DEPTH for u, _ in self.units}
        assert len(depth) == 1, "the units' result pipelines must be alike"
        depth = depth.pop()
        assert DRAIN_ACC_STAGES == 2
        queue_depth = depth + 1  # full rate: a channel is in flight for `depth` cycles
        m.submodules.rq = main = Requantizer(rq)
        read_valid = [Signal(name=f"read{k + 1}") for k in range(depth)]
        valid = Signal()  # the last stage holds an item
        acc = Signal(signed(acc_bits))
        res_ok = Const(1)
        residual = Const(0, rq.residual_bits)
        if self.residual is not None:
            m.submodules.res_rq = res_rq = Requantizer(rq)
            src = self.res_src
            m.d.comb += [src.start.eq(take), src.token.eq(taken), src.first.eq(0),
                         src.count.eq(self.residual)]
            ri = res_rq.i_stream
            # the buffer's codes reach the residual requantiser through a skid buffer: its
            # stall (which follows the join below, and so the main requantiser's) stops here
            # and does not reach the buffer's read port
            codes = stream.Signature(src.data.payload.shape()).create(path=("res_codes",))
            skid_buffer(m, src.data, codes, "res_skid", clear=~self.run)
            x = Signal(signed(rq.acc_bits))  # the residual code, sign-extended
            m.d.comb += [x.eq(codes.payload), ri.valid.eq(codes.valid),
                         codes.ready.eq(ri.ready),
                         ri.payload.eq(Cat(x, Const(0, rq.exp_field_bits),
                                           Const(0, rq.bias_bits), res_mult, res_shift,
                                           Const(0, rq.residual_bits), Const(0, 1)))]
            res_ok = res_rq.o_stream.valid
            residual = res_rq.o_stream.payload
            m.d.comb += res_rq.o_stream.ready.eq(valid & main.i_stream.ready)
        advance = ~valid | (main.i_stream.ready & res_ok)  # the last stage moves
        queued = Signal(range(queue_depth + 1))  # issued, not yet out of the queue
        # (no take while channels are left: they are left only while busy, and a take needs
        # ~busy -- so the take, and the units' valid flags it follows, are not in this path)
        issue = (left != 0) & (queued != queue_depth)
        m.d.sync += [read_valid[0].eq(issue),
                     *(read_valid[k].eq(read_valid[k - 1]) for k in range(1, depth))]
        with m.If(issue):
            m.d.sync += [left.eq(left - 1), index.eq(index + 1)]
        # the channel and its unit travel along the read stages
        unit_bits = range(max(len(ports), 2))
        units = [Signal(unit_bits, name=f"unit{k + 1}") for k in range(depth)]
        indices = [Signal.like(index, name=f"index{k + 1}") for k in range(depth)]
        m.d.sync += [*(units[k].eq(units[k - 1]) for k in range(1, depth)),
                     indices[0].eq(index),
                     *(indices[k].eq(indices[k - 1]) for k in range(1, depth))]
        first = 0
        for i, (q, (_, k)) in enumerate(zip(ports, self.units, strict=True)):
            mine = Const(1)  # (comparisons that are constant would be lint warnings)
            if first:
                mine &= index >= first
            if first + k < n:
                mine &= index < first + k
            m.d.comb += [q.addr.eq(index - first), q.en.eq(issue & mine), q.stall.eq(0),
                         q.release.eq(release)]
            with m.If(issue & mine):
                m.d.sync += units[0].eq(i)
            first += k
        # the queue: `queue_depth` entries of (channel value, channel), a ring
        arriving = read_valid[-1]
        arrived = Cat(select(units[-1], [q.data for q in ports]), indices[-1])
        slots = [Signal.like(arrived, name=f"queue{j}") for j in range(queue_depth)]
        head = Signal(range(queue_depth))
        count = Signal(range(queue_depth + 1))
        empty = count == 0
        q_valid = ~empty | arriving
        q_item = Signal.like(arrived)
        m.d.comb += q_item.eq(Mux(empty, arrived, select(head, slots)))
        pop = advance & q_valid
        push = arriving & ~(empty & pop)  # kept unless it goes straight on
        tail = head + count
        for j, slot in enumerate(slots):
            with m.If(push & ((tail == j) | (tail == j + queue_depth))):
                m.d.sync += slot.eq(arrived)
        popped = pop & ~empty
        with m.If(popped):
            m.d.sync += head.eq(Mux(head == queue_depth - 1, 0, head + 1))
        m.d.sync += [count.eq(count + push - popped), queued.eq(queued + issue - pop)]
        # two stages after the queue: the item registered (the channel index, the parameter
        # memories' read address, then starts at a flip-flop, not at the queue's head
        # multiplexer), then the channel's value with its parameters read as it enters
        pre_valid = Signal()
        pre = Signal.like(q_item)
        with m.If(advance):
            m.d.sync += [pre_valid.eq(q_valid), pre.eq(q_item)]
        param_index = pre[acc_bits:]
        m.d.comb += [mr.addr.eq(param_index), br.addr.eq(param_index), mr.en.eq(advance),
                     br.en.eq(advance)]
        with m.If(advance):
            m.d.sync += [valid.eq(pre_valid), acc.eq(pre[:acc_bits])]
        # the token's exponent, registered (the feeder selects it among its tokens': a path
        # of its own): the token is the rows released, this row's from the previous row's
        # release on, so the register has it before the take
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
        # the consumer's ready stops at a register (the requantiser's stall net stays here)
        skid_buffer(m, main.o_stream, self.o_stream, "out", clear=~self.run)
        with m.If(~self.run):
            m.d.sync += [taken.eq(0), busy.eq(0), left.eq(0), self.drained.eq(0), valid.eq(0),
                         pre_valid.eq(0),
                         queued.eq(0), count.eq(0), head.eq(0), *(v.eq(0) for v in read_valid)]
        return m
