"""SRAM digital-CIM macro (the RTL of :mod:`cimforge.golden.dcim`)."""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from cimforge.golden.dcim import (
    APPEND,
    OPS,
    SCORES,
    TREE_LEVELS_PER_STAGE,
    WEIGHTED,
    WRITE,
    DcimSpec,
    DcimTiming,
)
from cimforge.hw.numerics import PackedArray

__all__ = ["DigitalCim", "command_layout", "result_layout"]


def command_layout(spec: DcimSpec) -> data.StructLayout:
    """One command: ``op`` (WRITE 0, APPEND 1, SCORES 2, WEIGHTED 3), ``addr`` (WRITE's row),
    ``data`` (``width`` signed ``bits``-bit values)."""
    return data.StructLayout({
        "op": (len(OPS) - 1).bit_length(),
        "addr": spec.addr_bits,
        "data": PackedArray(signed(spec.bits), spec.width),
    })


def result_layout(spec: DcimSpec, data_bits: int | None = None) -> data.StructLayout:
    """One result: ``data`` (``width`` signed ``acc_bits`` values -- ``data_bits`` if given;
    SCORES fills the first ``rows``, WEIGHTED the first ``cols``, the rest are 0),
    ``weighted`` (the command was WEIGHTED) and ``tokens`` (rows appended so far, at most
    ``rows``)."""
    return data.StructLayout({
        "data": PackedArray(signed(data_bits or spec.acc_bits), spec.width),
        "weighted": 1,
        "tokens": range(spec.rows + 1),
    })


