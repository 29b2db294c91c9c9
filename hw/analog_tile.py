"""The analog tile unit: word-line/DAC driver, ADC controllers, shift-add reduction and
calibration around the crossbar shell (the RTL of :mod:`cimforge.golden.analog_tile`)."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
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
from cimforge.hw.numerics import digit_shift, limit, round_shift, select, tree_sum

__all__ = ["AnalogTile", "csr_signature", "input_layout", "result_layout"]


def csr_signature() -> wiring.Signature:
    """Register write port, from the writer's side: ``data`` goes to ``addr`` in a cycle with
    ``we`` high (see :data:`cimforge.golden.analog_tile.REGISTERS`)."""
    return wiring.Signature({
        "addr": Out(CSR_ADDR_BITS),
        "data": Out(CSR_DATA_BITS),
        "we": Out(1),
    })


def input_layout(spec: AnalogTileSpec) -> data.ArrayLayout:
    """One input vector: ``inputs`` signed ``act_bits`` values (row ``t * rows + r`` is row
    ``r`` of row tile ``t``)."""
    return data.ArrayLayout(signed(spec.act_bits), spec.inputs)


def result_layout(spec: AnalogTileSpec) -> data.ArrayLayout:
    """One result: ``outputs`` signed ``acc_bits`` values (channel ``c * channels_per_tile +
    h`` is channel ``h`` of column tile ``c``)."""
    return data.ArrayLayout(signed(spec.acc_bits), spec.outputs)


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
    :mod:`cimforge.golden.analog_tile`); the sum is scaled by the column tile's drift-compensation
    register, rounded and saturated as the config says, and offered on ``o_stream``.

    Timing: exactly :class:`cimforge.golden.analog_tile.AnalogTileTiming` -- one read per
    ``read_cycles`` cycles at full rate, with no gap between vectors; a result
    ``AnalogTileTiming.result_latency`` (``read_cycles + TAIL``) cycles after its vector's last
    read issues.

    Parameters
    ----------
    spec : AnalogTileSpec

    Members
    -------
    i_stream : In(stream.Signature(input_layout(spec)))
        Input vectors.
    o_stream : Out(stream.Signature(result_layout(spec)))
        Results, one per input vector.
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
            "o_stream": Out(stream.Signature(result_layout(spec))),
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
        # the shift of each slice's codes relative to the finest range (registered: a range
        # written while idle takes effect in the next cycle)
        e_min = rexp[0]
        for k in range(1, S):
            e_min = Mux(rexp[k] < e_min, rexp[k], e_min)
        slice_shift = [Signal(range(spec.max_term_shift + 1), name=f"slice_shift{k}")
                       for k in range(S)]
        m.d.sync += [slice_shift[k].eq(k * spec.bits_per_cell + rexp[k] - e_min)
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
        m.d.sync += count.eq(count + accept - pop)
        with m.If(pop):
            m.d.sync += head.eq(~head)
        vector = Signal(layout)
        m.d.comb += vector.eq(Mux(head, buf[1], buf[0]))

        # -- read sequencer ------------------------------------------------------------------
        rd_group = Signal(_counter(groups))
        rd_digit = Signal(_counter(D))
        wait = Signal(_counter(L))
        outstanding = Signal(range(3))  # vectors started whose results are not yet taken
        first_read = (rd_group == 0) & (rd_digit == 0)
        last_read = (rd_group == groups - 1) & (rd_digit == D - 1)
        issue = Signal()
        m.d.comb += [
            issue.eq((count != 0) & (wait == 0) & (~first_read | (outstanding != 2))),
            pop.eq(issue & last_read),
        ]
        bank = Signal()
        samp_digit = Signal(_counter(D))
        samp_last = Signal()
        m.d.sync += x.sample.eq(issue)
        with m.If(wait != 0):
            m.d.sync += wait.eq(wait - 1)
        with m.If(issue):
            m.d.sync += [
                wait.eq(L - 1),
                x.sample_bank.eq(bank),
                bank.eq(~bank),
                samp_digit.eq(rd_digit),
                samp_last.eq(last_read),
            ]
            with m.If(rd_digit == D - 1):
                m.d.sync += [rd_digit.eq(0),
                             rd_group.eq(Mux(rd_group == groups - 1, 0, rd_group + 1))]
            with m.Else():
                m.d.sync += rd_digit.eq(rd_digit + 1)
        transfer = self.o_stream.valid & self.o_stream.ready
        m.d.sync += outstanding.eq(outstanding + (issue & first_read) - transfer)

        # word-line drive: digit rd_digit of the rows of group rd_group, 0 elsewhere
        for i in range(spec.inputs):
            xu = vector[i].as_unsigned()
            digits = [xu[slice(*digit_bits(d, spec.act_bits, spec.dac_bits))]
                      for d in range(D)]
            row_group = (i // spec.rows) * spec.groups + (i % spec.rows) // spec.rows_per_read
            drive = Mux(issue & (rd_group == row_group), select(rd_digit, digits), 0)
            m.d.sync += x.wl[i].eq(drive)

        # -- ADC controllers -----------------------------------------------------------------
        tc = spec.conversion_cycles
        active = Signal()
        step = Signal(_counter(spec.cols_per_adc))
        tick = Signal(_counter(tc))  # SAR bit being decided
        conv_digit = Signal(_counter(D))
        conv_last = Signal()  # converting the vector's last read
        m.d.comb += [x.col_sel.eq(step)]
        step_done = Signal()
        m.d.comb += step_done.eq(active & (tick == tc - 1))
        codes = [Signal(spec.adc_bits, name=f"code{a}") for a in range(adcs)]
        code_valid = Signal()
        code_step = Signal(_counter(spec.cols_per_adc))
        code_digit = Signal(_counter(D))
        code_last = Signal()
        m.d.sync += code_valid.eq(step_done)
        with m.If(step_done):
            m.d.sync += [code_step.eq(step), code_digit.eq(conv_digit),
                         code_last.eq(conv_last & (step == spec.cols_per_adc - 1))]
        if spec.adc_kind == "sar":
            sar = [Signal(spec.adc_bits, name=f"sar{a}") for a in range(adcs)]
            mask = Signal(spec.adc_bits)
            m.d.comb += mask.eq(Const(1 << (spec.adc_bits - 1), spec.adc_bits) >> tick)
            m.d.comb += x.trial.as_value().eq(Cat(*(sar[a] | mask for a in range(adcs))))
            for a in range(adcs):
                decided = Mux(x.decision[a], sar[a] | mask, sar[a])
                with m.If(active):
                    m.d.sync += sar[a].eq(Mux(step_done, 0, decided))
                with m.If(step_done):
                    m.d.sync += codes[a].eq(decided)
        else:
            for a in range(adcs):
                ones = tree_sum([x.thermo[a][b] for b in range(spec.code_max)])
                with m.If(step_done):
                    m.d.sync += codes[a].eq(ones)
        with m.If(active):
            m.d.sync += tick.eq(Mux(tick == tc - 1, 0, tick + 1))
            with m.If(step_done):
                m.d.sync += step.eq(Mux(step == spec.cols_per_adc - 1, 0, step + 1))
                with m.If(step == spec.cols_per_adc - 1):
                    m.d.sync += active.eq(0)
        with m.If(x.sample):  # the read sampled now is converted from the next cycle
            m.d.sync += [active.eq(1), step.eq(0), tick.eq(0), x.conv_bank.eq(x.sample_bank),
                         conv_digit.eq(samp_digit), conv_last.eq(samp_last)]

        # -- shift-add: one beat per conversion step -----------------------------------------
        d_shift = Signal(range(spec.act_bits))
        m.d.comb += d_shift.eq(digit_shift(code_digit, spec.act_bits, spec.dac_bits, D))
        sign_digit = code_digit == D - 1
        cpt, cpc, cpa = spec.channels_per_tile, spec.cols_per_channel, spec.cols_per_adc
        beats = []
        beat_valid = Signal()
        beat_last = Signal()
        m.d.sync += [beat_valid.eq(code_valid), beat_last.eq(code_valid & code_last)]
        for tile in range(spec.col_tiles):
            for h in range(cpt):
                # the ADCs converting columns of channel h, and at which steps
                terms = []
                for a in range(spec.adcs_per_tile):
                    steps = {j: a * cpa + j - h * cpc for j in range(cpa)
                             if (a * cpa + j) // cpc == h}
                    if not steps:
                        continue
                    code = codes[tile * spec.adcs_per_tile + a]
                    # the steps are a contiguous run and the column within the channel is
                    # the step plus a constant: plain arithmetic, no lookup table
                    first, last = min(steps), max(steps)
                    used = Const(1)
                    if first > 0:
                        used &= code_step >= first
                    if last < cpa - 1:
                        used &= code_step <= last
                    q = Signal(range(cpc), name=f"col_t{tile}_h{h}_a{a}")
                    m.d.comb += q.eq(code_step + (steps[first] - first))
                    shift = Signal(range(spec.max_term_shift + 1),
                                   name=f"shift_t{tile}_h{h}_a{a}")
                    m.d.comb += shift.eq(d_shift + select(q >> 1, slice_shift))
                    mag = Signal(spec.term_bits, name=f"mag_t{tile}_h{h}_a{a}")
                    m.d.comb += mag.eq(Mux(used, code << shift, 0))
                    terms.append(Mux(q[0] ^ sign_digit, -mag, mag))
                width = spec.term_bits + max(1, len(terms)).bit_length() + 1
                beat = Signal(signed(width), name=f"beat_t{tile}_h{h}")
                m.d.sync += beat.eq(tree_sum(terms))
                beats.append(beat)

        # accumulate, saturating (or wrapping) after every beat
        finals = []
        final_valid = Signal()
        m.d.sync += final_valid.eq(beat_valid & beat_last)
        for j, beat in enumerate(beats):
            acc = Signal(signed(spec.acc_bits), name=f"acc{j}")
            total = Signal(signed(max(spec.acc_bits, len(beat)) + 1), name=f"sum{j}")
            m.d.comb += total.eq(acc + beat)
            limited = limit(m, total, spec.acc_bits, spec.saturate, f"limited{j}")
            final = Signal(signed(spec.acc_bits), name=f"final{j}")
            with m.If(beat_valid):
                m.d.sync += acc.eq(Mux(beat_last, 0, limited))
                with m.If(beat_last):
                    m.d.sync += final.eq(limited)
            finals.append(final)

        # drift compensation: fixed-point scale, rounded, saturated
        scaled = []
        for j, final in enumerate(finals):
            product = Signal(signed(spec.acc_bits + SCALE_BITS + 1), name=f"product{j}")
            m.d.comb += product.eq(final * drift[j // cpt])
            rounded = round_shift(m, product, SCALE_FRAC_BITS, spec.rounding, f"rounded{j}")
            scaled.append(limit(m, rounded, spec.acc_bits, spec.saturate, f"scaled{j}"))

        # -- output buffer: two results -------------------------------------------------------
        out = [Signal(result_layout(spec), name=f"out{i}") for i in range(2)]
        o_head = Signal()
        o_count = Signal(range(3))
        m.d.comb += [self.o_stream.valid.eq(o_count != 0),
                     self.o_stream.payload.eq(Mux(o_head, out[1], out[0]))]
        with m.If(final_valid):
            for i in range(2):
                with m.If((o_head ^ (o_count == 1)) == i):
                    m.d.sync += out[i].eq(Cat(*scaled))
        m.d.sync += o_count.eq(o_count + final_valid - transfer)
        with m.If(transfer):
            m.d.sync += o_head.eq(~o_head)
        return m
