"""CMOS non-linear units (the RTL of :mod:`golden.nonlinear_units`): requantiser, GELU/ReLU,
softmax, LayerNorm and per-token scaling, each with ``amaranth.lib.stream`` ports and
back-pressure."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from golden.nonlinear import (
    exp2_poly_coefficients,
    exp2_table,
    ln_beta_bits,
    recip_seed_table,
)
from golden.nonlinear_units import (
    LN_SLOTS,
    SA_SLOTS,
    SE_SLOTS,
    TQ_SLOTS,
    ActivationSpec,
    LayerNormSpec,
    RequantSpec,
    SoftmaxSpec,
    TokenQuantSpec,
)
from hw.numerics import limit, round_shift_var, select, tree_sum

__all__ = ["StallPipeline", "Requantizer", "requant_in_layout", "Softmax", "softmax_in_layout",
           "softmax_out_layout", "reciprocal_pipeline", "Activation", "LayerNorm",
           "ln_out_layout", "TokenQuantizer", "token_quant_out_layout"]

SHIFT_BITS = 6  # every variable right shift: 0 .. 63


class StallPipeline:
    """Registered stages that advance together unless the last holds a result the sink does
    not take: ``i_ready = ~o_valid | o_ready`` (:class:`golden.nonlinear_units.PipelineTiming`).

    ``stage(values)`` registers a dict of values into the next stage and returns the
    registered signals; ``finish(o_stream, payload)`` drives the output stream."""

    def __init__(self, m: Module, i_stream, o_stream, name: str):
        self.m = m
        self.o_stream = o_stream
        self.advance = Signal(name=f"{name}_advance")
        self._valid = i_stream.valid
        self._name = name
        self._depth = 0
        m.d.comb += [self.advance.eq(~o_stream.valid | o_stream.ready),
                     i_stream.ready.eq(self.advance)]

    def stage(self, values: dict) -> dict:
        m, k = self.m, self._depth
        valid = Signal(name=f"{self._name}_v{k}")
        out = {}
        with m.If(self.advance):
            m.d.sync += valid.eq(self._valid)
            for key, value in values.items():
                shape = value.shape() if hasattr(value, "shape") else unsigned(1)
                reg = Signal(shape, name=f"{self._name}_s{k}_{key}")
                m.d.sync += reg.eq(value)
                out[key] = reg
        self._valid = valid
        self._depth += 1
        return out

    @property
    def depth(self) -> int:
        return self._depth

    def finish(self, payload) -> None:
        self.m.d.comb += [self.o_stream.valid.eq(self._valid), self.o_stream.payload.eq(payload)]


class _Unit(wiring.Component):
    """A unit made from a spec (``_spec_cls``): ``spec``, and ``timing``, the spec's cycle
    model."""

    _spec_cls: type

    def __init__(self, spec, members: dict):
        if not isinstance(spec, self._spec_cls):
            raise TypeError(f"spec must be a {self._spec_cls.__name__}, not {spec!r}")
        self._spec = spec
        super().__init__(members)

    @property
    def spec(self):
        return self._spec

    @property
    def timing(self):
        return self._spec.timing


def _registers(m: Module, values: dict, prefix: str) -> dict:
    """A register per value (same shape; one-bit for plain ints), loaded every cycle."""
    out = {}
    for key, v in values.items():
        reg = Signal(v.shape() if hasattr(v, "shape") else unsigned(1), name=f"{prefix}_{key}")
        m.d.sync += reg.eq(v)
        out[key] = reg
    return out


def requant_in_layout(spec: RequantSpec) -> data.StructLayout:
    return data.StructLayout({
        "acc": signed(spec.acc_bits),
        "exp": range(spec.max_exp + 1),
        "bias": signed(spec.bias_bits),
        "mult": unsigned(spec.mult_bits),
        "shift": unsigned(SHIFT_BITS),
        "residual": signed(spec.residual_bits),
        "narrow": 1,
    })


class Requantizer(_Unit):
    """int32 -> int8 (``narrow``) or the residual format: ``y = sat(sat(round(((acc << exp) +
    bias) * mult / 2^shift)) + residual)`` (:class:`golden.nonlinear_units.RequantSpec`),
    rounding by ``numerics.rounding``.

    Throughput one item per cycle; latency 3 cycles (a result is offered 3 cycles after its
    item is accepted), stages: ``(acc << exp) + bias``; ``* mult``; round, saturate, add the
    residual, saturate. Back-pressure stalls the whole pipeline.

    Members
    -------
    i_stream : In(stream.Signature(requant_in_layout(spec)))
    o_stream : Out(stream.Signature(signed(residual_bits)))
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
        full = Signal(signed(spec.full_bits))
        m.d.comb += full.eq((p.acc << p.exp) + p.bias)
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


