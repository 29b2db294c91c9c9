"""The LayerNorm unit: integer statistics, digit-by-digit square root, the shared reciprocal,
programmed gamma and beta (the RTL of :mod:`cimforge.golden.layernorm`)."""

from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from cimforge.config import SHIFT_BITS
from cimforge.golden.layernorm import LayerNormSpec
from cimforge.golden.nonlinear import ln_beta_bits
from cimforge.hw.numerics import limit, round_shift_var, select
from cimforge.hw.pipeline import RowReader, RowWriter, SlotFlags, next_slot
from cimforge.hw.reciprocal import reciprocal_pipeline
from cimforge.hw.spec_unit import SpecUnit

__all__ = ["LayerNorm", "ln_out_layout"]


def ln_out_layout(spec: LayerNormSpec) -> data.StructLayout:
    """One output, fields from bit 0 up: ``y`` (signed ``out_bits``), ``last`` (the row's last
    value)."""
    return data.StructLayout({"y": signed(spec.out_bits), "last": 1})


class LayerNorm(SpecUnit):
    """Integer LayerNorm over rows of ``d`` values, one value per cycle
    (:func:`cimforge.golden.nonlinear.layer_norm`).

    Three stages around ``spec.slots`` row buffers (default 3): **collect** sums values and
    squares; **statistics** takes finished rows in order: ``V = d S2 - S1^2``, the square
    root by the digit-by-digit method (one result bit per cycle, no multiplier), the
    reciprocal pipeline of :mod:`cimforge.hw.reciprocal`; **output** reads the row again
    through three stall stages: normalise ``n = round((d h_i - S1) r / 2^(z + p - nf))``;
    ``n gamma_i + beta_i``; round by ``shift``, saturate.

    Latency: a row's first result ``d + ceil(v_bits / 2) + recip_steps + 7`` cycles after its
    first value into an idle unit; throughput one value per cycle for rows of at least
    ``ceil(v_bits / 2) + recip_steps + 4`` values. The exact cycle model:
    :class:`cimforge.golden.layernorm.LayerNormTiming`.

    Parameters
    ----------
    spec : LayerNormSpec

    Members
    -------
    i_stream : In(stream.Signature(signed(in_bits)))
        Values, ``d`` to a row (no ``last``: the unit counts).
    o_stream : Out(stream.Signature(ln_out_layout(spec)))
        ``y`` and ``last`` per value, in order.
    param_we : In(1)
        Write ``param_gamma`` and ``param_beta`` of element ``param_addr`` at the next edge
        (while no row is in the output stage).
    param_addr : In(range(d))
    param_gamma : In(signed(mult_bits))
    param_beta : In(signed(ln_beta_bits))
        :func:`cimforge.golden.nonlinear.ln_beta_bits`.
    shift : In(unsigned(SHIFT_BITS))
        The common shift of ``n gamma + beta``, 0 .. ``MAX_SHIFT``; held while rows are in
        flight.
    """

    _spec_cls = LayerNormSpec

    def __init__(self, spec: LayerNormSpec):
        super().__init__(spec, {
            "i_stream": In(stream.Signature(signed(spec.in_bits))),
            "o_stream": Out(stream.Signature(ln_out_layout(spec))),
            "param_we": In(1),
            "param_addr": In(range(spec.d)),
            "param_gamma": In(signed(spec.mult_bits)),
            "param_beta": In(signed(ln_beta_bits(spec.nonlinear))),
            "shift": In(unsigned(SHIFT_BITS)),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        nl = spec.nonlinear
        d, p, nf, slots = spec.d, spec.recip_bits, spec.ln_frac_bits, spec.slots
        beta_bits = ln_beta_bits(nl)

        m.submodules.buf = buf = Memory(shape=signed(spec.in_bits), depth=slots * d, init=[])
        bw, br = buf.write_port(), buf.read_port(transparent_for=())
        m.submodules.gamma = gmem = Memory(shape=signed(spec.mult_bits), depth=d, init=[])
        m.submodules.beta = bmem = Memory(shape=signed(beta_bits), depth=d, init=[])
        gw, gr = gmem.write_port(), gmem.read_port(transparent_for=())
        ew, er = bmem.write_port(), bmem.read_port(transparent_for=())
        m.d.comb += [gw.addr.eq(self.param_addr), gw.data.eq(self.param_gamma),
                     gw.en.eq(self.param_we), ew.addr.eq(self.param_addr),
                     ew.data.eq(self.param_beta), ew.en.eq(self.param_we)]

        # -- collect ----------------------------------------------------------------------------
        h = self.i_stream.payload
        a = RowWriter(slots, d, "a")
        full = SlotFlags(m, slots, "full")
        s1_acc = Signal(signed(spec.s1_bits))
        s2_acc = Signal(unsigned(spec.s2_bits))
        s1 = [Signal(signed(spec.s1_bits), name=f"s1_{s}") for s in range(slots)]
        s2 = [Signal(unsigned(spec.s2_bits), name=f"s2_{s}") for s in range(slots)]
        m.d.comb += self.i_stream.ready.eq(~full[a.slot])
        take = self.i_stream.valid & self.i_stream.ready
        s1_new = Signal.like(s1_acc)
        s2_new = Signal.like(s2_acc)
        m.d.comb += [s1_new.eq(s1_acc + h), s2_new.eq(s2_acc + h * h),
                     bw.addr.eq(a.addr), bw.data.eq(h), bw.en.eq(take)]
        a_end = a.count == d - 1
        a.step(m, take, a_end)
        with m.If(take):
            with m.If(a_end):
                m.d.sync += [s1_acc.eq(0), s2_acc.eq(0)]
                full.set(a.slot)
                for s in range(slots):
                    with m.If(a.slot == s):
                        m.d.sync += [s1[s].eq(s1_new), s2[s].eq(s2_new)]
            with m.Else():
                m.d.sync += [s1_acc.eq(s1_new), s2_acc.eq(s2_new)]

        # -- statistics: V, square root, reciprocal ------------------------------------------------
        started = SlotFlags(m, slots, "started")
        done = SlotFlags(m, slots, "done")
        r_busy = Signal()
        r_slot = Signal(range(slots))
        r_k = Signal(range(spec.sqrt_steps + 1))
        op = Signal(unsigned(spec.v_bits))
        res = Signal(unsigned(spec.v_bits))
        one = Signal(unsigned(spec.v_bits))
        r_start = ~r_busy & full[r_slot] & ~started[r_slot]
        feed = r_busy & (r_k == spec.sqrt_steps)
        v = Signal(unsigned(spec.v_bits))
        s1_now = select(r_slot, s1)
        m.d.comb += v.eq(d * select(r_slot, s2) - s1_now * s1_now)
        with m.If(r_start):
            m.d.sync += [r_busy.eq(1), r_k.eq(0), op.eq(v), res.eq(0),
                         one.eq(1 << (2 * (spec.sqrt_steps - 1)))]
            started.set(r_slot)
        with m.Elif(feed):
            m.d.sync += [r_busy.eq(0), r_slot.eq(next_slot(r_slot, slots))]
        with m.Elif(r_busy):
            trial = Signal(unsigned(spec.v_bits + 1))
            m.d.comb += trial.eq(res + one)
            with m.If(op >= trial):
                m.d.sync += [op.eq(op - trial), res.eq((res >> 1) + one)]
            with m.Else():
                m.d.sync += res.eq(res >> 1)
            m.d.sync += [one.eq(one >> 2), r_k.eq(r_k + 1)]
        root = Signal(unsigned((spec.v_bits + 1) // 2 + 1))
        m.d.comb += root.eq(res)
        r_valid, r_mant, r_exp, r_tags = reciprocal_pipeline(m, root, feed, {"slot": r_slot},
                                                             nl, "ln_recip")
        mant = [Signal(unsigned(p + 1), name=f"mant{s}") for s in range(slots)]
        rexp = [Signal(range(len(root) + 1), name=f"rexp{s}") for s in range(slots)]
        with m.If(r_valid):
            done.set(r_tags["slot"])
            for s in range(slots):
                with m.If(r_tags["slot"] == s):
                    m.d.sync += [mant[s].eq(r_mant), rexp[s].eq(r_exp)]

        # -- output: normalise; gamma, beta; output register ------------------------------------
        o = self.o_stream
        advance = ~o.valid | o.ready
        c = RowReader(slots, d, "c")
        c_issue = advance & (c.busy | done[c.slot])
        idx_now = c.index
        c_last = idx_now == d - 1
        m.d.comb += [br.addr.eq(c.slot * d + idx_now), gr.addr.eq(idx_now),
                     er.addr.eq(idx_now), br.en.eq(advance), gr.en.eq(advance),
                     er.en.eq(advance)]
        c.step(m, c_issue, c_last)
        with m.If(c_issue & c_last):
            full.clear(c.slot)
            started.clear(c.slot)
            done.clear(c.slot)
        v1, last1 = Signal(), Signal()
        s1_1 = Signal.like(s1_acc)
        mant1 = Signal.like(mant[0])
        exp1 = Signal.like(rexp[0])
        with m.If(advance):
            m.d.sync += [v1.eq(c_issue), last1.eq(c_last), s1_1.eq(select(c.slot, s1)),
                         mant1.eq(select(c.slot, mant)), exp1.eq(select(c.slot, rexp))]
        cval = Signal(signed(spec.s1_bits + spec.d_bits + 2))
        m.d.comb += cval.eq(d * br.data - s1_1)
        prod = Signal(signed(len(cval) + p + 2))
        m.d.comb += prod.eq(cval * mant1)
        n = round_shift_var(m, prod, (exp1 + p - nf)[:SHIFT_BITS], spec.rounding, "ln_n")
        v2, last2 = Signal(), Signal()
        n2 = Signal(signed(spec.norm_bits))
        g2, b2 = Signal.like(gr.data), Signal.like(er.data)
        with m.If(advance):
            m.d.sync += [v2.eq(v1), last2.eq(last1), n2.eq(n), g2.eq(gr.data),
                         b2.eq(er.data)]
        acc = Signal(signed(len(n2) + spec.mult_bits + beta_bits))
        m.d.comb += acc.eq(n2 * g2 + b2)
        y = round_shift_var(m, acc, self.shift, spec.rounding, "ln_y")
        y_sat = limit(m, y, spec.out_bits, True, "ln_sat")
        v3 = Signal()
        with m.If(advance):
            m.d.sync += [v3.eq(v2), o.payload.y.eq(y_sat), o.payload.last.eq(last2)]
        m.d.comb += o.valid.eq(v3)
        return m
