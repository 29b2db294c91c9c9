"""The streaming softmax unit: max, base-2 exp by table or polynomial, row sum, the shared
reciprocal, normalisation (the RTL of :mod:`cimforge.golden.softmax`)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from cimforge.config import SHIFT_BITS
from cimforge.golden.nonlinear import exp2_poly_coefficients, exp2_table
from cimforge.golden.softmax import SoftmaxSpec
from cimforge.hw.numerics import PackedArray, round_shift_var, select, tree_sum
from cimforge.hw.pipeline import RowReader, RowWriter, SlotFlags, next_slot, registers
from cimforge.hw.reciprocal import reciprocal_pipeline
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
    finished row into one of ``exp_slots`` exp rows (default 3): ``t = max(round((s - max)
    mult / 2^shift), exp_floor)``, ``2^frac(t)`` by table or polynomial, ``>> -int(t)``, the
    row sum, then the reciprocal pipeline of :mod:`cimforge.hw.reciprocal`; **normalise**
    reads an exp row whose reciprocal is known through a two-stage stall pipeline:
    ``p = min(round(e r prob_one / 2^(z + recip_bits)), prob_one)``.

    Latency: a row of ``n`` beats into an idle unit gives its first result ``2n + 7 +
    recip_steps`` cycles after its first beat is accepted. Throughput: one beat per cycle for
    rows of at least ``5 + recip_steps`` beats. The exact cycle model:
    :class:`cimforge.golden.softmax.SoftmaxTiming`.

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
        High in the cycle a beat's exp values are written to the exp buffer: 3 cycles after
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
        beat_max = low
        for lane in range(lanes):
            s = Mux(ib.keep[lane], ib.scores[lane], low)
            beat_max = Mux(s > beat_max, s, beat_max)
        beat_max_s = Signal(signed(spec.score_bits))
        m.d.comb += beat_max_s.eq(beat_max)
        row_max = Mux((a.count == 0) | (beat_max_s > a_max), beat_max_s, a_max)
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
        # -- exp: t = round((s - max) * mult / 2^shift), clamped at exp_floor ------------------
        floor_t = nl.exp_floor
        ts = []
        for lane in range(lanes):
            diff = Signal(signed(spec.score_bits + 1), name=f"d{lane}")
            m.d.comb += diff.eq(sa_r.data.scores[lane] - b1["max"])
            prod = Signal(signed(spec.score_bits + 1 + spec.mult_bits + 1), name=f"dm{lane}")
            m.d.comb += prod.eq(diff * self.mult)
            t = round_shift_var(m, prod, self.shift, spec.rounding, f"t{lane}")
            tc = Signal(signed((-floor_t).bit_length() + 1), name=f"tc{lane}")
            m.d.comb += tc.eq(Mux(t < floor_t, floor_t, t))
            ts.append(tc)
        carried = ("valid", "last", "first", "addr", "eslot", "beats")
        b2 = registers(m, {**{k: b1[k] for k in carried}, "keep": sa_r.data.keep,
                           **{f"t{i}": t for i, t in enumerate(ts)}}, "b2")
        # -- exp: 2^frac by table (a ROM, read in this stage) or polynomial -------------------
        fracs, shifts = [], []
        for lane in range(lanes):
            t = b2[f"t{lane}"]
            fracs.append(t.as_unsigned()[:fb])
            sh = Signal(range(eb + 1), name=f"n{lane}")
            m.d.comb += sh.eq(-(t >> fb))
            shifts.append(sh)
        vals = []
        if spec.exp_method == "lut":
            table = [int(v) for v in exp2_table(nl)]
            m.submodules.exp_rom = rom = Memory(shape=unsigned(eb), depth=len(table), init=table)
            for lane in range(lanes):
                rp = rom.read_port(transparent_for=())
                m.d.comb += [rp.addr.eq(fracs[lane]), rp.en.eq(1)]
                vals.append(rp.data)
        else:
            c1, c2 = exp2_poly_coefficients(nl)
            for lane in range(lanes):
                f = fracs[lane]
                inner = Signal(unsigned(eb + 1), name=f"poly_in{lane}")
                m.d.comb += inner.eq(c1 + ((c2 * f) >> fb))
                v = Signal(unsigned(eb), name=f"poly{lane}")
                m.d.sync += v.eq((1 << (eb - 1)) + ((f * inner) >> fb))
                vals.append(v)
        b3 = registers(m, {**{k: b2[k] for k in (*carried, "keep")},
                           **{f"n{i}": s for i, s in enumerate(shifts)}}, "b3")
        # -- exp: e = keep ? 2^frac >> n : 0; write; sum ---------------------------------------
        es = []
        for lane in range(lanes):
            e = Signal(unsigned(eb), name=f"e{lane}")
            m.d.comb += e.eq(Mux(b3["keep"][lane], vals[lane] >> b3[f"n{lane}"], 0))
            es.append(e)
        m.d.comb += [se_w.addr.eq(b3["addr"]), se_w.en.eq(b3["valid"])]
        m.d.comb += [se_w.data[lane].eq(e) for lane, e in enumerate(es)]
        m.d.comb += [self.probe_exp_valid.eq(b3["valid"]), self.probe_exp.eq(se_w.data)]
        total = Signal(unsigned(spec.sum_bits))
        row_sum = Signal(unsigned(spec.sum_bits))
        m.d.comb += row_sum.eq(Mux(b3["first"], 0, total) + tree_sum(es))
        with m.If(b3["valid"]):
            m.d.sync += total.eq(row_sum)

        # -- reciprocal of the row sum -----------------------------------------------------------
        r_valid, r_mant, r_exp, r_tags = reciprocal_pipeline(
            m, row_sum, b3["valid"] & b3["last"], {"eslot": b3["eslot"], "beats": b3["beats"]},
            nl, "recip")
        se_beats = [Signal(range(bmax + 1), name=f"se_beats{s}") for s in range(se_slots)]
        se_scale = [Signal(unsigned(p + 1 + spec.prob_bits), name=f"se_scale{s}")
                    for s in range(se_slots)]
        se_z = [Signal(range(spec.sum_bits + 1), name=f"se_z{s}") for s in range(se_slots)]
        with m.If(r_valid):
            se_ready.set(r_tags["eslot"])
            for s in range(se_slots):
                with m.If(r_tags["eslot"] == s):
                    m.d.sync += [se_beats[s].eq(r_tags["beats"]),
                                 se_scale[s].eq(r_mant * nl.prob_one), se_z[s].eq(r_exp)]

        # -- normalise: a two-stage stall pipeline ------------------------------------------------
        o = self.o_stream
        advance = ~o.valid | o.ready
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
        c1_valid, c1_last = Signal(), Signal()
        c1_scale, c1_z = Signal.like(se_scale[0]), Signal.like(se_z[0])
        with m.If(advance):
            m.d.sync += [c1_valid.eq(c_issue), c1_last.eq(c_last), c1_scale.eq(scale_now),
                         c1_z.eq(z_now)]
        out = Signal(softmax_out_layout(spec))
        for lane in range(lanes):
            prod = Signal(signed(eb + len(c1_scale) + 1), name=f"ps{lane}")
            m.d.comb += prod.eq(se_r.data[lane] * c1_scale)
            q = round_shift_var(m, prod, (c1_z + p)[:SHIFT_BITS], spec.rounding, f"pq{lane}")
            m.d.comb += out.probs[lane].eq(Mux(q > nl.prob_one, nl.prob_one, q))
        m.d.comb += out.last.eq(c1_last)
        o_valid = Signal()
        with m.If(advance):
            m.d.sync += [o_valid.eq(c1_valid), o.payload.eq(out)]
        m.d.comb += o.valid.eq(o_valid)
        return m
