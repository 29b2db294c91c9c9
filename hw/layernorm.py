"""The LayerNorm unit: integer statistics, digit-by-digit square root, the reciprocal's staged
Newton steps, programmed gamma and beta (the RTL of :mod:`cimforge.golden.layernorm`)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from cimforge.config import SHIFT_BITS
from cimforge.golden.layernorm import LayerNormSpec, LayerNormTiming
from cimforge.golden.nonlinear import ln_beta_bits
from cimforge.hw.numerics import (
    carry_save_sum,
    clamp_shift,
    partial_products,
    round_shift_var_staged,
    saturate_sum,
    select,
)
from cimforge.hw.pipeline import RowReader, RowWriter, SlotFlags, next_slot, registers
from cimforge.hw.reciprocal import newton_steps_staged
from cimforge.hw.spec_unit import SpecUnit

__all__ = ["LayerNorm", "ln_out_layout"]


def ln_out_layout(spec: LayerNormSpec) -> data.StructLayout:
    """One output, fields from bit 0 up: ``y`` (signed ``out_bits``), ``last`` (the row's last
    value)."""
    return data.StructLayout({"y": signed(spec.out_bits), "last": 1})


class LayerNorm(SpecUnit):
    """Integer LayerNorm over rows of ``d`` values, one value per cycle
    (:func:`cimforge.golden.nonlinear.layer_norm`).

    Three stages around ``spec.slots`` row buffers (default 3), each cut so that a path holds
    at most one multiplier or one wide carry chain (ECP5, tiny: about 126 MHz):

    * **collect** writes the row and, three registers behind the input, sums ``S1`` and
      ``V = d S2 - S1^2`` itself: a value ``h`` adds ``h g`` with ``g = (d - 1) h - 2 S1``
      (``S1`` of the values before it): ``g``; ``h g`` as partial products (17-bit slices of
      ``g``, a multiplier each); their sum into ``V``.
    * **statistics** takes summed rows in order: ``V`` loaded (a cycle), the square root by
      the digit-by-digit method (``sqrt_steps`` cycles: two bits of ``V`` into the remainder
      and one compare-subtract of ``sqrt_steps + 3`` bits a cycle, no multiplier), the
      reciprocal's normalisation done on the way (the root's bits from its leading one
      written into the mantissa); then the seed and three stages a Newton step
      (:func:`cimforge.hw.reciprocal.newton_steps_staged`, overlapping the next row).
    * **output** reads the row again through a 9-stage stall pipeline: read; ``c = d h_i -
      S1``; ``c r`` as partial products; their sum and the rounding shift by ``z + p - nf``
      by its high bits; by its low bits (``n``); ``n gamma_i``; ``+ beta_i`` and the rounding
      shift by ``shift`` by its high bits; by its low bits; saturate. A row may start one
      cycle before its reciprocal is written: the first value takes it at its second stage.

    Latency: a row's first result ``d + sqrt_steps + max(1, 3 recip_steps) + 13`` cycles
    after its first value into an idle unit (tiny: 71); throughput one value per cycle for
    rows of at least ``sqrt_steps + max(1, 3 recip_steps) + 4`` values (tiny: 30). The exact
    cycle model: :class:`cimforge.golden.layernorm.LayerNormTiming`.

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
        n_steps = spec.sqrt_steps
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

        # -- collect: the row into its slot; S1, and V accumulated ------------------------------
        # V_k - V_(k-1) = d h^2 - (S1 + h)^2 + S1^2 = h g with g = (d - 1) h - 2 S1 (S1 of the
        # values before h): one product per value, V exact at the row's end (no S2, no S1^2).
        h = self.i_stream.payload
        a = RowWriter(slots, d, "a")
        full = SlotFlags(m, slots, "full")
        m.d.comb += self.i_stream.ready.eq(~full[a.slot])
        take = self.i_stream.valid & self.i_stream.ready
        m.d.comb += [bw.addr.eq(a.addr), bw.data.eq(h), bw.en.eq(take)]
        a_end = a.count == d - 1
        a.step(m, take, a_end)
        with m.If(take & a_end):
            full.set(a.slot)
        c1 = registers(m, {"v": take, "h": h, "end": a_end, "slot": a.slot}, "ln_c1")
        # 1: S1 (the row's sum, kept per slot for the output stage) and g
        s1_acc = Signal(signed(spec.s1_bits))
        s1 = [Signal(signed(spec.s1_bits), name=f"s1_{s}") for s in range(slots)]
        s1_new = Signal.like(s1_acc)
        m.d.comb += s1_new.eq(s1_acc + c1["h"])
        with m.If(c1["v"]):
            with m.If(c1["end"]):
                m.d.sync += s1_acc.eq(0)
                for s in range(slots):
                    with m.If(c1["slot"] == s):
                        m.d.sync += s1[s].eq(s1_new)
            with m.Else():
                m.d.sync += s1_acc.eq(s1_new)
        g = Signal(signed(spec.g_bits))
        m.d.comb += g.eq(_times(c1["h"], d - 1) - (s1_acc << 1))
        c2 = registers(m, {"v": c1["v"], "h": c1["h"], "g": g, "end": c1["end"],
                           "slot": c1["slot"]}, "ln_c2")
        # 2: h g as partial products (17-bit slices of g, one multiplier each)
        parts = partial_products(c2["g"], c2["h"])
        c3 = registers(m, {"v": c2["v"], "end": c2["end"], "slot": c2["slot"],
                           **{f"pp{i}": pp for i, (_, pp) in enumerate(parts)}}, "ln_c3")
        # 3: V += h g; at the row's end V into its slot
        v_acc = Signal(unsigned(spec.v_bits))
        v_new = carry_save_sum(m, [v_acc, *(c3[f"pp{i}"] << off
                                            for i, (off, _) in enumerate(parts))],
                               spec.v_bits + 1, "ln_v")
        summed = SlotFlags(m, slots, "summed")
        v = [Signal(unsigned(2 * n_steps), name=f"v_{s}") for s in range(slots)]
        with m.If(c3["v"]):
            with m.If(c3["end"]):
                m.d.sync += v_acc.eq(0)
                summed.set(c3["slot"])
                for s in range(slots):
                    with m.If(c3["slot"] == s):
                        m.d.sync += v[s].eq(v_new)
            with m.Else():
                m.d.sync += v_acc.eq(v_new)

        # -- statistics: square root, reciprocal --------------------------------------------------
        # The root digit by digit, a bit a cycle: two bits of V shifted into the remainder,
        # the trial (root << 2) | 1 subtracted where it fits (a compare of sqrt_steps + 3
        # bits). The reciprocal's normalisation rides along: the root's bits from its leading
        # one are written into the mantissa from bit p down (z = bitlen(root) - 1).
        started = SlotFlags(m, slots, "started")
        done = SlotFlags(m, slots, "done")
        r_busy = Signal()
        r_slot = Signal(range(slots))
        r_k = Signal(range(n_steps + 1))
        vsh = Signal(unsigned(2 * n_steps))
        rem = Signal(unsigned(n_steps + 1))
        root = Signal(unsigned(n_steps))
        blen = Signal(range(n_steps + 1))  # bit length of the root so far
        mant_m = Signal(unsigned(p + 1))
        r_fed = Signal()  # the steps are done: r_k == sqrt_steps, registered
        r_start = ~r_busy & summed[r_slot] & ~started[r_slot]
        feed = r_busy & r_fed
        # a step's compare, outside the conditions below: a comb assignment inside one is
        # conditional itself and would put the step's control in front of the carry chain
        cur = Signal(unsigned(n_steps + 3))
        diff = Signal(signed(n_steps + 4))
        m.d.comb += [cur.eq(Cat(vsh[-2:], rem)), diff.eq(cur - Cat(Const(1, 2), root))]
        bit = ~diff[-1]
        with m.If(r_start):
            m.d.sync += [r_busy.eq(1), r_k.eq(0), r_fed.eq(0), vsh.eq(select(r_slot, v)),
                         rem.eq(0), root.eq(0), blen.eq(0), mant_m.eq(0)]
            started.set(r_slot)
        with m.Elif(feed):
            m.d.sync += [r_busy.eq(0), r_fed.eq(0), r_slot.eq(next_slot(r_slot, slots))]
        with m.Elif(r_busy):
            # only multiplexers by the new bit follow the compare
            m.d.sync += [rem.eq(Mux(bit, diff, cur)), root.eq(Cat(bit, root[:-1])),
                         vsh.eq(vsh << 2), r_k.eq(r_k + 1), r_fed.eq(r_k == n_steps - 1),
                         blen.eq(Mux((blen != 0) | bit, blen + 1, blen))]
            for j in range(p + 1):
                if p - j <= n_steps:
                    with m.If(blen == p - j):
                        m.d.sync += mant_m[j].eq(bit)
        stages, r_mant = newton_steps_staged(
            m, {"valid": feed, "m": mant_m, "blen": blen, "slot": r_slot}, nl, "ln_recip")
        last = stages[-1]
        # the root's exponent z = bitlen - 1 (0 for a zero root) and the normalising shift
        # z + p - nf, from the bit length the stages carried. A zero root's reciprocal is 0 in
        # golden; here it is the seed's result, unused: a zero root is V = 0, a constant row,
        # whose every c_i = d h_i - S1 is 0, so c_i r = 0 all the same (and no multiplexer
        # follows the last multiplier)
        zero = last["blen"] == 0
        nshift = Signal(range(n_steps + p - nf), name="ln_nshift_row")
        m.d.comb += nshift.eq(Mux(zero, 0, last["blen"] - 1) + (p - nf))
        mant = [Signal(unsigned(p + 1), name=f"mant{s}") for s in range(slots)]
        nsh = [Signal.like(nshift, name=f"nshift{s}") for s in range(slots)]
        with m.If(last["valid"]):
            for s in range(slots):
                with m.If(last["slot"] == s):
                    m.d.sync += [mant[s].eq(r_mant), nsh[s].eq(nshift)]
        # a row may start out one cycle before its reciprocal is written: its first value
        # takes the reciprocal at the output's second stage
        early = stages[-2] if len(stages) > 1 else {"valid": feed, "slot": r_slot}
        with m.If(early["valid"]):
            done.set(early["slot"])

        # -- output: a 9-stage stall pipeline ------------------------------------------------
        o = self.o_stream
        advance = Signal()
        m.d.comb += advance.eq(~o.valid | o.ready)
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
            summed.clear(c.slot)
            started.clear(c.slot)
            done.clear(c.slot)
        valid = c_issue
        depth = 0

        def stage(values: dict) -> dict:
            nonlocal valid, depth
            out = {"valid": Signal(name=f"ln_o{depth}_valid")}
            with m.If(advance):
                m.d.sync += out["valid"].eq(valid)
                for key, value in values.items():
                    reg = Signal(value.shape(), name=f"ln_o{depth}_{key}")
                    m.d.sync += reg.eq(value)
                    out[key] = reg
            valid = out["valid"]
            depth += 1
            return out

        # 1: read h, gamma, beta; the row's S1
        s = stage({"last": c_last, "slot": c.slot, "s1": select(c.slot, s1)})
        # 2: c = d h - S1; the row's reciprocal and normalising shift
        cval = Signal(signed(spec.s1_bits + spec.d_bits + 2))
        m.d.comb += cval.eq(_times(br.data, d) - s["s1"])
        s = stage({"last": s["last"], "c": cval, "mant": select(s["slot"], mant),
                   "nshift": select(s["slot"], nsh), "g": gr.data, "b": er.data})
        keep = ("last", "g", "b")
        # 3: c r as partial products (17-bit slices of c, one multiplier each)
        parts = partial_products(s["c"], s["mant"])
        s = stage({**{f"pp{i}": pp for i, (_, pp) in enumerate(parts)},
                   "nshift": s["nshift"], **{k: s[k] for k in keep}})
        # 4, 5: their sum, and n = round(c r / 2^(z + p - nf)) by the shift's high bits, then
        # its low bits
        prod_bits = len(cval) + p + 2
        prod = carry_save_sum(m, [s[f"pp{i}"] << off for i, (off, _) in enumerate(parts)],
                              prod_bits, "ln_prod")
        nshift = clamp_shift(m, s["nshift"], prod_bits, "ln_nshift")
        q, up, s = round_shift_var_staged(m, stage, prod, nshift, spec.rounding, "ln_n",
                                          {k: s[k] for k in keep})
        n = Signal(signed(spec.norm_bits))
        m.d.comb += n.eq(q + up)
        s = stage({"n": n, **{k: s[k] for k in keep}})
        # 6: n gamma
        s = stage({"ng": s["n"] * s["g"], "b": s["b"], "last": s["last"]})
        # 7, 8: + beta and round by shift, its high bits, then its low bits
        acc = Signal(signed(max(len(s["ng"]), beta_bits) + 1))
        m.d.comb += acc.eq(s["ng"] + s["b"])
        shift = clamp_shift(m, self.shift, len(acc), "ln_shift")
        q, up, s = round_shift_var_staged(m, stage, acc, shift, spec.rounding, "ln_y",
                                          {"last": s["last"]})
        s = stage({"q": q, "up": up, "last": s["last"]})
        # 9: saturate: the output register
        y = saturate_sum(m, s["q"], s["up"], spec.out_bits, "ln_sat")
        s = stage({"y": y, "last": s["last"]})
        assert depth == LayerNormTiming.OUT_DEPTH
        m.d.comb += [o.valid.eq(s["valid"]), o.payload.y.eq(s["y"]),
                     o.payload.last.eq(s["last"])]
        return m


def _times(value, k: int):
    """``value * k`` for a constant ``k >= 0`` as shifted copies of ``value`` (one per set bit
    of ``k``): adders, not a multiplier."""
    value = Value.cast(value)
    terms = [value << b for b in range(k.bit_length()) if k >> b & 1]
    return sum(terms[1:], terms[0]) if terms else Const(0)
