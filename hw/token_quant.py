"""The per-token scaling unit: rows of wide values to int8 by one power of two per row (the
RTL of :mod:`cimforge.golden.token_quant`)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from cimforge.golden.token_quant import TokenQuantSpec
from cimforge.hw.numerics import limit, round_shift_var, select
from cimforge.hw.pipeline import RowReader, RowWriter, SlotFlags
from cimforge.hw.reciprocal import bit_length
from cimforge.hw.spec_unit import SpecUnit

__all__ = ["TokenQuantizer", "token_quant_out_layout"]


def token_quant_out_layout(spec: TokenQuantSpec) -> data.StructLayout:
    """One output, fields from bit 0 up: ``q`` (signed ``out_bits``), the row's exponent
    ``exp`` (unsigned, holds ``max_exp``), ``last`` (the row's last value)."""
    return data.StructLayout({"q": signed(spec.out_bits), "exp": range(spec.max_exp + 1),
                              "last": 1})


class TokenQuantizer(SpecUnit):
    """Per-token power-of-two scaling of rows of ``d`` wide values to ``out_bits``
    (:func:`cimforge.golden.nonlinear.token_quantize`): ``e = max(0, bitlen(max |x|) -
    (out_bits - 1))``, ``q = sat(round(x / 2^e))``; each output carries ``e`` for the next
    matmul's requantiser.

    ``spec.slots`` row buffers (default 2): one collects (tracking the largest magnitude), one
    is read out through a two-stage stall pipeline (read; shift, round and saturate).
    Latency: a row's first output ``d + 2`` cycles after its first value into an idle unit;
    throughput one value per cycle, rows back to back
    (:class:`cimforge.golden.token_quant.TokenQuantTiming`).

    Parameters
    ----------
    spec : TokenQuantSpec

    Members
    -------
    i_stream : In(stream.Signature(signed(in_bits)))
        Values, ``d`` to a row (no ``last``: the unit counts).
    o_stream : Out(stream.Signature(token_quant_out_layout(spec)))
        ``q``, ``exp`` and ``last`` per value, in order.
    """

    _spec_cls = TokenQuantSpec

    def __init__(self, spec: TokenQuantSpec):
        super().__init__(spec, {
            "i_stream": In(stream.Signature(signed(spec.in_bits))),
            "o_stream": Out(stream.Signature(token_quant_out_layout(spec))),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        d, slots = spec.d, spec.slots
        m.submodules.buf = buf = Memory(shape=signed(spec.in_bits), depth=slots * d, init=[])
        bw, br = buf.write_port(), buf.read_port(transparent_for=())

        # -- collect ---------------------------------------------------------------------------
        x = self.i_stream.payload
        a = RowWriter(slots, d, "a")
        full = SlotFlags(m, slots, "full")
        peak = Signal(unsigned(spec.in_bits))
        exps = [Signal(range(spec.max_exp + 1), name=f"exp{s}") for s in range(slots)]
        m.d.comb += self.i_stream.ready.eq(~full[a.slot])
        take = self.i_stream.valid & self.i_stream.ready
        mag = Signal(unsigned(spec.in_bits))
        m.d.comb += mag.eq(Mux(x < 0, -x, x))
        row_peak = Signal(unsigned(spec.in_bits))
        m.d.comb += row_peak.eq(Mux((a.count == 0) | (mag > peak), mag, peak))
        blen = bit_length(m, row_peak, "tq_blen")
        row_exp = Mux(blen > spec.out_bits - 1, blen - (spec.out_bits - 1), 0)
        a_end = a.count == d - 1
        m.d.comb += [bw.addr.eq(a.addr), bw.data.eq(x), bw.en.eq(take)]
        a.step(m, take, a_end)
        with m.If(take):
            m.d.sync += peak.eq(row_peak)
            with m.If(a_end):
                full.set(a.slot)
                for s in range(slots):
                    with m.If(a.slot == s):
                        m.d.sync += exps[s].eq(row_exp)

        # -- output: read; shift, round, saturate -------------------------------------------------
        o = self.o_stream
        advance = ~o.valid | o.ready
        c = RowReader(slots, d, "c")
        c_issue = advance & (c.busy | full[c.slot])
        c_last = c.index == d - 1
        m.d.comb += [br.addr.eq(c.slot * d + c.index), br.en.eq(advance)]
        c.step(m, c_issue, c_last)
        with m.If(c_issue & c_last):
            full.clear(c.slot)
        v1, last1 = Signal(), Signal()
        exp1 = Signal.like(exps[0])
        with m.If(advance):
            m.d.sync += [v1.eq(c_issue), last1.eq(c_last), exp1.eq(select(c.slot, exps))]
        q = round_shift_var(m, br.data, exp1, spec.rounding, "tq_round")
        v2 = Signal()
        with m.If(advance):
            m.d.sync += [v2.eq(v1), o.payload.q.eq(limit(m, q, spec.out_bits, True, "tq_sat")),
                         o.payload.exp.eq(exp1), o.payload.last.eq(last1)]
        m.d.comb += o.valid.eq(v2)
        return m
