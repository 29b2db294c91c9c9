"""The per-token scaling unit: rows of wide values to int8 by one power of two per row (the
RTL of :mod:`cimforge.golden.token_quant`)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from cimforge.golden.token_quant import TokenQuantSpec
from cimforge.hw.numerics import limit, select
from cimforge.hw.pipeline import RowReader, RowWriter, SlotFlags
from cimforge.hw.reciprocal import bit_length
from cimforge.hw.spec_unit import SpecUnit

__all__ = ["TokenQuantizer", "token_quant_out_layout"]


def token_quant_out_layout(spec: TokenQuantSpec) -> data.StructLayout:
    """One output, fields from bit 0 up: ``q`` (signed ``out_bits``), the row's exponent
    ``exp`` (unsigned, holds ``max_exp``), ``last`` (the row's last value)."""
    return data.StructLayout({"q": signed(spec.out_bits), "exp": range(spec.max_exp + 1),
                              "last": 1})


def _shift_and_round_bit(m: Module, value, shift, mode: str) -> tuple[Signal, Signal]:
    """:func:`cimforge.hw.numerics.round_shift_var` in two parts, for two pipeline stages:
    ``value >> shift`` (signed) and the rounding increment to add to it, from the guard bit
    (the highest one shifted out), the sticky bit (any below it) and the kept LSB.
    ``shift`` must be below ``len(value)`` (the unit's exponents are)."""
    width = len(value)
    q = Signal(signed(width), name="tq_q")
    m.d.comb += q.eq(value >> shift)
    up = Signal(name="tq_up")
    if mode == "floor":
        return q, up
    ext = Cat(Const(0, 1), value.as_unsigned())  # bit i + 1 is value bit i
    guard = (ext >> shift)[0]  # value bit shift - 1 (0 for no shift)
    low = Signal(width + 1, name="tq_low")  # ext below bit `shift`: value bits below the guard
    m.d.comb += low.eq(ext & ~(Const((1 << (width + 1)) - 1, width + 1) << shift)[:width + 1])
    sticky = low.any()
    if mode == "half_up":
        m.d.comb += up.eq(guard)
    elif mode == "half_even":
        m.d.comb += up.eq(guard & (sticky | q[0]))
    else:
        raise ValueError(f"mode must be one of floor, half_up, half_even, not {mode!r}")
    return q, up


class TokenQuantizer(SpecUnit):
    """Per-token power-of-two scaling of rows of ``d`` wide values to ``out_bits``
    (:func:`cimforge.golden.nonlinear.token_quantize`): ``e = max(0, bitlen(max |x|) -
    (out_bits - 1))``, ``q = sat(round(x / 2^e))``; each output carries ``e`` for the next
    matmul's requantiser.

    ``spec.slots`` row buffers (default 2): one collects (keeping the OR of the magnitudes,
    whose bit length is the largest one's), one is read out through a three-stage stall
    pipeline (read, with the row's exponent; shift and rounding bit; round and saturate).
    Latency: a row's first output ``d + 3`` cycles after its first value into an idle unit;
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
        # the OR of the row's magnitudes has the bit length of the largest one: no compare
        # on the input path, and the exponent is derived from a register when the row is read
        peak = Signal(unsigned(spec.in_bits))
        peaks = [Signal(unsigned(spec.in_bits), name=f"peak{s}") for s in range(slots)]
        m.d.comb += self.i_stream.ready.eq(~full[a.slot])
        take = self.i_stream.valid & self.i_stream.ready
        mag = Signal(unsigned(spec.in_bits))
        m.d.comb += mag.eq(Mux(x < 0, -x, x))
        row_peak = Signal(unsigned(spec.in_bits))
        m.d.comb += row_peak.eq(Mux(a.count == 0, mag, peak | mag))
        a_end = a.count == d - 1
        m.d.comb += [bw.addr.eq(a.addr), bw.data.eq(x), bw.en.eq(take)]
        a.step(m, take, a_end)
        with m.If(take):
            m.d.sync += peak.eq(row_peak)
            with m.If(a_end):
                full.set(a.slot)
                for s in range(slots):
                    with m.If(a.slot == s):
                        m.d.sync += peaks[s].eq(row_peak)

        # -- output: read (and the row's exponent); shift and rounding bit; round, saturate -----
        o = self.o_stream
        advance = ~o.valid | o.ready
        c = RowReader(slots, d, "c")
        c_issue = advance & (c.busy | full[c.slot])
        c_last = c.index == d - 1
        m.d.comb += [br.addr.eq(c.slot * d + c.index), br.en.eq(advance)]
        c.step(m, c_issue, c_last)
        with m.If(c_issue & c_last):
            full.clear(c.slot)
        blen = bit_length(m, select(c.slot, peaks), "tq_blen")
        row_exp = Mux(blen > spec.out_bits - 1, blen - (spec.out_bits - 1), 0)
        v1, last1 = Signal(), Signal()
        exp1 = Signal(range(spec.max_exp + 1))
        with m.If(advance):
            m.d.sync += [v1.eq(c_issue), last1.eq(c_last), exp1.eq(row_exp)]
        q, up = _shift_and_round_bit(m, br.data, exp1, spec.rounding)
        v2, last2, up2 = Signal(), Signal(), Signal()
        exp2 = Signal.like(exp1)
        q2 = Signal.like(q)
        with m.If(advance):
            m.d.sync += [v2.eq(v1), q2.eq(q), up2.eq(up), exp2.eq(exp1), last2.eq(last1)]
        rounded = Signal(signed(spec.in_bits + 1))
        m.d.comb += rounded.eq(q2 + up2)
        v3 = Signal()
        with m.If(advance):
            m.d.sync += [v3.eq(v2),
                         o.payload.q.eq(limit(m, rounded, spec.out_bits, True, "tq_sat")),
                         o.payload.exp.eq(exp2), o.payload.last.eq(last2)]
        m.d.comb += o.valid.eq(v3)
        return m
