"""The FFN activation unit: GELU by a programmed table or I-BERT's integer polynomial, or
ReLU (the RTL of :mod:`cimforge.golden.activation`)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from cimforge.config import SHIFT_BITS
from cimforge.golden.activation import ActivationSpec
from cimforge.hw.numerics import limit, round_shift_var
from cimforge.hw.pipeline import StallPipeline
from cimforge.hw.spec_unit import SpecUnit

__all__ = ["Activation"]


class Activation(SpecUnit):
    """The FFN activation, one code per cycle (:class:`ActivationSpec`).

    ``lut``: a ``2^in_bits``-entry table of signed ``out_bits`` values, written through
    ``table_we/table_addr/table_data`` (latency 2: the table read, the output register).
    ``poly``: I-BERT's integer GELU with the constants on ``b``, ``c``, ``one``, ``mult`` and
    ``shift`` (latency 5: ``min(|q|, -b) + b``; square, ``+ c``, sign; ``q (one - L)``;
    ``* mult``; round and saturate). ``relu``: ``max(q, 0)`` (latency 1). Back-pressure stalls
    the pipeline (``i_stream.ready = ~o_stream.valid | o_stream.ready``); the configuration
    inputs must be held while codes are in flight. Throughput one code per cycle.

    Parameters
    ----------
    spec : ActivationSpec

    Members
    -------
    i_stream : In(stream.Signature(signed(in_bits)))
        Codes.
    o_stream : Out(stream.Signature(signed(out_bits)))
        Results.
    table_we : In(1)
        ``lut`` only: write ``table_data`` at ``table_addr`` at the next edge (between codes
        or before the first; a write and a read of one entry in one cycle reads the old one).
    table_addr : In(unsigned(in_bits))
        ``lut`` only: the entry, the code's two's-complement bits read as unsigned.
    table_data : In(signed(out_bits))
        ``lut`` only.
    b : In(signed(in_bits + 4))
        ``poly`` only: I-BERT's ``b`` (negative), :class:`cimforge.golden.nonlinear.GeluPoly`.
    c : In(signed(const_bits))
        ``poly`` only: ``c``.
    one : In(signed(const_bits))
        ``poly`` only: the scaled 1 of ``q (one - L)``.
    mult : In(unsigned(mult_bits))
        ``poly`` only: the output multiplier.
    shift : In(unsigned(SHIFT_BITS))
        ``poly`` only: the output shift, 0 .. ``MAX_SHIFT``.
    """

    _spec_cls = ActivationSpec

    def __init__(self, spec: ActivationSpec):
        members = {
            "i_stream": In(stream.Signature(signed(spec.in_bits))),
            "o_stream": Out(stream.Signature(signed(spec.out_bits))),
        }
        if spec.function == "lut":
            members.update(table_we=In(1), table_addr=In(unsigned(spec.in_bits)),
                           table_data=In(signed(spec.out_bits)))
        elif spec.function == "poly":
            members.update(b=In(signed(spec.in_bits + 4)), c=In(signed(spec.const_bits)),
                           one=In(signed(spec.const_bits)), mult=In(unsigned(spec.mult_bits)),
                           shift=In(unsigned(SHIFT_BITS)))
        super().__init__(spec, members)

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        q = self.i_stream.payload
        pipe = StallPipeline(m, self.i_stream, self.o_stream, "act")
        if spec.function == "relu":
            s1 = pipe.stage({"y": Mux(q < 0, 0, q)})
            pipe.finish(s1["y"])
        elif spec.function == "lut":
            m.submodules.table = table = Memory(shape=signed(spec.out_bits),
                                                depth=1 << spec.in_bits, init=[])
            wp, rp = table.write_port(), table.read_port(transparent_for=())
            m.d.comb += [wp.addr.eq(self.table_addr), wp.data.eq(self.table_data),
                         wp.en.eq(self.table_we),
                         rp.addr.eq(q.as_unsigned()), rp.en.eq(pipe.advance)]
            pipe.stage({})
            s2 = pipe.stage({"y": rp.data})
            pipe.finish(s2["y"])
        else:
            a = Signal(signed(spec.in_bits + 5))
            mag = Signal(unsigned(spec.in_bits + 1))
            m.d.comb += [mag.eq(Mux(q < 0, -q, q)),
                         a.eq(Mux(mag > -self.b, -self.b, mag) + self.b)]
            s1 = pipe.stage({"a": a, "q": q})
            erf = Signal(signed(spec.const_bits + 1))
            sq = s1["a"] * s1["a"] + self.c
            m.d.comb += erf.eq(Mux(s1["q"] < 0, -sq, Mux(s1["q"] == 0, 0, sq)))
            s2 = pipe.stage({"erf": erf, "q": s1["q"]})
            t = Signal(signed(spec.in_bits + spec.const_bits + 2))
            m.d.comb += t.eq(s2["q"] * (self.one - s2["erf"]))
            s3 = pipe.stage({"t": t})
            prod = Signal(signed(spec.product_bits + 2))
            m.d.comb += prod.eq(s3["t"] * self.mult)
            s4 = pipe.stage({"prod": prod})
            y = round_shift_var(m, s4["prod"], self.shift, spec.rounding, "act_round")
            s5 = pipe.stage({"y": limit(m, y, spec.out_bits, True, "act_sat")})
            pipe.finish(s5["y"])
        assert pipe.depth == spec.depth
        return m
