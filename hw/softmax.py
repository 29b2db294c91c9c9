"""The streaming softmax unit: max, base-2 exp by table or polynomial, row sum, the shared
reciprocal, normalisation (the RTL of :mod:`cimforge.golden.softmax`)."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from cimforge.config import SHIFT_BITS
from cimforge.golden.nonlinear import exp2_poly_coefficients, exp2_table
from cimforge.golden.softmax import SoftmaxSpec, SoftmaxTiming
from cimforge.hw.numerics import (
    PackedArray,
    carry_save_sum,
    clamp_shift,
    partial_products,
    round_shift_var_staged,
    saturate_sum_unsigned,
    select,
    tree_sum,
)
from cimforge.hw.pipeline import RowReader, RowWriter, SlotFlags, next_slot, registers
from cimforge.hw.reciprocal import reciprocal_pipeline_staged, reciprocal_staged_depth
from cimforge.hw.spec_unit import SpecUnit

__all__ = ["Softmax", "softmax_in_layout", "softmax_out_layout"]


def softmax_in_layout(spec: SoftmaxSpec) -> data.StructLayout:
    """One beat, fields from bit 0 up: ``scores`` (``lanes`` x signed ``score_bits``, lane 0
    lowest), ``keep`` (a bit per lane, 0: masked), ``last`` (the beat ends a row)."""
    return data.StructLayout({
        "scores": PackedArray(signed(spec.score_bits), spec.lanes),
        "keep": spec.lanes,
        "last": 1,
    })


def softmax_out_layout(spec: SoftmaxSpec) -> data.StructLayout:
    """One beat, fields from bit 0 up: ``probs`` (``lanes`` x unsigned ``prob_bits``, lane 0
    lowest; ``2^prob_bits - 1`` means 1), ``last``."""
    return data.StructLayout({
        "probs": PackedArray(unsigned(spec.prob_bits), spec.lanes),
        "last": 1,
    })


class Softmax(SpecUnit):
    """Streaming softmax: rows of up to ``max_len`` scores, ``lanes`` per beat.

    ``i_stream`` beats carry ``lanes`` signed scores, a keep bit per lane and ``last``;
    ``o_stream`` gives one beat per input beat: ``lanes`` probabilities
    (:func:`cimforge.golden.nonlinear.softmax`, masked lanes 0) and ``last``. A row ends at a
    beat with ``last`` or at its ``beats_max``-th beat.

    Three stages with row buffers between them: **collect** writes beats into one of
    ``score_slots`` score rows (default 2) and tracks the row's maximum; **exp** reads a
    finished row into one of ``exp_slots`` exp rows (default 4): ``t = max(round((s - max)
    mult / 2^shift), exp_floor)``, ``2^frac(t)`` by table or polynomial, ``>> -int(t)``, the
    row sum, then the reciprocal pipeline of :mod:`cimforge.hw.reciprocal`; **normalise**
    reads an exp row whose reciprocal is known through a five-stage stall pipeline:
    ``p = min(round(e r prob_one / 2^(z + recip_bits)), prob_one)``.

    Cut for timing (at most about one unregistered 18x18 multiplier's path a cycle): the exp
    stage takes 7 registered stages from the score read to the write of the exp values
    (``s - max``; ``* mult`` as partial products of 17-bit slices, one multiplier each; their
    sum; the rounding shift by the shift's high bits; by its low two bits, with the table's
    address and ``-int(t)``; the table's data, registered; ``>> -int(t)``, write, sum), the
    row sum is registered, the reciprocal takes ``2 + 3 recip_steps`` stages
    (:func:`cimforge.hw.reciprocal.reciprocal_pipeline_staged`), and the normalise pipeline
    has 5 (read; ``e * scale`` as partial products; their sum; the rounding shift in two
    steps, rounding and the cap).

    Latency: a row of ``n`` beats into an idle unit gives its first result ``2n + 15 +
    3 recip_steps`` cycles after its first beat is accepted. Throughput: one beat per cycle for
    rows of at least ``ceil((10 + 3 recip_steps) / 2)`` beats (8 with two Newton steps) with
    the default slots. The exact cycle model: :class:`cimforge.golden.softmax.SoftmaxTiming`.

    Parameters
    ----------
    spec : SoftmaxSpec

    Members
    -------
    i_stream : In(stream.Signature(softmax_in_layout(spec)))
        Score beats.
    o_stream : Out(stream.Signature(softmax_out_layout(spec)))
        Probability beats, one per score beat, in order.
    mult : In(unsigned(mult_bits))
        The scale of a score step times ``log2 e`` and ``2^exp_frac_bits``
        (:func:`cimforge.golden.nonlinear.softmax_multiplier`); held while rows are in
        flight.
    shift : In(unsigned(SHIFT_BITS))
        Its shift, 0 .. ``MAX_SHIFT``; held likewise.
    probe_exp_valid : Out(1)
        High in the cycle a beat's exp values are written to the exp buffer: 7 cycles after
        the exp stage reads the beat (``probe_exp`` then holds them).
    probe_exp : Out(PackedArray(unsigned(exp_bits), lanes))
        Observation: the beat's exp values, masked lanes 0, for a bench to check every table
        entry.
    """

    _spec_cls = SoftmaxSpec

    def __init__(self, spec: SoftmaxSpec):
        super().__init__(spec, {
            "i_stream": In(stream.Signature(softmax_in_layout(spec))),
            "o_stream": Out(stream.Signature(softmax_out_layout(spec))),
            "mult": In(unsigned(spec.mult_bits)),
            "shift": In(unsigned(SHIFT_BITS)),
            "probe_exp_valid": Out(1),
            "probe_exp": Out(PackedArray(unsigned(spec.exp_bits), spec.lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        nl = spec.nonlinear
        lanes, bmax = spec.lanes, spec.beats_max
        sa_slots, se_slots = spec.score_slots, spec.exp_slots
        fb, eb, p = spec.exp_frac_bits, spec.exp_bits, spec.recip_bits
        low = -(1 << (spec.score_bits - 1))

        # -- buffers ------------------------------------------------------------------------
        sa_layout = data.StructLayout({
            "scores": PackedArray(signed(spec.score_bits), lanes), "keep": lanes})
        m.submodules.sa = sa = Memory(shape=sa_layout, depth=sa_slots * bmax, init=[])
        sa_w, sa_r = sa.write_port(), sa.read_port(transparent_for=())
        e_shape = PackedArray(unsigned(eb), lanes)
        m.submodules.se = se = Memory(shape=e_shape, depth=se_slots * bmax, init=[])
        se_w = se.write_port()
        se_r = se.read_port(transparent_for=())

        # -- collect --------------------------------------------------------------------------
        ib = self.i_stream.payload
        a = RowWriter(sa_slots, bmax, "a")
        sa_full = SlotFlags(m, sa_slots, "sa_full")
        sa_beats = [Signal(range(bmax + 1), name=f"sa_beats{s}") for s in range(sa_slots)]
        sa_max = [Signal(signed(spec.score_bits), name=f"sa_max{s}") for s in range(sa_slots)]
        a_max = Signal(signed(spec.score_bits))
        m.d.comb += self.i_stream.ready.eq(~sa_full[a.slot])
        take = self.i_stream.valid & self.i_stream.ready
        beat_max = None  # (lane 0's masked score is low already: no compare with it)
        for lane in range(lanes):
            s = Mux(ib.keep[lane], ib.scores[lane], low)
            beat_max = s if beat_max is None else Mux(s > beat_max, s, beat_max)
        beat_max_s = Signal(signed(spec.score_bits))
        m.d.comb += beat_max_s.eq(beat_max)
        # beat_max > a_max iff a kept lane's score is: each lane compared with a_max straight
        # from the input (in parallel, no multiplexer before the compare), in two halves
        # whose carry chains run side by side (one of the whole width is long enough that
        # nextpnr splits it on an ECP5)
        half = spec.score_bits // 2
        a_hi, a_lo = a_max[half:].as_signed(), a_max[:half]

        def greater(v):
            v_hi, v_lo = v[half:].as_signed(), v[:half]
            return (v_hi > a_hi) | ((v_hi == a_hi) & (v_lo > a_lo))

        above = Cat(*(ib.keep[lane] & greater(ib.scores[lane]) for lane in range(lanes)))
        row_max = Mux((a.count == 0) | above.any(), beat_max_s, a_max)
        a_end = ib.last | (a.count == bmax - 1)
        m.d.comb += [sa_w.addr.eq(a.addr), sa_w.en.eq(take),
                     sa_w.data.scores.eq(ib.scores), sa_w.data.keep.eq(ib.keep)]
        a.step(m, take, a_end)
        with m.If(take):
            m.d.sync += a_max.eq(row_max)
            with m.If(a_end):
                sa_full.set(a.slot)
                for s in range(sa_slots):
                    with m.If(a.slot == s):
                        m.d.sync += [sa_beats[s].eq(a.count + 1), sa_max[s].eq(row_max)]

        # -- exp: issue ---------------------------------------------------------------------
        b = RowReader(sa_slots, bmax, "b")
        b_eslot = Signal(range(se_slots))  # the exp row this score row goes to
        se_owned = SlotFlags(m, se_slots, "se_owned")
        se_ready = SlotFlags(m, se_slots, "se_ready")
        b_start = ~b.busy & sa_full[b.slot] & ~se_owned[b_eslot]
        b_issue = b.busy | b_start
        beats_now = b.hold(select(b.slot, sa_beats), "beats")
        max_now = b.hold(select(b.slot, sa_max), "max")
        idx_now = b.index
        b_last = idx_now == beats_now - 1
        m.d.comb += [sa_r.addr.eq(b.slot * bmax + idx_now), sa_r.en.eq(1)]
        with m.If(b_start):
            se_owned.set(b_eslot)
        b.step(m, b_issue, b_last)
        with m.If(b_issue & b_last):
            m.d.sync += b_eslot.eq(next_slot(b_eslot, se_slots))
            sa_full.clear(b.slot)

        b1 = registers(m, {"valid": b_issue, "last": b_last, "first": idx_now == 0,
                           "max": max_now, "addr": b_eslot * bmax + idx_now, "eslot": b_eslot,
                           "beats": beats_now}, "b1")
        # The exp stage is a pipeline of plain registers (it never waits: a row starts only
        # when its exp row is free, then streams). Cycle 0 is the issue (the score read).
        carried = ("valid", "last", "first", "addr", "eslot", "beats", "keep")
        lane_range = range(lanes)

        def on(st, **values):
            return {**{k: st[k] for k in carried}, **values}

        # 1: d = s - max, signed score_bits + 1
        st = registers(m, {**{k: b1[k] for k in carried if k != "keep"},
                           "keep": sa_r.data.keep,
                           **{f"d{i}": sa_r.data.scores[i] - b1["max"] for i in lane_range}},
                       "b2")
        # 2: d * mult as partial products (17-bit slices of d, one 18x18 multiplier each)
        parts = [partial_products(st[f"d{i}"], self.mult) for i in lane_range]
        st = registers(m, on(st, **{f"pp{i}_{j}": pp for i in lane_range
                                    for j, (_, pp) in enumerate(parts[i])}), "b3")
        # 3: their sum x = d * mult; the shift, limited to x's width
        x_bits = spec.score_bits + 1 + spec.mult_bits
        xs = {f"x{i}": carry_save_sum(m, [st[f"pp{i}_{j}"] << off
                                          for j, (off, _) in enumerate(parts[i])],
                                      x_bits, f"x{i}") for i in lane_range}
        st = registers(m, on(st, **xs, shift=clamp_shift(m, self.shift, x_bits, "x_shift")),
                       "b4")
        xs = {k: st[k] for k in xs}
        # 4, 5: t = rs(x, shift) in two steps (the shift's high bits, then its low bits and the
        # rounding's increment: t = q + up), then split into the table's address and the
        # right shift. t <= 0 (d <= 0); golden clamps it at exp_floor = -E 2^F, where
        # 2^frac >> -floor(t) is already 0, as it is for any t < -(E - 1) 2^F: so the RTL
        # only flags those (``zero``) and takes frac and n = -floor(t) from q's low bits.
        # n is exact modulo 2^bitlen(E) and below E where it counts.
        qs, ups = [], []
        for i in lane_range:
            q, up, c = round_shift_var_staged(m, lambda v, i=i: registers(m, v, f"b5_{i}"),
                                              xs[f"x{i}"], st["shift"], spec.rounding,
                                              f"t{i}", on(st) if i == 0 else {},
                                              fine_bits=2)  # 2 bits: the ROM address is next
            qs.append(q)
            ups.append(up)
            if i == 0:
                after = c
        st = after
        n_bits = eb.bit_length()
        low_t = -((eb - 1) << fb)
        fracs, splits = [], {}
        for i, (q, up) in enumerate(zip(qs, ups)):
            frac = Signal(unsigned(fb), name=f"frac{i}")
            frac_up = Signal(unsigned(fb), name=f"frac_up{i}")  # beside up, not after it
            m.d.comb += [frac_up.eq(q[:fb] + 1), frac.eq(Mux(up, frac_up, q[:fb]))]
            fracs.append(frac)
            wrap = q[:fb].all() & up  # frac's carry into floor(t)
            h = Signal(unsigned(n_bits), name=f"h{i}")  # floor(q / 2^F), its low bits
            m.d.comb += h.eq(q >> fb)
            n = Signal(unsigned(n_bits), name=f"n{i}")
            m.d.comb += n.eq(~h + ~wrap)  # -(h + wrap)
            zero = Mux(up, q < low_t - 1, q < low_t)  # q + up < low_t
            splits[f"n{i}"] = n
            splits[f"kill{i}"] = zero | ~st["keep"][i]
        st = registers(m, on(st, **splits), "b6")
        # 6: 2^frac: the ROM's data (its output is slow, over half a cycle on an ECP5: only a
        # register after it), or the polynomial's second product
        vals = {}
        if spec.exp_method == "lut":
            table = [int(v) for v in exp2_table(nl)]
            m.submodules.exp_rom = rom = Memory(shape=unsigned(eb), depth=len(table), init=table)
            for i, f in enumerate(fracs):
                rp = rom.read_port(transparent_for=())  # addressed in 5, data in 6
                m.d.comb += [rp.addr.eq(f), rp.en.eq(1)]
                vals[f"v{i}"] = rp.data
        else:
            c1, c2 = exp2_poly_coefficients(nl)
            for i, f in enumerate(fracs):
                inner = Signal(unsigned(eb + 1), name=f"poly_in{i}")
                m.d.comb += inner.eq(c1 + ((c2 * f) >> fb))
                f6, inner6 = Signal.like(f), Signal.like(inner)  # registered in 5, used in 6
                m.d.sync += [f6.eq(f), inner6.eq(inner)]
                v = Signal(unsigned(eb), name=f"poly{i}")
                m.d.comb += v.eq((1 << (eb - 1)) + ((f6 * inner6) >> fb))
                vals[f"v{i}"] = v
        st = registers(m, on(st, **vals, **{k: st[k] for k in splits}), "b7")
        assert SoftmaxTiming.EXP_DEPTH == 7  # b1 .. b7
        # 7: e = 2^frac >> n, 0 where killed (t below the range, or a masked lane); write; sum
        es = []
        for i in lane_range:
            e = Signal(unsigned(eb), name=f"e{i}")
            m.d.comb += e.eq(Mux(st[f"kill{i}"], 0, st[f"v{i}"] >> st[f"n{i}"]))
            es.append(e)
        m.d.comb += [se_w.addr.eq(st["addr"]), se_w.en.eq(st["valid"])]
        m.d.comb += [se_w.data[lane].eq(e) for lane, e in enumerate(es)]
        m.d.comb += [self.probe_exp_valid.eq(st["valid"]), self.probe_exp.eq(se_w.data)]
        total = Signal(unsigned(spec.sum_bits))
        with m.If(st["valid"]):
            m.d.sync += total.eq(Mux(st["first"], 0, total) + tree_sum(es))
        ends = registers(m, {"valid": st["valid"] & st["last"], "eslot": st["eslot"],
                             "beats": st["beats"]}, "sum")

        # -- reciprocal of the row sum (in ``total`` the cycle after the row's last beat) -------
        r_valid, r_mant, r_exp, r_tags = reciprocal_pipeline_staged(
            m, total, ends["valid"], {"eslot": ends["eslot"], "beats": ends["beats"]}, nl,
            "recip")
        assert 1 + reciprocal_staged_depth(spec.recip_steps) == spec.timing.recip_depth
        se_beats = [Signal(range(bmax + 1), name=f"se_beats{s}") for s in range(se_slots)]
        se_scale = [Signal(unsigned(p + 1 + spec.prob_bits), name=f"se_scale{s}")
                    for s in range(se_slots)]
        se_z = [Signal(range(spec.sum_bits + 1), name=f"se_z{s}") for s in range(se_slots)]
        with m.If(r_valid):
            se_ready.set(r_tags["eslot"])
            for s in range(se_slots):
                with m.If(r_tags["eslot"] == s):
                    m.d.sync += [se_beats[s].eq(r_tags["beats"]),
                                 # r * one, one = 2^B - 1: a subtraction (no multiplier)
                                 se_scale[s].eq((r_mant << spec.prob_bits) - r_mant),
                                 se_z[s].eq(r_exp)]

        # -- normalise: a stall pipeline -----------------------------------------------------------
        o = self.o_stream
        advance = ~o.valid | o.ready

        def stage(values: dict, prefix: str) -> dict:
            """Registers that load only when the pipeline advances."""
            out = {}
            with m.If(advance):
                for key, v in values.items():
                    reg = Signal(Value.cast(v).shape(), name=f"{prefix}_{key}")
                    m.d.sync += reg.eq(v)
                    out[key] = reg
            return out

        c = RowReader(se_slots, bmax, "c")
        c_start = ~c.busy & se_ready[c.slot]
        c_issue = advance & (c.busy | c_start)
        cbeats_now = c.hold(select(c.slot, se_beats), "beats")
        scale_now = c.hold(select(c.slot, se_scale), "scale")
        z_now = c.hold(select(c.slot, se_z), "z")
        c_last = c.index == cbeats_now - 1
        m.d.comb += [se_r.addr.eq(c.slot * bmax + c.index), se_r.en.eq(advance)]
        c.step(m, c_issue, c_last)
        with m.If(c_issue & c_last):
            se_ready.clear(c.slot)
            se_owned.clear(c.slot)
        # 1: the exp read; y = e * scale as partial products (17-bit slices of scale); the
        # shift z + P, limited to y's width
        st = stage({"valid": c_issue, "last": c_last, "scale": scale_now, "z": z_now}, "c1")
        y_bits = eb + len(se_scale[0]) + 1
        parts = [partial_products(st["scale"], se_r.data[i]) for i in lane_range]
        zp = Signal(unsigned(SHIFT_BITS), name="c_shift")  # SoftmaxSpec keeps it below 64
        m.d.comb += zp.eq(st["z"] + p)
        st = stage({"valid": st["valid"], "last": st["last"],
                    "shift": clamp_shift(m, zp, y_bits, "c_shift_limited"),
                    **{f"pp{i}_{j}": pp for i in lane_range
                       for j, (_, pp) in enumerate(parts[i])}}, "c2")
        # 2: their sum
        ys = {f"y{i}": carry_save_sum(m, [st[f"pp{i}_{j}"] << off
                                          for j, (off, _) in enumerate(parts[i])],
                                      y_bits, f"y{i}") for i in lane_range}
        st = stage({"valid": st["valid"], "last": st["last"], "shift": st["shift"], **ys},
                   "c3")
        # 3, 4: p = min(rs(y, z + P), one) in two steps (y >= 0: only the top can bite)
        out = Signal(softmax_out_layout(spec))
        shift3, carry = st["shift"], {"valid": st["valid"], "last": st["last"]}
        for i in lane_range:
            q, up, c4 = round_shift_var_staged(m, lambda v, i=i: stage(v, f"c4_{i}"),
                                               st[f"y{i}"], shift3, spec.rounding, f"pq{i}",
                                               carry if i == 0 else {})
            if i == 0:
                carry = c4
            m.d.comb += out.probs[i].eq(saturate_sum_unsigned(m, q, up, spec.prob_bits,
                                                              f"p{i}"))
        m.d.comb += out.last.eq(carry["last"])
        o_valid = Signal()
        with m.If(advance):
            m.d.sync += [o_valid.eq(carry["valid"]), o.payload.eq(out)]
        m.d.comb += o.valid.eq(o_valid)
        return m
