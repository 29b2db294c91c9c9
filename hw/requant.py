"""The requantiser: int32 accumulators to int8 or to the residual format by a fixed-point
multiplier and shift (the RTL of :mod:`cimforge.golden.requant`)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from cimforge.config import SHIFT_BITS
from cimforge.golden.requant import RequantSpec
from cimforge.hw.numerics import (
    carry_save_sum,
    clamp_shift,
    partial_products,
    round_shift_var_staged,
    saturate_add,
    saturate_sum,
)
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

    Throughput one item per cycle; latency 8 cycles (a result is offered 8 cycles after its
    item is accepted, ``RequantSpec.DEPTH``), stages: ``acc << exp``; ``sat_F(. + bias)``
    (the saturation decided beside the adder's carry chain); ``* mult`` as partial products
    of 17-bit slices, one 18x18 multiplier each; their sum; the rounding shift by the
    shift's high bits, then by its low bits (with the rounding's increment); round and
    saturate; add the residual and saturate. Each stage is at most about one unregistered
    multiplier's path (about 7.3 ns on an ECP5). Back-pressure stalls the whole pipeline
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
        a, r = spec.act_bits, spec.residual_bits
        pipe = StallPipeline(m, self.i_stream, self.o_stream, "rq")
        # 1: acc << exp, for every exponent the field holds; the shift limited to the product
        shl = Signal(signed(spec.acc_bits + spec.exp_field_max))
        m.d.comb += shl.eq(p.acc << p.exp)
        shift = clamp_shift(m, p.shift, spec.product_bits, "rq_shift")
        s = pipe.stage({"shl": shl, "bias": p.bias, "mult": p.mult, "shift": shift,
                        "residual": p.residual, "narrow": p.narrow})
        keep = ("shift", "residual", "narrow")
        # 2: + bias, saturated to full_bits
        full = saturate_add(m, s["shl"], s["bias"], spec.full_bits, "rq_full")
        s = pipe.stage({"full": full, "mult": s["mult"], **{k: s[k] for k in keep}})
        # 3: * mult, as partial products of 17-bit slices of full (one DSP each)
        parts = partial_products(s["full"], s["mult"])
        s = pipe.stage({**{f"pp{i}": pp for i, (_, pp) in enumerate(parts)},
                        **{k: s[k] for k in keep}})
        # 4: their sum, the product
        prod = carry_save_sum(m, [s[f"pp{i}"] << off for i, (off, _) in enumerate(parts)],
                              spec.product_bits, "rq_prod")
        s = pipe.stage({"prod": prod, **{k: s[k] for k in keep}})
        # 5, 6: the rounding shift in two steps
        q, up, s = round_shift_var_staged(m, pipe.stage, s["prod"], s["shift"], spec.rounding,
                                          "rq_round", {"residual": s["residual"],
                                                       "narrow": s["narrow"]})
        s = pipe.stage({"q": q, "up": up, "residual": s["residual"], "narrow": s["narrow"]})
        # 7: round and saturate
        narrow = s["narrow"]
        y1 = Mux(narrow, saturate_sum(m, s["q"], s["up"], a, "rq_sat_a"),
                 saturate_sum(m, s["q"], s["up"], r, "rq_sat_r"))
        s = pipe.stage({"y1": y1, "residual": s["residual"], "narrow": narrow})
        # 8: + residual, saturated
        narrow = s["narrow"]
        out = Mux(narrow, saturate_add(m, s["y1"], s["residual"], a, "rq_out_a"),
                  saturate_add(m, s["y1"], s["residual"], r, "rq_out_r"))
        s = pipe.stage({"out": out})
        assert pipe.depth == spec.DEPTH
        pipe.finish(s["out"])
        return m
