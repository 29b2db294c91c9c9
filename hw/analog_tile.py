"""The analog tile unit: word-line/DAC driver, ADC controllers, shift-add reduction and
calibration around the crossbar shell (the RTL of :mod:`cimforge.golden.analog_tile`)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from cimforge.config import digit_bits
from cimforge.golden.analog_tile import (
    CSR_ADDR_BITS,
    CSR_DATA_BITS,
    REGISTERS,
    AnalogTileSpec,
    AnalogTileTiming,
)
from cimforge.golden.cim import (
    ADC_EXP_LIMIT,
    OFFSET_TRIM_BITS,
    RANGE_EXP_BITS,
    SCALE_BITS,
    SCALE_FRAC_BITS,
)
from cimforge.hw.crossbar_shell import shell_signature
from cimforge.hw.numerics import (
    PackedArray,
    digit_shift,
    limit,
    select,
    select_onehot,
    tree_sum,
)

__all__ = ["AnalogTile", "accumulator_plan", "csr_signature", "input_layout",
           "result_signature"]


def csr_signature() -> wiring.Signature:
    """Register write port, from the writer's side: ``data`` goes to ``addr`` in a cycle with
    ``we`` high (see :data:`cimforge.golden.analog_tile.REGISTERS`)."""
    return wiring.Signature({
        "addr": Out(CSR_ADDR_BITS),
        "data": Out(CSR_DATA_BITS),
        "we": Out(1),
    })


def input_layout(spec: AnalogTileSpec) -> PackedArray:
    """One input vector: ``inputs`` signed ``act_bits`` values (row ``t * rows + r`` is row
    ``r`` of row tile ``t``)."""
    return PackedArray(signed(spec.act_bits), spec.inputs)


def result_signature(spec: AnalogTileSpec) -> wiring.Signature:
    """The result port, from the unit's side. ``valid``: the oldest result not yet released
    is complete. The reader reads its channels in any order, one per cycle, through a
    pipeline of :attr:`~cimforge.golden.analog_tile.AnalogTileTiming.RESULT_DEPTH` stages that
    moves in every cycle with ``stall`` low and holds in a cycle with it high: channel
    ``addr`` read in a cycle with ``en`` high (and ``stall`` low) is on ``data`` once the
    pipeline has moved ``RESULT_DEPTH`` times -- ``RESULT_DEPTH`` cycles later without a
    stall -- and stays there until the next read's channel arrives; channel
    ``c * channels_per_tile + h`` is channel ``h`` of column tile ``c``. A cycle with
    ``release`` high (only while ``valid``) hands the result back: its bank may accumulate
    again, and the next result becomes the one read."""
    return wiring.Signature({
        "valid": Out(1),
        "addr": In(range(max(spec.outputs, 2))),
        "en": In(1),
        "data": Out(signed(spec.acc_bits)),
        "stall": In(1),
        "release": In(1),
    })


def accumulator_plan(spec: AnalogTileSpec) -> tuple[int, list[list[tuple[int, int]]]]:
    """How the unit's accumulators are organised: ``(depth, lanes)``. Lane ``l`` adds, at
    conversion step ``j``, the codes of ADCs ``a`` with the column ``(j % cols_per_channel) +
    offset`` of its channel, for every ``(a, offset)`` in ``lanes[l]``, into entry ``j //
    cols_per_channel``; channel ``l * depth + entry`` is what lane ``l`` holds in ``entry``.

    With ``cols_per_adc >= cols_per_channel`` an ADC converts ``cols_per_adc /
    cols_per_channel`` whole channels in turn (a lane per ADC, that many entries); with fewer,
    each channel is spread over ``cols_per_channel / cols_per_adc`` ADCs converting in step
    (a lane per channel, one entry). Either way lane ``l``'s ADCs are the ``l``-th run of
    consecutive ones, so a group of consecutive lanes reads a run of consecutive codes."""
    cpc, cpa = spec.cols_per_channel, spec.cols_per_adc
    if cpa >= cpc:
        return cpa // cpc, [[(a, 0)] for a in range(spec.accumulator_lanes)]
    per = cpc // cpa
    return 1, [[(lane * per + k, k * cpa) for k in range(per)]
               for lane in range(spec.accumulator_lanes)]


# the width of the pieces the drift product is split into: a signed 18 x 18 multiplier each
_PRODUCT_CHUNK = 17


def _round_increment(lsb, guard, sticky, mode: str):
    """What rounding adds to a quotient whose lowest bit is ``lsb``: ``guard`` is the highest
    bit shifted out, ``sticky`` whether any below it is set (the rule of
    :func:`cimforge.golden.numerics.round_shift`)."""
    if mode == "floor":
        return Const(0, 1)
    if mode == "half_up":
        return guard
    if mode == "half_even":
        return guard & (sticky | lsb)
    raise ValueError(f"mode must be one of floor, half_up, half_even, not {mode!r}")


def _limit_narrow(m: Module, value, bits: int, saturate: bool, name: str) -> Signal:
    """:func:`cimforge.hw.numerics.limit` for a value only a few bits wider than ``bits``:
    it fits when its bits from ``bits - 1`` up are all equal, a test of a few bits (a
    comparison with the limits would be a carry chain after the adder that makes it)."""
    out = Signal(signed(bits), name=name)
    if not saturate:
        m.d.comb += out.eq(value[:bits])
        return out
    top = value[bits - 1:]
    fits = (top == 0) | (top == (1 << len(top)) - 1)
    hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    m.d.comb += out.eq(Mux(fits, value[:bits], Mux(value[-1], lo, hi)))
    return out


def _counter(n: int) -> range:
    """Shape of a counter over ``n`` values, at least one bit wide (Verilog has no
    zero-width vectors)."""
    return range(max(n, 2))


class AnalogTile(wiring.Component):
    """Integer matrix-vector products on ``row_tiles x col_tiles`` analog crossbars.

    Every accepted input vector is applied digit by digit (:func:`cimforge.config.
    input_digits`) to one row group at a time; each read is sampled by the shell, converted
    column by column by the ADCs of every column tile, and the codes are shifted, signed and
    summed into one accumulator per output channel (the beat order of
    :mod:`cimforge.golden.analog_tile`), kept in a memory (:func:`accumulator_plan`). A
    step's codes are taken ``lanes_per_cycle`` lanes a cycle over the step's conversion
    cycles, so the shift-add's logic grows with the ADCs divided by the conversion time, not
    with the channels. A complete result is read channel by
    channel on ``result``, scaled on the way out by its column tile's drift-compensation
    register, rounded and saturated as the config says.

    Timing: exactly :class:`cimforge.golden.analog_tile.AnalogTileTiming` -- one read per
    ``read_cycles`` cycles at full rate, with no gap between vectors; a result valid
    ``AnalogTileTiming.result_latency`` (``read_cycles + tail``) cycles after its vector's last
    read issues. Two results may be in flight (one being read, one accumulating): a vector's
    first read waits for the release of the result two before it.

    Parameters
    ----------
    spec : AnalogTileSpec

    Members
    -------
    i_stream : In(stream.Signature(input_layout(spec)))
        Input vectors.
    result : Out(result_signature(spec))
        Results, one per input vector, read by address.
    csr : In(csr_signature())
        Register writes (gain, drift, range and, for SAR ADCs, offset registers); write them
        while idle.
    xbar : Out(cimforge.hw.crossbar_shell.shell_signature(spec))
        The crossbar shell's pins.
    """

    def __init__(self, spec: AnalogTileSpec):
        if not isinstance(spec, AnalogTileSpec):
            raise TypeError(f"spec must be an AnalogTileSpec, not {spec!r}")
        self._spec = spec
        super().__init__({
            "i_stream": In(stream.Signature(input_layout(spec))),
            "result": Out(result_signature(spec)),
            "csr": In(csr_signature()),
            "xbar": Out(shell_signature(spec)),
        })

    @property
    def spec(self) -> AnalogTileSpec:
        return self._spec

    @property
    def timing(self) -> AnalogTileTiming:
        return AnalogTileTiming(self._spec)

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        x = self.xbar
        S, D = spec.weight_slices, spec.digits
        L = spec.read_cycles
        groups = spec.row_tiles * spec.groups  # row groups over all row tiles

        # -- registers ------------------------------------------------------------------------
        one = 1 << SCALE_FRAC_BITS
        gain = [Signal(SCALE_BITS, name=f"gain{c}", init=one) for c in range(spec.col_tiles)]
        drift = [Signal(SCALE_BITS, name=f"drift{c}", init=one) for c in range(spec.col_tiles)]
        rexp = [Signal(signed(RANGE_EXP_BITS), name=f"range{k}") for k in range(S)]
        arrays = [("gain", gain), ("drift", drift), ("range", rexp)]
        adcs = spec.col_tiles * spec.adcs_per_tile
        if spec.adc_kind == "sar":
            trims = [Signal(signed(OFFSET_TRIM_BITS), name=f"offset{a}") for a in range(adcs)]
            arrays.append(("offset", trims))
            # whole-vector assignments (here and below): a vector driven piece by piece is
            # a multiply-driven net to Icarus, resolved bit by bit on every change
            m.d.comb += x.offset_trim.as_value().eq(Cat(*trims))
        # a range beyond +-ADC_EXP_LIMIT is clamped on write: golden never sets one, and the
        # shift-add's widths assume it
        written = self.csr.data.as_signed()  # the register value as a 16-bit signed number
        clamped = Mux(written > ADC_EXP_LIMIT, ADC_EXP_LIMIT,
                      Mux(written < -ADC_EXP_LIMIT, -ADC_EXP_LIMIT, written))
        for name, regs in arrays:
            for i, reg in enumerate(regs):
                with m.If(self.csr.we & (self.csr.addr == REGISTERS[name] + i)):
                    value = clamped if name == "range" else self.csr.data[: len(reg)]
                    m.d.sync += reg.eq(value)
        m.d.comb += [x.gain[c].eq(gain[c]) for c in range(spec.col_tiles)]
        m.d.comb += [x.range_exp[k].eq(rexp[k]) for k in range(S)]
        # the shift of each slice's codes relative to the finest range, in three registered
        # steps: a copy of the range registers beside the shift-add (the registers themselves
        # drive the crossbar shell's pins), the smallest exponent, then the shifts (a range
        # written while idle is in the shifts from the fourth cycle after the write)
        rexp_here = [Signal.like(e, name=f"range_here{k}") for k, e in enumerate(rexp)]
        m.d.sync += [h.eq(e) for h, e in zip(rexp_here, rexp, strict=True)]
        mins = list(rexp_here)
        while len(mins) > 1:  # a tree of pairwise minima
            mins = [Mux(mins[i + 1] < mins[i], mins[i + 1], mins[i]) if i + 1 < len(mins)
                    else mins[i] for i in range(0, len(mins), 2)]
        e_min = Signal(signed(RANGE_EXP_BITS))
        m.d.sync += e_min.eq(mins[0])
        slice_shift = [Signal(range(spec.max_term_shift + 1), name=f"slice_shift{k}")
                       for k in range(S)]
        m.d.sync += [slice_shift[k].eq(k * spec.bits_per_cell + rexp_here[k] - e_min)
                     for k in range(S)]

        # -- input buffer: two vectors -------------------------------------------------------
        layout = input_layout(spec)
        buf = [Signal(layout, name=f"buf{i}") for i in range(2)]
        head = Signal()
        count = Signal(range(3))
        accept = Signal()
        pop = Signal()
        m.d.comb += [self.i_stream.ready.eq(count != 2),
                     accept.eq(self.i_stream.valid & self.i_stream.ready)]
        with m.If(accept):
            for i in range(2):
                with m.If((head ^ (count == 1)) == i):
                    m.d.sync += buf[i].eq(self.i_stream.payload)
        with m.If(pop):
            m.d.sync += head.eq(~head)
        vector = Signal(layout)
        m.d.comb += vector.eq(Mux(head, buf[1], buf[0]))

        # -- read sequencer ------------------------------------------------------------------
        # `issue` (a read of digit rd_digit of group rd_group starts now) is a register: set
        # from the next values of the counters it depends on, so that it, and each group's
        # word-line enable, drive their loads from a flip-flop
        rd_group = Signal(_counter(groups))
        rd_digit = Signal(_counter(D))
        wait = Signal(_counter(L))
        outstanding = Signal(range(3))  # vectors started whose results are not yet taken
        first_read = (rd_group == 0) & (rd_digit == 0)
        last_read = (rd_group == groups - 1) & (rd_digit == D - 1)
        issue = Signal()
        group_on = Signal(groups)  # issue & (rd_group == g), bit g
        m.d.comb += pop.eq(issue & last_read)
        count_n = Signal.like(count)
        wait_n = Signal.like(wait)
        rd_group_n = Signal.like(rd_group)
        rd_digit_n = Signal.like(rd_digit)
        outstanding_n = Signal.like(outstanding)
        first_n = Signal()
        m.d.comb += [
            count_n.eq(count + accept - pop),
            wait_n.eq(Mux(issue, L - 1, Mux(wait != 0, wait - 1, 0))),
            rd_digit_n.eq(Mux(issue, Mux(rd_digit == D - 1, 0, rd_digit + 1), rd_digit)),
            rd_group_n.eq(Mux(issue & (rd_digit == D - 1),
                              Mux(rd_group == groups - 1, 0, rd_group + 1), rd_group)),
            first_n.eq(Mux(issue, last_read, first_read)),
            outstanding_n.eq(outstanding + (issue & first_read) - self.result.release),
        ]
        issue_n = (count_n != 0) & (wait_n == 0) & (~first_n | (outstanding_n != 2))
        m.d.sync += [count.eq(count_n), wait.eq(wait_n), rd_group.eq(rd_group_n),
                     rd_digit.eq(rd_digit_n), outstanding.eq(outstanding_n),
                     issue.eq(issue_n),
                     group_on.eq(Cat(*(issue_n & (rd_group_n == g) for g in range(groups))))]
        bank = Signal()
        samp_digit = Signal(_counter(D))
        samp_last = Signal()
        samp_first = Signal()
        m.d.sync += x.sample.eq(issue)
        with m.If(issue):
            m.d.sync += [
                x.sample_bank.eq(bank),
                bank.eq(~bank),
                samp_digit.eq(rd_digit),
                samp_last.eq(last_read),
                samp_first.eq(first_read),
            ]

        # word-line drive: digit rd_digit of the rows of group rd_group, 0 elsewhere -- built
        # from whole digit planes of each row group, so its logic grows with the groups and
        # digits, not the rows
        flat = vector.as_value()
        ab, db = spec.act_bits, spec.dac_bits

        def plane(d: int, rows: range):
            lo, hi = digit_bits(d, ab, db)
            pad = [Const(0, db - (hi - lo))] if hi - lo < db else []
            return Cat(*(Cat(flat[i * ab + lo: i * ab + hi], *pad) for i in rows))

        drive = []
        for g in range(groups):
            first = (g // spec.groups) * spec.rows + (g % spec.groups) * spec.rows_per_read
            rows = range(first, first + spec.rows_per_read)
            drive.append(Mux(group_on[g],
                             select(rd_digit, [plane(d, rows) for d in range(D)]), 0))
        m.d.sync += x.wl.as_value().eq(Cat(*drive))

        # -- ADC controllers -----------------------------------------------------------------
        tc = spec.conversion_cycles
        active = Signal()
        step = Signal(_counter(spec.cols_per_adc))
        # the conversion cycle within a step (the SAR bit being decided), one-hot: bit t is
        # cycle t, so the enables decoded from it start at flip-flops
        tick_hot = Signal(tc, init=1)
        conv_digit = Signal(_counter(D))
        conv_last = Signal()  # converting the vector's last read
        conv_first = Signal()  # converting its first
        m.d.comb += [x.col_sel.eq(step)]
        # active & tick_hot[tc - 1], as a register: set from the counters' next values (below),
        # it drives the enables of every code and trial bit without a comparison before them
        step_done = Signal()
        w = spec.adc_bits
        code_all = Signal(adcs * w)  # every ADC's last code, ADC a at [a w +: w]
        codes = [code_all[a * w: (a + 1) * w] for a in range(adcs)]
        code_valid = Signal()
        code_digit = Signal(_counter(D))
        code_last = Signal()
        code_first = Signal()
        code_q = Signal(range(spec.cols_per_channel))  # the column within its channel
        code_entry = Signal(_counter(spec.cols_per_adc // spec.cols_per_channel))
        m.d.sync += code_valid.eq(step_done)
        with m.If(step_done):
            m.d.sync += [code_digit.eq(conv_digit), code_first.eq(conv_first),
                         code_q.eq(step % spec.cols_per_channel),
                         code_entry.eq(step // spec.cols_per_channel),
                         code_last.eq(conv_last & (step == spec.cols_per_adc - 1))]
        if spec.adc_kind == "sar":
            # every SAR register holds its trial word itself: the bits decided so far, a 1 at
            # the bit under trial (bit w-1-t at cycle t), 0 below. At cycle t the comparator's
            # decision becomes bit w-1-t and bit w-2-t becomes the next trial's 1; after the last
            # decision the register starts again from 100..0. Each bit is one LUT: its
            # decision or 1 or the start pattern, loaded only in the ticks that change it
            start = 1 << (w - 1)
            trial = [Signal(w, name=f"trial{a}", init=start) for a in range(adcs)]
            m.d.comb += x.trial.as_value().eq(Cat(*trial))
            for i in range(w):
                decide = tick_hot[w - 1 - i]
                next_one = tick_hot[w - 2 - i] if i < w - 1 else Const(0)
                with m.If(active & (step_done | decide | next_one)):
                    m.d.sync += [t[i].eq(Mux(step_done, (start >> i) & 1,
                                             Mux(decide, x.decision[a], 1)))
                                 for a, t in enumerate(trial)]
            with m.If(step_done):  # the code: the last decision in bit 0
                m.d.sync += code_all.eq(Cat(*(Cat(x.decision[a], t[1:])
                                              for a, t in enumerate(trial))))
        else:
            ones = [tree_sum([x.thermo[a][b] for b in range(spec.code_max)])
                    for a in range(adcs)]
            with m.If(step_done):
                m.d.sync += code_all.eq(Cat(*(o.as_unsigned()[:w] for o in ones)))
        m.d.sync += step_done.eq(0)
        with m.If(active):
            m.d.sync += tick_hot.eq(tick_hot.rotate_left(1))
            stays = ~(step_done & (step == spec.cols_per_adc - 1))  # active next cycle
            m.d.sync += step_done.eq(stays if tc == 1 else stays & tick_hot[tc - 2])
            with m.If(step_done):
                m.d.sync += step.eq(Mux(step == spec.cols_per_adc - 1, 0, step + 1))
                with m.If(step == spec.cols_per_adc - 1):
                    m.d.sync += active.eq(0)
        with m.If(x.sample):  # the read sampled now is converted from the next cycle
            m.d.sync += [active.eq(1), step.eq(0), tick_hot.eq(1), step_done.eq(tc == 1),
                         x.conv_bank.eq(x.sample_bank),
                         conv_digit.eq(samp_digit), conv_last.eq(samp_last),
                         conv_first.eq(samp_first)]

        # -- shift-add: one beat per conversion step, one accumulator lane per ADC run ----------
        # At step j ADC a converts column a cpa + j. With cpa >= cpc every ADC serves cpa / cpc
        # whole channels one after the other: a lane per ADC, its channels in `depth` entries.
        # With cpa < cpc a channel's columns are spread over cpc / cpa ADCs converting at once:
        # a lane per channel summing their codes, one entry. Either way channel = lane x depth
        # + entry. A step's codes stay in code_all for the T cycles of the next step, so the
        # lanes share one datapath of P = ceil(lanes / T) lanes: group g (lanes g P .. g P +
        # P - 1, whose ADCs are the g-th run of P x per) is taken in the g-th cycle from the
        # codes, from the bottom of code_all, which shifts down by a group's codes after each
        # (a step's next codes, loaded T cycles after the last, take precedence).
        cpc = spec.cols_per_channel
        depth, lane_terms = accumulator_plan(spec)
        P, G = spec.lanes_per_cycle, spec.lane_groups
        per = len(lane_terms[0])  # terms per lane
        offsets = [off for _, off in lane_terms[0]]  # term k's column offset, in every lane
        grp = Signal(_counter(G))  # the lane group taken now
        busy = Signal()
        m.d.comb += busy.eq(code_valid | (grp != 0))
        if G > 1:
            with m.If(busy):
                m.d.sync += grp.eq(Mux(grp == G - 1, 0, grp + 1))
            with m.If(busy & ~step_done):
                m.d.sync += code_all.eq(code_all >> (P * per * w))
        d_shift = Signal(range(spec.act_bits))
        m.d.comb += d_shift.eq(digit_shift(code_digit, spec.act_bits, spec.dac_bits, D))
        sign_digit = code_digit == D - 1

        # the term stage: each code with its sign, and each term's shift, registered. A term's
        # shift and sign depend on its column within the channel: one per offset, shared by
        # every lane; (-1)^neg (code << shift) = ((-1)^neg code) << shift
        # each stage carries its beat's valid, last (the vector's last step, last group),
        # accumulator entry, first (the entry's first beat of the vector: start from 0) and
        # lane group
        def control_stage(stage: str, valid, last, entry, first, group):
            regs = (Signal(name=f"{stage}_valid"), Signal(name=f"{stage}_last"),
                    Signal(_counter(depth), name=f"{stage}_entry"),
                    Signal(name=f"{stage}_first"), Signal(_counter(G), name=f"{stage}_group"))
            m.d.sync += [regs[0].eq(valid), regs[1].eq(valid & last)]
            with m.If(valid):
                m.d.sync += [regs[2].eq(entry), regs[3].eq(first), regs[4].eq(group)]
            return regs

        term_ctl = control_stage("term", busy, code_last & (grp == G - 1), code_entry,
                                 code_first & (code_q == 0), grp)
        shifts, negs = [], []
        for offset in offsets:
            q = Signal(range(cpc), name=f"col_o{offset}")
            neg = Signal(name=f"neg_o{offset}")
            shift = Signal(range(spec.max_term_shift + 1), name=f"shift_o{offset}")
            m.d.comb += [q.eq(code_q + offset), neg.eq(q[0] ^ sign_digit)]
            with m.If(code_valid):
                m.d.sync += shift.eq(d_shift + select(q >> 1, slice_shift))
            shifts.append(shift)
            negs.append(neg)
        signed_codes = []  # [slot][term]
        for p in range(P):
            row = []
            for k in range(per):
                code = codes[p * per + k]
                sc = Signal(signed(w + 1), name=f"code_s{p}_t{k}")
                with m.If(busy):
                    m.d.sync += sc.eq(Mux(negs[k], -code, code))
                row.append(sc)
            signed_codes.append(row)
        # the beat stage: each lane's terms summed
        raw_beats = []
        beat_ctl = control_stage("beat", *term_ctl)
        for p, row in enumerate(signed_codes):
            terms = []
            for k, sc in enumerate(row):
                term = Signal(signed(spec.term_bits + 1), name=f"term_s{p}_t{k}")
                m.d.comb += term.eq(sc << shifts[k])
                terms.append(term)
            beat = Signal(signed(spec.term_bits + len(terms).bit_length() + 1), name=f"beat{p}")
            m.d.sync += beat.eq(tree_sum(terms))
            raw_beats.append(beat)

        # the addend stage: each beat clamped (or wrapped) to acc_bits + 1 bits. An accumulator
        # holds acc_bits, so sat(acc + beat) = sat(acc + clamp(beat)) (and wrapping is modulo
        # 2^acc_bits): the accumulator's adder is two bits wider than it, not as wide as a beat
        acc_bits = spec.acc_bits
        beats = []
        add_valid, add_last, add_entry, add_first, add_group = control_stage("add", *beat_ctl)
        for p, raw in enumerate(raw_beats):
            addend = Signal(signed(acc_bits + 1), name=f"addend{p}")
            m.d.sync += addend.eq(limit(m, raw, acc_bits + 1, spec.saturate, f"clamped{p}"))
            beats.append(addend)

        # accumulate, saturating (or wrapping) after every beat: read, add, write back. A word
        # holds a group's P lanes at (bank, entry, group); two banks, so one vector accumulates
        # while the previous one is read out. (LUT RAM, read asynchronously in the addend
        # stage: a block RAM's slow output in that loop -- read, add, write back -- did not
        # close 100 MHz on ECP5, docs/hw-analog-tile.md)
        eb, gb = (depth - 1).bit_length(), (G - 1).bit_length()

        def acc_addr(bank, entry, group):
            return Cat(group[:gb], entry[:eb], bank)

        m.submodules.acc = acc_mem = Memory(shape=unsigned(P * acc_bits), depth=2 << (eb + gb),
                                            init=[])
        wp = acc_mem.write_port()
        old = acc_mem.read_port(domain="comb")
        abank = Signal()  # the bank being accumulated
        complete = add_valid & add_last
        m.d.comb += [old.addr.eq(acc_addr(abank, add_entry, add_group)), wp.addr.eq(old.addr),
                     wp.en.eq(add_valid)]
        sums = []
        for p, beat in enumerate(beats):
            prev = Mux(add_first, 0, old.data.word_select(p, acc_bits).as_signed())
            total = Signal(signed(acc_bits + 2), name=f"sum{p}")
            m.d.comb += total.eq(prev + beat)
            sums.append(_limit_narrow(m, total, acc_bits, spec.saturate, f"limited{p}"))
        m.d.comb += wp.data.eq(Cat(*sums))

        # -- results: complete banks, read channel by channel, released by the reader ------------
        r = self.result
        done = Signal(range(3))  # complete results not yet released
        rbank = Signal()  # the bank of the oldest one
        with m.If(complete):
            m.d.sync += abank.eq(~abank)
        with m.If(r.release):
            m.d.sync += rbank.eq(~rbank)
        m.d.sync += done.eq(done + complete - r.release)
        m.d.comb += r.valid.eq(done != 0)
        # a read goes through RESULT_DEPTH stages that move together in every cycle without
        # `stall`: (1) the channel registered (the reader's address, from outside the unit,
        # ends at a flip-flop), (2) its word's address in the accumulator memory (entry, lane
        # group), its lane's slot in the word and its column tile, registered (the memory's
        # address logic then starts at flip-flops), (3) the accumulator read, (4) the channel
        # and its column tile's drift factor, (5) the partial products, (6) their rounded sum;
        # `data` is that, saturated
        move = ~r.stall
        ch = Signal.like(r.addr)
        ch_en = Signal()
        with m.If(move):
            m.d.sync += ch_en.eq(r.en)
        # (loaded only with a read: a register loading the reader's address every cycle
        # would be merged by synthesis with the reader's own copy, outside the unit)
        with m.If(move & r.en):
            m.d.sync += ch.eq(r.addr)
        lane = ch // depth
        at_en = Signal()
        at_entry = Signal(_counter(depth))
        at_group = Signal(_counter(G))
        at_slot = Signal(_counter(P))
        at_tile = Signal(spec.col_tiles)  # the channel's column tile, one-hot
        with m.If(move):
            m.d.sync += at_en.eq(ch_en)
        with m.If(move & ch_en):
            m.d.sync += [at_entry.eq(ch % depth), at_group.eq(lane // P), at_slot.eq(lane % P),
                         at_tile.eq(Cat(*(ch // spec.channels_per_tile == c
                                          for c in range(spec.col_tiles))))]
        rd = acc_mem.read_port(transparent_for=())
        rd_slot = Signal(_counter(P))
        rd_tile = Signal(spec.col_tiles)
        read = at_en & move
        m.d.comb += [rd.addr.eq(acc_addr(rbank, at_entry, at_group)), rd.en.eq(read)]
        with m.If(read):
            m.d.sync += [rd_slot.eq(at_slot), rd_tile.eq(at_tile)]
        final = Signal(signed(acc_bits))
        scale = Signal(SCALE_BITS)
        # the drift factors as copies beside the product (the registers themselves sit by the
        # register port): a factor written while idle is in its copy a cycle later
        drift_here = [Signal.like(d, name=f"drift_here{c}") for c, d in enumerate(drift)]
        m.d.sync += [h.eq(d) for h, d in zip(drift_here, drift, strict=True)]
        with m.If(move):
            m.d.sync += [final.eq(rd.data.word_select(rd_slot, acc_bits)),
                         scale.eq(select_onehot(rd_tile, drift_here))]
        # drift compensation: final x scale / 2^SCALE_FRAC_BITS, rounded, saturated. The
        # product is taken in pieces of _PRODUCT_CHUNK bits of `final` (unsigned, the top one
        # signed), a multiplier each; all partial products but the lowest are multiples of
        # 2^_PRODUCT_CHUNK, above the fraction bits, so the rounding is the lowest one's alone:
        # its bits below the fraction point decide the increment, which enters the sum of the
        # shifted partials as its carry
        chunk = _PRODUCT_CHUNK
        assert chunk > SCALE_FRAC_BITS
        partials = []
        for i, lo in enumerate(range(0, acc_bits, chunk)):
            hi = min(lo + chunk, acc_bits)
            piece = final[lo:hi].as_signed() if hi == acc_bits else final[lo:hi]
            p = Signal(signed(hi - lo + SCALE_BITS + 1), name=f"partial{i}")
            with m.If(move):
                m.d.sync += p.eq(piece * scale)
            partials.append((lo, p))
        p0 = partials[0][1]
        up = _round_increment(p0[SCALE_FRAC_BITS], p0[SCALE_FRAC_BITS - 1],
                              p0[:SCALE_FRAC_BITS - 1].any(), spec.rounding)
        rounded = Signal(signed(acc_bits + SCALE_BITS + 2 - SCALE_FRAC_BITS))
        with m.If(move):
            m.d.sync += rounded.eq(sum((p << (lo - SCALE_FRAC_BITS) for lo, p in partials[1:]),
                                       p0 >> SCALE_FRAC_BITS) + up)
        m.d.comb += r.data.eq(limit(m, rounded, acc_bits, spec.saturate, "scaled"))
        return m