# --------------------------------------------------------------------------------------------
# softmax


def softmax_in_layout(spec: SoftmaxSpec) -> data.StructLayout:
    """One beat: ``lanes`` scores, a keep bit per lane (0: masked), ``last`` (ends a row)."""
    return data.StructLayout({
        "scores": data.ArrayLayout(signed(spec.score_bits), spec.lanes),
        "keep": spec.lanes,
        "last": 1,
    })


def softmax_out_layout(spec: SoftmaxSpec) -> data.StructLayout:
    """One beat: ``lanes`` probabilities (``2^prob_bits - 1`` means 1), ``last``."""
    return data.StructLayout({
        "probs": data.ArrayLayout(unsigned(spec.prob_bits), spec.lanes),
        "last": 1,
    })


def _bit_length(m: Module, value, name: str) -> Signal:
    """Bit length of an unsigned value (0 for 0) as a priority encoder."""
    out = Signal(range(len(value) + 1), name=name)
    expr = 0
    for b in range(len(value)):  # the highest set bit wins: later terms take priority
        expr = Mux(value[b], b + 1, expr)
    m.d.comb += out.eq(expr)
    return out


def reciprocal_pipeline(m: Module, value, valid, tags: dict, spec, name: str):
    """:func:`golden.nonlinear.reciprocal` as ``2 + recip_steps`` registered stages
    (normalise, seed, one per Newton-Raphson step), a new value every cycle. ``tags``
    travel alongside. Returns (valid, r, z, tags) of the last stage."""
    p = spec.recip_bits
    blen = _bit_length(m, value, f"{name}_blen")
    z = Signal(range(max(len(value), 1)), name=f"{name}_z")
    m.d.comb += z.eq(Mux(blen == 0, 0, blen - 1))
    up_shift = Signal(range(p + 1), name=f"{name}_up_shift")  # p - z when z <= p
    down_shift = Signal(range(len(value) + 1), name=f"{name}_down_shift")  # z - p when z > p
    m.d.comb += [up_shift.eq(Mux(z > p, 0, p - z)), down_shift.eq(Mux(z > p, z - p, 0))]
    up = Signal(unsigned(p + 1), name=f"{name}_up")
    down = Signal(unsigned(p + 1), name=f"{name}_down")
    m.d.comb += [up.eq(value << up_shift), down.eq(value >> down_shift)]
    norm = Mux(z > p, down, up)

    st = _registers(m, {"valid": valid, "m": norm, "z": z, "zero": value == 0, **tags},
                    f"{name}_r0")
    table = [int(v) for v in recip_seed_table(spec)]
    sb = spec.recip_seed_bits
    seed = select(st["m"][p - sb:p], table)
    r = Signal(unsigned(p + 1), name=f"{name}_seed")
    m.d.comb += r.eq(seed)
    st = _registers(m, {**st, "r": r}, f"{name}_r1")
    two = 2 << p
    for k in range(spec.recip_steps):
        t = Signal(unsigned(p + 2), name=f"{name}_t{k}")
        m.d.comb += t.eq((st["m"] * st["r"]) >> p)
        nr = Signal(unsigned(p + 1), name=f"{name}_nr{k}")
        m.d.comb += nr.eq((st["r"] * (two - t)) >> p)
        st = _registers(m, {**st, "r": nr}, f"{name}_r{2 + k}")
    r_out = Mux(st["zero"], 0, st["r"])
    z_out = Mux(st["zero"], 0, st["z"])
    return st["valid"], r_out, z_out, {k: st[k] for k in tags}


