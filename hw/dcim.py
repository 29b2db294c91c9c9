"""SRAM digital-CIM macro (the RTL of :mod:`cimforge.golden.dcim`)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from cimforge.golden.dcim import APPEND, OPS, SCORES, WEIGHTED, WRITE, DcimSpec, DcimTiming
from cimforge.hw.numerics import PackedArray, tree_sum

__all__ = ["DigitalCim", "command_layout", "result_layout"]


def command_layout(spec: DcimSpec) -> data.StructLayout:
    """One command: ``op`` (WRITE 0, APPEND 1, SCORES 2, WEIGHTED 3), ``addr`` (WRITE's row),
    ``data`` (``width`` signed ``bits``-bit values)."""
    return data.StructLayout({
        "op": (len(OPS) - 1).bit_length(),
        "addr": spec.addr_bits,
        "data": PackedArray(signed(spec.bits), spec.width),
    })


def result_layout(spec: DcimSpec) -> data.StructLayout:
    """One result: ``data`` (``width`` signed ``acc_bits`` values; SCORES fills the first
    ``rows``, WEIGHTED the first ``cols``, the rest are 0), ``weighted`` (the command was
    WEIGHTED) and ``tokens`` (rows appended so far, at most ``rows``)."""
    return data.StructLayout({
        "data": PackedArray(signed(spec.acc_bits), spec.width),
        "weighted": 1,
        "tokens": range(spec.rows + 1),
    })


class DigitalCim(wiring.Component):
    """A ``rows x cols`` array of signed ``bits``-bit registers with bit-serial compute.

    Commands arrive on ``i_stream``: WRITE and APPEND store a row in the cycle they are
    accepted; SCORES (``array @ q``, ``q`` signed) and WEIGHTED (``a @ array``, ``a``
    unsigned: its elements' bit patterns in the payload's signed fields) apply their input one
    bit per cycle, MSB first: every stored element is ANDed with its bit, an adder tree per
    output sums them (registered), and the accumulator doubles and adds (the first partial
    subtracted for SCORES, added for WEIGHTED). Results are exact, sign-extended to
    ``acc_bits``, on ``o_stream`` through a two-entry buffer.

    Timing: :class:`cimforge.golden.dcim.DcimTiming` -- a write per cycle, a compute per ``bits``
    cycles, results ``bits + 2`` cycles after acceptance.

    Parameters
    ----------
    spec : DcimSpec

    Members
    -------
    i_stream : In(stream.Signature(command_layout(spec)))
    o_stream : Out(stream.Signature(result_layout(spec)))
    """

    def __init__(self, spec: DcimSpec):
        if not isinstance(spec, DcimSpec):
            raise TypeError(f"spec must be a DcimSpec, not {spec!r}")
        self._spec = spec
        super().__init__({
            "i_stream": In(stream.Signature(command_layout(spec))),
            "o_stream": Out(stream.Signature(result_layout(spec))),
        })

    @property
    def spec(self) -> DcimSpec:
        return self._spec

    @property
    def timing(self) -> DcimTiming:
        return DcimTiming(self._spec)

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        rows, cols, bits = spec.rows, spec.cols, spec.bits
        cmd = self.i_stream.payload

        array = [[Signal(signed(bits), name=f"cell_r{r}_c{c}") for c in range(cols)]
                 for r in range(rows)]
        tokens = Signal(range(rows + 1))
        next_row = Signal(range(rows))

        # -- command acceptance -------------------------------------------------------------
        busy = Signal()  # a compute is applying its bits
        bit = Signal(range(bits))  # the bit being applied: bits-1 (first) down to 0
        outstanding = Signal(range(3))  # computes accepted whose results are not yet taken
        last_bit = busy & (bit == 0)
        accept = Signal()
        transfer = self.o_stream.valid & self.o_stream.ready
        m.d.comb += [
            self.i_stream.ready.eq((~busy | last_bit) & (outstanding != 2)),
            accept.eq(self.i_stream.valid & self.i_stream.ready),
        ]
        computes = accept & ((cmd.op == SCORES) | (cmd.op == WEIGHTED))
        m.d.sync += outstanding.eq(outstanding + computes - transfer)

        # writes: WRITE to addr, APPEND to the next row of the ring
        target = Mux(cmd.op == APPEND, next_row, cmd.addr)
        storing = accept & ((cmd.op == WRITE) | (cmd.op == APPEND))
        for r in range(rows):
            with m.If(storing & (target == r)):
                m.d.sync += [array[r][c].eq(cmd.data[c]) for c in range(cols)]
        with m.If(accept & (cmd.op == APPEND)):
            m.d.sync += [next_row.eq(Mux(next_row == rows - 1, 0, next_row + 1)),
                         tokens.eq(Mux(tokens == rows, rows, tokens + 1))]

        # -- bit-serial compute ---------------------------------------------------------------
        operand = Signal(PackedArray(signed(bits), spec.width))
        weighted = Signal()
        op_tokens = Signal(range(rows + 1))  # tokens when the compute was accepted
        with m.If(computes):
            m.d.sync += [operand.eq(cmd.data), weighted.eq(cmd.op == WEIGHTED), busy.eq(1),
                         bit.eq(bits - 1), op_tokens.eq(tokens)]
        with m.Elif(busy):
            m.d.sync += bit.eq(bit - 1)
            with m.If(bit == 0):
                m.d.sync += busy.eq(0)
        in_bits = [operand[i].as_unsigned().bit_select(bit, 1) for i in range(spec.width)]

        # stage 1: partial sums of this bit, per output
        partial = [Signal(signed(spec.partial_bits), name=f"partial{j}")
                   for j in range(spec.width)]
        # (a compute accepted in the last bit cycle overwrites operand, weighted and op_tokens
        # at its end: what the result needs travels with the partials)
        p_valid, p_first, p_last, p_weighted = Signal(), Signal(), Signal(), Signal()
        p_tokens = Signal(range(rows + 1))
        m.d.sync += [p_valid.eq(busy), p_first.eq(busy & (bit == bits - 1)),
                     p_last.eq(last_bit), p_weighted.eq(weighted), p_tokens.eq(op_tokens)]
        for j in range(spec.width):
            score = (tree_sum([Mux(in_bits[c], array[j][c], 0) for c in range(cols)])
                     if j < rows else 0)
            column = (tree_sum([Mux(in_bits[r], array[r][j], 0) for r in range(rows)])
                      if j < cols else 0)
            m.d.sync += partial[j].eq(Mux(weighted, column, score))

        # stage 2: accumulate, MSB first; the first bit's partial is subtracted for SCORES
        # (a signed input: its sign bit) and added for WEIGHTED (an unsigned input)
        accs = [Signal(signed(spec.exact_bits), name=f"acc{j}") for j in range(spec.width)]
        nexts = []
        for j, (acc, p) in enumerate(zip(accs, partial, strict=True)):
            nxt = Signal(signed(spec.exact_bits), name=f"next{j}")
            m.d.comb += nxt.eq(Mux(p_first, Mux(p_weighted, p, -p), (acc << 1) + p))
            with m.If(p_valid):
                m.d.sync += acc.eq(nxt)
            nexts.append(nxt)

        # -- output buffer: two results ---------------------------------------------------------
        layout = result_layout(spec)
        out = [Signal(layout, name=f"out{i}") for i in range(2)]
        o_head = Signal()
        o_count = Signal(range(3))
        done = p_valid & p_last
        result = Signal(layout)
        m.d.comb += [result.data[j].eq(nxt) for j, nxt in enumerate(nexts)]  # sign-extends
        m.d.comb += [
            result.weighted.eq(p_weighted),
            result.tokens.eq(p_tokens),
            self.o_stream.valid.eq(o_count != 0),
            self.o_stream.payload.eq(Mux(o_head, out[1], out[0])),
        ]
        with m.If(done):
            for i in range(2):
                with m.If((o_head ^ (o_count == 1)) == i):
                    m.d.sync += out[i].eq(result)
        m.d.sync += o_count.eq(o_count + done - transfer)
        with m.If(transfer):
            m.d.sync += o_head.eq(~o_head)
        return m