class DigitalCim(wiring.Component):
    """A ``rows x cols`` array of signed ``bits``-bit registers with bit-serial compute.

    Commands arrive on ``i_stream``: WRITE and APPEND store a row (written the cycle after
    they are accepted); SCORES (``array @ q``, ``q`` signed) and WEIGHTED (``a @ array``, ``a``
    unsigned: its elements' bit patterns in the payload's signed fields) apply their input one
    bit per cycle, MSB first: every stored element is ANDed with its bit (a register with
    a synchronous reset), an adder tree per output sums them (pipelined, ``spec.tree_stages``
    stages), and the accumulator doubles
    and adds (the first partial subtracted for SCORES, added for WEIGHTED). Results are
    exact, sign-extended to ``acc_bits``, on ``o_stream`` through a two-entry buffer.

    Timing: :class:`cimforge.golden.dcim.DcimTiming` -- a write per cycle, a compute per ``bits``
    cycles, results ``bits + tree_stages + 2`` cycles after acceptance.

    Parameters
    ----------
    spec : DcimSpec
    computes : tuple of SCORES and WEIGHTED
        The compute ops the macro has adder trees for (default both). A macro that only ever
        does one -- the accelerator's K cache only SCORES, its V cache only WEIGHTED -- is
        built with that one's trees alone, about half the logic; a command of the other op
        still takes its ``bits`` cycles and returns a result of zeros (its ``weighted`` and
        ``tokens`` as usual).

    Members
    -------
    i_stream : In(stream.Signature(command_layout(spec)))
    o_stream : Out(stream.Signature(result_layout(spec)))
    """

    def __init__(self, spec: DcimSpec, computes: tuple[int, ...] = (SCORES, WEIGHTED)):
        if not isinstance(spec, DcimSpec):
            raise TypeError(f"spec must be a DcimSpec, not {spec!r}")
        computes = tuple(sorted(set(computes)))
        if not computes or not set(computes) <= {SCORES, WEIGHTED}:
            raise ValueError(f"computes must be SCORES ({SCORES}), WEIGHTED ({WEIGHTED}) or "
                             f"both, not {computes!r}")
        self._spec = spec
        self._computes = computes
        super().__init__({
            "i_stream": In(stream.Signature(command_layout(spec))),
            "o_stream": Out(stream.Signature(result_layout(spec))),
        })

    @property
    def spec(self) -> DcimSpec:
        return self._spec

    @property
    def computes(self) -> tuple[int, ...]:
        """The compute ops the macro has adder trees for."""
        return self._computes

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
        # (for timing, nothing wide hangs on `accept`, which the input's valid drives: the
        # bit counter and the operand's load-or-shift follow registers only, and a stored row
        # is written from registers the cycle after its acceptance)
        busy = Signal()  # a compute is applying its bits
        bit = Signal(range(bits))  # the bit being applied: bits-1 (first) down to 0
        at_last = Signal()  # busy with bit 0 (a register, so bit == 0 is not on the path)
        last_bit = busy & at_last
        outstanding = Signal(range(3))  # computes accepted whose results are not yet taken
        window = Signal()  # a command may be accepted if ready (none in flight, or the last bit)
        accept = Signal()
        transfer = self.o_stream.valid & self.o_stream.ready
        m.d.comb += [
            window.eq(~busy | last_bit),
            self.i_stream.ready.eq(window & (outstanding != 2)),
            accept.eq(self.i_stream.valid & self.i_stream.ready),
        ]
        computes = accept & ((cmd.op == SCORES) | (cmd.op == WEIGHTED))
        m.d.sync += outstanding.eq(outstanding + computes - transfer)

        # writes: WRITE to addr, APPEND to the next row of the ring; the row registered with
        # its one-hot row enable, written the cycle after (a compute accepted then applies its
        # first bit the cycle after that, so it sees the row, as the cycle model has it)
        target = Mux(cmd.op == APPEND, next_row, cmd.addr)
        storing = accept & ((cmd.op == WRITE) | (cmd.op == APPEND))
        w_rows = Signal(rows)
        w_data = Signal(PackedArray(signed(bits), cols))
        m.d.sync += [w_rows[r].eq(storing & (target == r)) for r in range(rows)]
        m.d.sync += [w_data[c].eq(cmd.data[c]) for c in range(cols)]
        for r in range(rows):
            with m.If(w_rows[r]):
                m.d.sync += [array[r][c].eq(w_data[c]) for c in range(cols)]
        with m.If(accept & (cmd.op == APPEND)):
            m.d.sync += [next_row.eq(Mux(next_row == rows - 1, 0, next_row + 1)),
                         tokens.eq(Mux(tokens == rows, rows, tokens + 1))]

        # -- bit-serial compute ---------------------------------------------------------------
        # the operand shifts left once a bit cycle: each element's input bit is its top bit, a
        # register (no multiplexer on the path into the adder trees). In the window it loads
        # the command's data whether or not a compute is accepted (without one it is not used)
        operand = Signal(PackedArray(signed(bits), spec.width))
        weighted = Signal()
        op_tokens = Signal(range(rows + 1))  # tokens when the compute was accepted
        with m.If(window):
            m.d.sync += [operand.eq(cmd.data), bit.eq(bits - 1), at_last.eq(0)]
        with m.Else():
            m.d.sync += [bit.eq(bit - 1), at_last.eq(bit == 1),
                         *(operand[i].eq(operand[i] << 1) for i in range(spec.width))]
        with m.If(computes):
            m.d.sync += [weighted.eq(cmd.op == WEIGHTED), busy.eq(1), op_tokens.eq(tokens)]
        with m.Elif(last_bit):
            m.d.sync += busy.eq(0)
        in_bits = [operand[i][bits - 1] for i in range(spec.width)]

        # the AND gates as registers: every element's value registered, 0 in a cycle its input
        # bit is 0 -- the flip-flop's synchronous reset, so the gates take no logic (reset_less:
        # the design's reset would have to be ORed in). An element's input bit is its column's
        # for SCORES, its row's for WEIGHTED; a macro with both picks one by `weighted`.
        both = len(self._computes) == 2
        gated = [[None] * cols for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                if both:
                    gate = Mux(weighted, in_bits[r], in_bits[c])
                else:
                    gate = in_bits[r] if self._computes == (WEIGHTED,) else in_bits[c]
                g = Signal(signed(bits), name=f"gated_r{r}_c{c}", reset_less=True)
                m.d.sync += g.eq(Mux(gate, array[r][c], 0))
                gated[r][c] = g

        # the adder trees: each output has two (its row's for SCORES, its column's for
        # WEIGHTED) over `width` terms (zeros past the array's edge), TREE_LEVELS_PER_STAGE
        # levels between registers, from the gated elements; the choice of tree in the last
        # stage. The control signals travel alongside: a compute accepted in the last bit
        # cycle overwrites operand, weighted and op_tokens at its end.
        stages = spec.tree_stages

        def tree(terms: list, name: str):
            terms = terms + [Const(0, signed(bits))] * (spec.width - len(terms))
            for stage in range(stages):
                for level in range(TREE_LEVELS_PER_STAGE):
                    sums = []
                    for i in range(0, len(terms), 2):
                        if i + 1 == len(terms):
                            sums.append(terms[i])
                            continue
                        total = terms[i] + terms[i + 1]
                        w = Signal(total.shape(), name=f"{name}_l{stage}{level}_{i // 2}",
                                   attrs={"keep": 1})
                        m.d.comb += w.eq(total)
                        sums.append(w)
                    terms = sums
                if stage < stages - 1:
                    regs = [Signal(signed(len(t)), name=f"{name}_s{stage + 1}_{i}")
                            for i, t in enumerate(terms)]
                    m.d.sync += [r.eq(t) for r, t in zip(regs, terms, strict=True)]
                    terms = regs
            assert len(terms) == 1
            return terms[0]

        def delayed(sig, n: int, name: str):
            for k in range(n):
                reg = Signal.like(sig, name=f"{name}_d{k + 1}")
                m.d.sync += reg.eq(sig)
                sig = reg
            return sig

        # the bit cycle's view (the gates), then as the last tree stage sees it
        c_valid, c_first, c_last = busy, busy & (bit == bits - 1), last_bit
        t_weighted = delayed(weighted, stages, "weighted")
        partial = [Signal(signed(spec.partial_bits), name=f"partial{j}")
                   for j in range(spec.width)]
        for j in range(spec.width):
            score = (tree(gated[j], f"score{j}")
                     if j < rows and SCORES in self._computes else 0)
            column = (tree([gated[r][j] for r in range(rows)], f"column{j}")
                      if j < cols and WEIGHTED in self._computes else 0)
            m.d.sync += partial[j].eq(Mux(t_weighted, column, score))
        p_valid = delayed(c_valid, stages + 1, "valid")
        p_first = delayed(c_first, stages + 1, "first")
        p_last = delayed(c_last, stages + 1, "last")
        p_weighted = delayed(t_weighted, 1, "p_weighted")
        p_tokens = delayed(op_tokens, stages + 1, "tokens")

        # the accumulator, MSB first: the first bit's partial is subtracted for SCORES
        # (a signed input: its sign bit) and added for WEIGHTED (an unsigned input)
        # (a one-op macro's first partial takes its op's sign alone: the other op's partials
        # are 0, whose sign does not matter)
        accs = [Signal(signed(spec.exact_bits), name=f"acc{j}") for j in range(spec.width)]
        nexts = []
        for j, (acc, p) in enumerate(zip(accs, partial, strict=True)):
            nxt = Signal(signed(spec.exact_bits), name=f"next{j}")
            first = (Mux(p_weighted, p, -p) if both
                     else p if self._computes == (WEIGHTED,) else -p)
            m.d.comb += nxt.eq(Mux(p_first, first, (acc << 1) + p))
            with m.If(p_valid):
                m.d.sync += acc.eq(nxt)
            nexts.append(nxt)

        # -- output buffer: two results, held exact_bits wide and sign-extended on the way out --
        narrow = result_layout(spec, spec.exact_bits)
        out = [Signal(narrow, name=f"out{i}") for i in range(2)]
        o_head = Signal()
        o_count = Signal(range(3))
        done = p_valid & p_last
        result = Signal(narrow)
        head = Signal(narrow)
        m.d.comb += [result.data[j].eq(nxt) for j, nxt in enumerate(nexts)]
        m.d.comb += [
            result.weighted.eq(p_weighted),
            result.tokens.eq(p_tokens),
            self.o_stream.valid.eq(o_count != 0),
            head.eq(Mux(o_head, out[1], out[0])),
            *(self.o_stream.payload.data[j].eq(head.data[j]) for j in range(spec.width)),
            self.o_stream.payload.weighted.eq(head.weighted),
            self.o_stream.payload.tokens.eq(head.tokens),
        ]
        with m.If(done):
            for i in range(2):
                with m.If((o_head ^ (o_count == 1)) == i):
                    m.d.sync += out[i].eq(result)
        m.d.sync += o_count.eq(o_count + done - transfer)
        with m.If(transfer):
            m.d.sync += o_head.eq(~o_head)
        return m