class Softmax(_Unit):
    """Streaming softmax: rows of up to ``max_len`` scores, ``lanes`` per beat.

    ``i_stream`` beats carry ``lanes`` signed scores, a keep bit per lane and ``last``;
    ``o_stream`` gives one beat per input beat: ``lanes`` probabilities
    (:func:`golden.nonlinear.softmax`, masked lanes 0) and ``last``. ``mult`` and ``shift``
    (the scale of a score step times ``log2 e`` and ``2^exp_frac_bits``,
    :func:`golden.nonlinear.softmax_multiplier`) must be held while rows are in flight.

    Latency: a row of ``n`` beats into an idle unit gives its first result ``2n + 7 +
    recip_steps`` cycles after its first beat is accepted. Throughput: one beat per cycle for
    rows of at least ``5 + recip_steps`` beats. Stages, buffers and the exact cycle model:
    :class:`golden.nonlinear_units.SoftmaxTiming`.

    Members
    -------
    i_stream : In(stream.Signature(softmax_in_layout(spec)))
    o_stream : Out(stream.Signature(softmax_out_layout(spec)))
    mult : In(unsigned(mult_bits))
    shift : In(6)
    probe_exp_valid, probe_exp : Out
        Observation: a beat's exp values (masked lanes 0) in the cycle they are written to
        the exp buffer, for the bench to check every table entry.
    """

    _spec_cls = SoftmaxSpec

    def __init__(self, spec: SoftmaxSpec):
        super().__init__(spec, {
            "i_stream": In(stream.Signature(softmax_in_layout(spec))),
            "o_stream": Out(stream.Signature(softmax_out_layout(spec))),
            "mult": In(unsigned(spec.mult_bits)),
            "shift": In(unsigned(SHIFT_BITS)),
            "probe_exp_valid": Out(1),
            "probe_exp": Out(data.ArrayLayout(unsigned(spec.exp_bits), spec.lanes)),
        })


    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        nl = spec.nonlinear
        lanes, bmax = spec.lanes, spec.beats_max
        fb, eb, p = spec.exp_frac_bits, spec.exp_bits, spec.recip_bits
        beat_range = range(bmax)
        low = -(1 << (spec.score_bits - 1))

        # -- buffers ------------------------------------------------------------------------
        sa_layout = data.StructLayout({
            "scores": data.ArrayLayout(signed(spec.score_bits), lanes), "keep": lanes})
        m.submodules.sa = sa = Memory(shape=sa_layout, depth=SA_SLOTS * bmax, init=[])
        sa_w, sa_r = sa.write_port(), sa.read_port(transparent_for=())
        e_shape = data.ArrayLayout(unsigned(eb), lanes)
        m.submodules.se = se = Memory(shape=e_shape, depth=SE_SLOTS * bmax, init=[])
        se_w = se.write_port()
        se_r = se.read_port(transparent_for=())

        # -- collect --------------------------------------------------------------------------
        ib = self.i_stream.payload
        a_slot = Signal(range(SA_SLOTS))
        a_count = Signal(beat_range)
        sa_full = Signal(SA_SLOTS)
        sa_beats = [Signal(range(bmax + 1), name=f"sa_beats{s}") for s in range(SA_SLOTS)]
        sa_max = [Signal(signed(spec.score_bits), name=f"sa_max{s}") for s in range(SA_SLOTS)]
        a_max = Signal(signed(spec.score_bits))
        m.d.comb += self.i_stream.ready.eq(~sa_full.bit_select(a_slot, 1))
        take = self.i_stream.valid & self.i_stream.ready
        beat_max = low
        for lane in range(lanes):
            s = Mux(ib.keep[lane], ib.scores[lane], low)
            beat_max = Mux(s > beat_max, s, beat_max)
        beat_max_s = Signal(signed(spec.score_bits))
        m.d.comb += beat_max_s.eq(beat_max)
        row_max = Mux((a_count == 0) | (beat_max_s > a_max), beat_max_s, a_max)
        a_end = ib.last | (a_count == bmax - 1)
        m.d.comb += [sa_w.addr.eq(a_slot * bmax + a_count), sa_w.en.eq(take),
                     sa_w.data.scores.eq(ib.scores), sa_w.data.keep.eq(ib.keep)]
        sa_set = Signal(SA_SLOTS)
        sa_clear = Signal(SA_SLOTS)
        with m.If(take):
            m.d.sync += [a_max.eq(row_max), a_count.eq(Mux(a_end, 0, a_count + 1))]
            with m.If(a_end):
                m.d.sync += a_slot.eq(a_slot ^ 1)
                m.d.comb += sa_set.eq(1 << a_slot)
                for s in range(SA_SLOTS):
                    with m.If(a_slot == s):
                        m.d.sync += [sa_beats[s].eq(a_count + 1), sa_max[s].eq(row_max)]
        m.d.sync += sa_full.eq((sa_full | sa_set) & ~sa_clear)

        # -- exp: issue ---------------------------------------------------------------------
        b_busy = Signal()
        b_idx = Signal(beat_range)
        b_beats = Signal(range(bmax + 1))
        b_max = Signal(signed(spec.score_bits))
        b_slot = Signal(range(SA_SLOTS))
        b_eslot = Signal(range(SE_SLOTS))
        se_owned = Signal(SE_SLOTS)
        se_ready = Signal(SE_SLOTS)
        b_start = ~b_busy & sa_full.bit_select(b_slot, 1) & ~se_owned.bit_select(b_eslot, 1)
        b_issue = b_busy | b_start
        beats_now = Mux(b_busy, b_beats, select(b_slot, sa_beats))
        max_now = Mux(b_busy, b_max, select(b_slot, sa_max))
        idx_now = Mux(b_busy, b_idx, 0)
        b_last = idx_now == beats_now - 1
        m.d.comb += [sa_r.addr.eq(b_slot * bmax + idx_now), sa_r.en.eq(1)]
        owned_set = Signal(SE_SLOTS)
        owned_clear = Signal(SE_SLOTS)
        with m.If(b_start):
            m.d.comb += owned_set.eq(1 << b_eslot)
        with m.If(b_issue):
            with m.If(b_last):
                m.d.sync += [b_busy.eq(0), b_slot.eq(b_slot ^ 1),
                             b_eslot.eq(Mux(b_eslot == SE_SLOTS - 1, 0, b_eslot + 1))]
                m.d.comb += sa_clear.eq(1 << b_slot)
            with m.Else():
                m.d.sync += [b_busy.eq(1), b_idx.eq(idx_now + 1), b_beats.eq(beats_now),
                             b_max.eq(max_now)]
        m.d.sync += se_owned.eq((se_owned | owned_set) & ~owned_clear)

        b1 = _registers(m, {"valid": b_issue, "last": b_last, "first": idx_now == 0,
                            "max": max_now, "addr": b_eslot * bmax + idx_now, "eslot": b_eslot,
                            "beats": beats_now}, "b1")
        # -- exp: t = round((s - max) * mult / 2^shift), clamped at exp_floor ------------------
        floor_t = nl.exp_floor
        ts = []
        for lane in range(lanes):
            d = Signal(signed(spec.score_bits + 1), name=f"d{lane}")
            m.d.comb += d.eq(sa_r.data.scores[lane] - b1["max"])
            prod = Signal(signed(spec.score_bits + 1 + spec.mult_bits + 1), name=f"dm{lane}")
            m.d.comb += prod.eq(d * self.mult)
            t = round_shift_var(m, prod, self.shift, spec.rounding, f"t{lane}")
            tc = Signal(signed((-floor_t).bit_length() + 1), name=f"tc{lane}")
            m.d.comb += tc.eq(Mux(t < floor_t, floor_t, t))
            ts.append(tc)
        carried = ("valid", "last", "first", "addr", "eslot", "beats")
        b2 = _registers(m, {**{k: b1[k] for k in carried}, "keep": sa_r.data.keep,
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
        b3 = _registers(m, {**{k: b2[k] for k in (*carried, "keep")},
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
        se_beats = [Signal(range(bmax + 1), name=f"se_beats{s}") for s in range(SE_SLOTS)]
        se_scale = [Signal(unsigned(p + 1 + spec.prob_bits), name=f"se_scale{s}")
                    for s in range(SE_SLOTS)]
        se_z = [Signal(range(spec.sum_bits + 1), name=f"se_z{s}") for s in range(SE_SLOTS)]
        ready_set = Signal(SE_SLOTS)
        ready_clear = Signal(SE_SLOTS)
        with m.If(r_valid):
            m.d.comb += ready_set.eq(1 << r_tags["eslot"])
            for s in range(SE_SLOTS):
                with m.If(r_tags["eslot"] == s):
                    m.d.sync += [se_beats[s].eq(r_tags["beats"]),
                                 se_scale[s].eq(r_mant * nl.prob_one), se_z[s].eq(r_exp)]
        m.d.sync += se_ready.eq((se_ready | ready_set) & ~ready_clear)

        # -- normalise: a two-stage stall pipeline ------------------------------------------------
        o = self.o_stream
        advance = ~o.valid | o.ready
        c_busy = Signal()
        c_idx = Signal(beat_range)
        c_beats = Signal(range(bmax + 1))
        c_slot = Signal(range(SE_SLOTS))
        c_scale = Signal.like(se_scale[0])
        c_z = Signal.like(se_z[0])
        c_start = ~c_busy & se_ready.bit_select(c_slot, 1)
        c_issue = advance & (c_busy | c_start)
        cbeats_now = Mux(c_busy, c_beats, select(c_slot, se_beats))
        scale_now = Mux(c_busy, c_scale, select(c_slot, se_scale))
        z_now = Mux(c_busy, c_z, select(c_slot, se_z))
        cidx_now = Mux(c_busy, c_idx, 0)
        c_last = cidx_now == cbeats_now - 1
        m.d.comb += [se_r.addr.eq(c_slot * bmax + cidx_now), se_r.en.eq(advance)]
        with m.If(c_issue):
            with m.If(c_last):
                m.d.sync += [c_busy.eq(0),
                             c_slot.eq(Mux(c_slot == SE_SLOTS - 1, 0, c_slot + 1))]
                m.d.comb += [ready_clear.eq(1 << c_slot), owned_clear.eq(1 << c_slot)]
            with m.Else():
                m.d.sync += [c_busy.eq(1), c_idx.eq(cidx_now + 1), c_beats.eq(cbeats_now),
                             c_scale.eq(scale_now), c_z.eq(z_now)]
        c1_valid, c1_last = Signal(), Signal()
        c1_scale, c1_z = Signal.like(c_scale), Signal.like(c_z)
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


# --------------------------------------------------------------------------------------------
# GELU / ReLU


class Activation(_Unit):
    """The FFN activation, one code per cycle (:class:`golden.nonlinear_units.ActivationSpec`).

    ``lut``: a ``2^in_bits``-entry table of signed ``out_bits`` values, written through
    ``table_we/table_addr/table_data`` (latency 2: the table read, the output register).
    ``poly``: I-BERT's integer GELU with the constants on ``b``, ``c``, ``one``, ``mult`` and
    ``shift`` (latency 5: ``min(|q|, -b) + b``; square, ``+ c``, sign; ``q (one - L)``;
    ``* mult``; round and saturate). ``relu``: ``max(q, 0)`` (latency 1). Back-pressure stalls
    the pipeline; the configuration inputs must be held while codes are in flight.

    Members
    -------
    i_stream : In(stream.Signature(signed(in_bits)))
    o_stream : Out(stream.Signature(signed(out_bits)))
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


# --------------------------------------------------------------------------------------------
# LayerNorm


def ln_out_layout(spec: LayerNormSpec) -> data.StructLayout:
    """One output: ``y`` (signed ``out_bits``) and ``last`` (the row's last value)."""
    return data.StructLayout({"y": signed(spec.out_bits), "last": 1})


class LayerNorm(_Unit):
    """Integer LayerNorm over rows of ``d`` values, one value per cycle
    (:func:`golden.nonlinear.layer_norm`). Latency: a row's first result ``d +
    ceil(v_bits / 2) + recip_steps + 7`` cycles after its first value into an idle unit;
    throughput one value per cycle for rows of at least ``ceil(v_bits / 2) + recip_steps +
    4``. Stages and the exact cycle model: :class:`golden.nonlinear_units.LayerNormTiming`.

    ``i_stream``: signed ``in_bits`` values, ``d`` to a row. ``o_stream``: signed ``out_bits``
    and ``last`` (the row's last value). gamma (signed ``mult_bits``) and beta (signed
    ``ln_beta_bits``) per element are written through ``param_we/param_addr/param_gamma/
    param_beta``; ``shift`` is their common shift. The square root is the digit-by-digit
    method (one result bit per cycle, no multiplier), the reciprocal that of the softmax.

    Members
    -------
    i_stream : In(stream.Signature(signed(in_bits)))
    o_stream : Out(stream.Signature(ln_out_layout(spec)))
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
        d, p, nf = spec.d, spec.recip_bits, spec.ln_frac_bits
        beta_bits = ln_beta_bits(nl)

        m.submodules.buf = buf = Memory(shape=signed(spec.in_bits), depth=LN_SLOTS * d, init=[])
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
        a_slot = Signal(range(LN_SLOTS))
        a_count = Signal(range(d))
        full = Signal(LN_SLOTS)
        full_set, full_clear = Signal(LN_SLOTS), Signal(LN_SLOTS)
        s1_acc = Signal(signed(spec.s1_bits))
        s2_acc = Signal(unsigned(spec.s2_bits))
        s1 = [Signal(signed(spec.s1_bits), name=f"s1_{s}") for s in range(LN_SLOTS)]
        s2 = [Signal(unsigned(spec.s2_bits), name=f"s2_{s}") for s in range(LN_SLOTS)]
        m.d.comb += self.i_stream.ready.eq(~full.bit_select(a_slot, 1))
        take = self.i_stream.valid & self.i_stream.ready
        s1_new = Signal.like(s1_acc)
        s2_new = Signal.like(s2_acc)
        m.d.comb += [s1_new.eq(s1_acc + h), s2_new.eq(s2_acc + h * h),
                     bw.addr.eq(a_slot * d + a_count), bw.data.eq(h), bw.en.eq(take)]
        a_end = a_count == d - 1
        with m.If(take):
            with m.If(a_end):
                m.d.sync += [a_count.eq(0), s1_acc.eq(0), s2_acc.eq(0),
                             a_slot.eq(Mux(a_slot == LN_SLOTS - 1, 0, a_slot + 1))]
                m.d.comb += full_set.eq(1 << a_slot)
                for s in range(LN_SLOTS):
                    with m.If(a_slot == s):
                        m.d.sync += [s1[s].eq(s1_new), s2[s].eq(s2_new)]
            with m.Else():
                m.d.sync += [a_count.eq(a_count + 1), s1_acc.eq(s1_new), s2_acc.eq(s2_new)]
        m.d.sync += full.eq((full | full_set) & ~full_clear)

        # -- statistics: V, square root, reciprocal ------------------------------------------------
        started = Signal(LN_SLOTS)
        started_set, started_clear = Signal(LN_SLOTS), Signal(LN_SLOTS)
        done = Signal(LN_SLOTS)
        done_set, done_clear = Signal(LN_SLOTS), Signal(LN_SLOTS)
        r_busy = Signal()
        r_slot = Signal(range(LN_SLOTS))
        r_k = Signal(range(spec.sqrt_steps + 1))
        op = Signal(unsigned(spec.v_bits))
        res = Signal(unsigned(spec.v_bits))
        one = Signal(unsigned(spec.v_bits))
        r_start = ~r_busy & full.bit_select(r_slot, 1) & ~started.bit_select(r_slot, 1)
        feed = r_busy & (r_k == spec.sqrt_steps)
        v = Signal(unsigned(spec.v_bits))
        s1_now = select(r_slot, s1)
        m.d.comb += v.eq(d * select(r_slot, s2) - s1_now * s1_now)
        with m.If(r_start):
            m.d.sync += [r_busy.eq(1), r_k.eq(0), op.eq(v), res.eq(0),
                         one.eq(1 << (2 * (spec.sqrt_steps - 1)))]
            m.d.comb += started_set.eq(1 << r_slot)
        with m.Elif(feed):
            m.d.sync += [r_busy.eq(0), r_slot.eq(Mux(r_slot == LN_SLOTS - 1, 0, r_slot + 1))]
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
        mant = [Signal(unsigned(p + 1), name=f"mant{s}") for s in range(LN_SLOTS)]
        rexp = [Signal(range(len(root) + 1), name=f"rexp{s}") for s in range(LN_SLOTS)]
        with m.If(r_valid):
            m.d.comb += done_set.eq(1 << r_tags["slot"])
            for s in range(LN_SLOTS):
                with m.If(r_tags["slot"] == s):
                    m.d.sync += [mant[s].eq(r_mant), rexp[s].eq(r_exp)]
        m.d.sync += [started.eq((started | started_set) & ~started_clear),
                     done.eq((done | done_set) & ~done_clear)]

        # -- output: normalise; gamma, beta; output register ------------------------------------
        o = self.o_stream
        advance = ~o.valid | o.ready
        c_busy = Signal()
        c_idx = Signal(range(d))
        c_slot = Signal(range(LN_SLOTS))
        c_start = ~c_busy & done.bit_select(c_slot, 1)
        c_issue = advance & (c_busy | c_start)
        idx_now = Mux(c_busy, c_idx, 0)
        c_last = idx_now == d - 1
        m.d.comb += [br.addr.eq(c_slot * d + idx_now), gr.addr.eq(idx_now),
                     er.addr.eq(idx_now), br.en.eq(advance), gr.en.eq(advance),
                     er.en.eq(advance)]
        with m.If(c_issue):
            with m.If(c_last):
                m.d.sync += [c_busy.eq(0),
                             c_slot.eq(Mux(c_slot == LN_SLOTS - 1, 0, c_slot + 1))]
                m.d.comb += [full_clear.eq(1 << c_slot), started_clear.eq(1 << c_slot),
                             done_clear.eq(1 << c_slot)]
            with m.Else():
                m.d.sync += [c_busy.eq(1), c_idx.eq(idx_now + 1)]
        v1, last1 = Signal(), Signal()
        s1_1 = Signal.like(s1_acc)
        mant1 = Signal.like(mant[0])
        exp1 = Signal.like(rexp[0])
        with m.If(advance):
            m.d.sync += [v1.eq(c_issue), last1.eq(c_last), s1_1.eq(select(c_slot, s1)),
                         mant1.eq(select(c_slot, mant)), exp1.eq(select(c_slot, rexp))]
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


# --------------------------------------------------------------------------------------------
# per-token scaling


def token_quant_out_layout(spec: TokenQuantSpec) -> data.StructLayout:
    """One output: ``q`` (signed ``out_bits``), the row's exponent ``exp``, ``last``."""
    return data.StructLayout({"q": signed(spec.out_bits), "exp": range(spec.max_exp + 1),
                              "last": 1})


class TokenQuantizer(_Unit):
    """Per-token power-of-two scaling of rows of ``d`` wide values to ``out_bits``
    (:func:`golden.nonlinear.token_quantize`): ``e = max(0, bitlen(max |x|) - (out_bits -
    1))``, ``q = sat(round(x / 2^e))``; each output carries ``e`` for the next matmul's
    requantiser. Two row buffers: one collects (tracking the largest magnitude), one is read
    out through a two-stage stall pipeline. Latency: a row's first output ``d + 2`` cycles
    after its first value; one value per cycle
    (:class:`golden.nonlinear_units.TokenQuantTiming`).

    Members
    -------
    i_stream : In(stream.Signature(signed(in_bits)))
    o_stream : Out(stream.Signature(token_quant_out_layout(spec)))
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
        d = spec.d
        m.submodules.buf = buf = Memory(shape=signed(spec.in_bits), depth=TQ_SLOTS * d,
                                        init=[])
        bw, br = buf.write_port(), buf.read_port(transparent_for=())

        # -- collect ---------------------------------------------------------------------------
        x = self.i_stream.payload
        a_slot = Signal(range(TQ_SLOTS))
        a_count = Signal(range(d))
        full = Signal(TQ_SLOTS)
        full_set, full_clear = Signal(TQ_SLOTS), Signal(TQ_SLOTS)
        peak = Signal(unsigned(spec.in_bits))
        exps = [Signal(range(spec.max_exp + 1), name=f"exp{s}") for s in range(TQ_SLOTS)]
        m.d.comb += self.i_stream.ready.eq(~full.bit_select(a_slot, 1))
        take = self.i_stream.valid & self.i_stream.ready
        mag = Signal(unsigned(spec.in_bits))
        m.d.comb += mag.eq(Mux(x < 0, -x, x))
        row_peak = Signal(unsigned(spec.in_bits))
        m.d.comb += row_peak.eq(Mux((a_count == 0) | (mag > peak), mag, peak))
        blen = _bit_length(m, row_peak, "tq_blen")
        row_exp = Mux(blen > spec.out_bits - 1, blen - (spec.out_bits - 1), 0)
        m.d.comb += [bw.addr.eq(a_slot * d + a_count), bw.data.eq(x), bw.en.eq(take)]
        with m.If(take):
            m.d.sync += peak.eq(row_peak)
            with m.If(a_count == d - 1):
                m.d.sync += [a_count.eq(0), a_slot.eq(a_slot ^ 1)]
                m.d.comb += full_set.eq(1 << a_slot)
                for s in range(TQ_SLOTS):
                    with m.If(a_slot == s):
                        m.d.sync += exps[s].eq(row_exp)
            with m.Else():
                m.d.sync += a_count.eq(a_count + 1)
        m.d.sync += full.eq((full | full_set) & ~full_clear)

        # -- output: read; shift, round, saturate -------------------------------------------------
        o = self.o_stream
        advance = ~o.valid | o.ready
        c_busy = Signal()
        c_idx = Signal(range(d))
        c_slot = Signal(range(TQ_SLOTS))
        c_issue = advance & (c_busy | full.bit_select(c_slot, 1))
        idx_now = Mux(c_busy, c_idx, 0)
        c_last = idx_now == d - 1
        m.d.comb += [br.addr.eq(c_slot * d + idx_now), br.en.eq(advance)]
        with m.If(c_issue):
            with m.If(c_last):
                m.d.sync += [c_busy.eq(0), c_slot.eq(c_slot ^ 1)]
                m.d.comb += full_clear.eq(1 << c_slot)
            with m.Else():
                m.d.sync += [c_busy.eq(1), c_idx.eq(idx_now + 1)]
        v1, last1 = Signal(), Signal()
        exp1 = Signal.like(exps[0])
        with m.If(advance):
            m.d.sync += [v1.eq(c_issue), last1.eq(c_last), exp1.eq(select(c_slot, exps))]
        q = round_shift_var(m, br.data, exp1, spec.rounding, "tq_round")
        v2 = Signal()
        with m.If(advance):
            m.d.sync += [v2.eq(v1), o.payload.q.eq(limit(m, q, spec.out_bits, True, "tq_sat")),
                         o.payload.exp.eq(exp1), o.payload.last.eq(last1)]
        m.d.comb += o.valid.eq(v2)
        return m
