"""The requantiser: int32 accumulators to int8 or to the residual format by a fixed-point
multiplier and shift (the RTL of :mod:`cimforge.golden.requant`)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from cimforge.config import SHIFT_BITS
from cimforge.golden.requant import RequantSpec
from cimforge.hw.numerics import limit, round_shift_var
from cimforge.hw.pipeline import StallPipeline
from cimforge.hw.spec_unit import SpecUnit

__all__ = ["Requantizer", "requant_in_layout"]


def requant_in_layout(spec: RequantSpec) -> data.StructLayout:
    """One item, fields from bit 0 up: ``acc`` (signed ``acc_bits``), ``exp`` (unsigned
    ``exp_field_bits``), ``bias`` (signed ``bias_bits``), ``mult`` (unsigned ``mult_bits``),
    ``shift`` (unsigned ``SHIFT_BITS``), ``residual`` (signed ``residual_bits``), ``narrow``
    (1 bit)."""
    return data.StructLayout({
        "acc": signed(spec.acc_bits),
        "exp": unsigned(spec.exp_field_bits),
        "bias": signed(spec.bias_bits),
        "mult": unsigned(spec.mult_bits),
        "shift": unsigned(SHIFT_BITS),
        "residual": signed(spec.residual_bits),
        "narrow": 1,
    })


class Requantizer(SpecUnit):
    """int32 -> int8 (``narrow``) or the residual format (:class:`RequantSpec`):
    ``y = sat(sat(round(sat_F((acc << exp) + bias) * mult / 2^shift)) + residual)``, rounding
    by ``numerics.rounding``, the outer saturations to ``act_bits`` (``narrow``) or
    ``residual_bits``, ``sat_F`` to signed ``full_bits`` (it only acts for an ``exp`` beyond
    ``max_exp``, which the field can carry: the shifted sum saturates, it does not wrap).

    Throughput one item per cycle; latency 3 cycles (a result is offered 3 cycles after its
    item is accepted), stages: ``sat_F((acc << exp) + bias)``; ``* mult``; round, saturate,
    add the residual, saturate. Back-pressure stalls the whole pipeline
    (``i_stream.ready = ~o_stream.valid | o_stream.ready``).

    Parameters
    ----------
    spec : RequantSpec

    Members
    -------
    i_stream : In(stream.Signature(requant_in_layout(spec)))
        Items: ``acc``, ``exp``, ``bias``, ``mult``, ``shift``, ``residual``, ``narrow``.
    o_stream : Out(stream.Signature(signed(residual_bits)))
        Results, in ``residual_bits`` whatever ``narrow`` (a narrow result is sign-extended).
    """

    _spec_cls = RequantSpec

    def __init__(self, spec: RequantSpec):
        super().__init__(spec, {
            "i_stream": In(stream.Signature(requant_in_layout(spec))),
            "o_stream": Out(stream.Signature(signed(spec.residual_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        p = self.i_stream.payload
        pipe = StallPipeline(m, self.i_stream, self.o_stream, "rq")
        # acc << exp for every exponent the field holds, before the saturation to full_bits
        shifted = Signal(signed(spec.acc_bits + spec.exp_field_max + 1))
        m.d.comb += shifted.eq((p.acc << p.exp) + p.bias)
        full = limit(m, shifted, spec.full_bits, True, "rq_full")
        s1 = pipe.stage({"full": full, "mult": p.mult, "shift": p.shift,
                         "residual": p.residual, "narrow": p.narrow})
        prod = Signal(signed(spec.product_bits))
        m.d.comb += prod.eq(s1["full"] * s1["mult"])
        s2 = pipe.stage({"prod": prod, "shift": s1["shift"], "residual": s1["residual"],
                         "narrow": s1["narrow"]})
        y = round_shift_var(m, s2["prod"], s2["shift"], spec.rounding, "rq_round")
        narrow = s2["narrow"]
        a, r = spec.act_bits, spec.residual_bits
        y1 = Mux(narrow, limit(m, y, a, True, "rq_sat_a"), limit(m, y, r, True, "rq_sat_r"))
        y2 = Signal(signed(r + 1))
        m.d.comb += y2.eq(y1 + s2["residual"])
        out = Mux(narrow, limit(m, y2, a, True, "rq_out_a"), limit(m, y2, r, True, "rq_out_r"))
        s3 = pipe.stage({"out": out})
        assert pipe.depth == spec.DEPTH
        pipe.finish(s3["out"])
        return m
