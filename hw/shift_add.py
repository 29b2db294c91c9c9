"""Shift-add bit-slice reduction unit (the RTL of :mod:`cimforge.golden.shift_add`)."""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from cimforge.golden.shift_add import ShiftAddSpec, ShiftAddTiming
from cimforge.hw.numerics import PackedArray, digit_shift, limit

__all__ = ["ShiftAdd", "beat_layout", "result_layout"]


def beat_layout(spec: ShiftAddSpec) -> data.StructLayout:
    """Payload of one input beat: a code per lane and the tags all lanes share."""
    return data.StructLayout(
        {
            "codes": PackedArray(unsigned(spec.adc_bits), spec.lanes),
            "digit": unsigned(spec.digit_bits),
            "slice": unsigned(spec.slice_bits),
            "negative": unsigned(1),
            "last": unsigned(1),
        }
    )


def result_layout(spec: ShiftAddSpec) -> PackedArray:
    """Payload of one result: a signed accumulator per lane."""
    return PackedArray(signed(spec.acc_bits), spec.lanes)


class ShiftAdd(wiring.Component):
    """Combine ADC codes of bit-serial inputs and bit-sliced weights into integer dot products.

    Every accepted beat adds, per lane, ``(-1)^negative * code << (digit_shift(digit) + slice *
    bits_per_cell)`` to the lane's accumulator, saturating (or wrapping) to ``acc_bits`` after
    each beat; a beat with ``last`` set completes the sum, which is offered on ``o_stream``
    and the accumulators restart from zero. Bit-exact with
    :func:`cimforge.golden.shift_add.shift_add`.

    Pipeline (latency :attr:`latency` = 2 cycles from the accepted ``last`` beat to the result
    being offered; one beat per cycle): stage 1 registers the shifted, signed term -- the
    variable shift is the long path, so it gets its own stage; stage 2 adds and clamps into the
    accumulator and, on ``last``, into the output register. The pipeline advances whenever the
    output register is empty or being read, so ``i_stream.ready`` follows ``o_stream.ready``
    combinationally while a result waits; a full-rate source is never stalled while the sink
    is ready.

    Parameters
    ----------
    spec : ShiftAddSpec
        Widths and numerics (from the config, see :meth:`ShiftAddSpec.from_config`).

    Members
    -------
    i_stream : In(stream.Signature(beat_layout(spec)))
        Beats: ``codes`` (lanes x adc_bits, unsigned), ``digit``, ``slice``, ``negative``,
        ``last``.
    o_stream : Out(stream.Signature(result_layout(spec)))
        Results: lanes x acc_bits, signed.
    """

    def __init__(self, spec: ShiftAddSpec):
        if not isinstance(spec, ShiftAddSpec):
            raise TypeError(f"spec must be a ShiftAddSpec, not {spec!r}")
        self._spec = spec
        super().__init__(
            {
                "i_stream": In(stream.Signature(beat_layout(spec))),
                "o_stream": Out(stream.Signature(result_layout(spec))),
            }
        )

    @property
    def spec(self) -> ShiftAddSpec:
        return self._spec

    @property
    def latency(self) -> int:
        return ShiftAddTiming().latency

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        beat = self.i_stream.payload

        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o_stream.valid | self.o_stream.ready),
            self.i_stream.ready.eq(advance),
        ]

        # Stage 1: shifted, signed terms. digit * dac_bits and slice * bits_per_cell are
        # multiplications by powers of two, i.e. wiring; with a multi-bit DAC the last digit
        # (the sign bit) weighs 2^(input_bits - 1) instead.
        shift = Signal(range(spec.max_shift + 1))
        d_shift = digit_shift(beat.digit, spec.input_bits, spec.dac_bits, spec.input_digits)
        m.d.comb += shift.eq(d_shift + beat.slice * spec.bits_per_cell)
        s1_valid = Signal()
        s1_last = Signal()
        s1_terms = [
            Signal(signed(spec.term_bits + 1), name=f"s1_term{i}") for i in range(spec.lanes)
        ]
        with m.If(advance):
            m.d.sync += [s1_valid.eq(self.i_stream.valid), s1_last.eq(beat.last)]
            for lane, term in enumerate(s1_terms):
                magnitude = (beat.codes[lane] << shift)[: spec.term_bits]
                m.d.sync += term.eq(Mux(beat.negative, -magnitude, magnitude))

        # Stage 2: accumulate with saturation (or wrap) after every beat.
        accs = [Signal(signed(spec.acc_bits), name=f"acc{i}") for i in range(spec.lanes)]
        results = []
        for lane, (acc, term) in enumerate(zip(accs, s1_terms, strict=True)):
            total = Signal(signed(max(spec.acc_bits, spec.term_bits + 1) + 1), name=f"sum{lane}")
            m.d.comb += total.eq(acc + term)
            results.append(limit(m, total, spec.acc_bits, spec.saturate, f"limited{lane}"))

        with m.If(advance):
            with m.If(s1_valid):
                for acc, limited in zip(accs, results, strict=True):
                    m.d.sync += acc.eq(Mux(s1_last, 0, limited))
                with m.If(s1_last):
                    m.d.sync += [
                        self.o_stream.valid.eq(1),
                        self.o_stream.payload.eq(Cat(*results)),
                    ]
                with m.Else():
                    m.d.sync += self.o_stream.valid.eq(0)
            with m.Else():
                m.d.sync += self.o_stream.valid.eq(0)
        return m
