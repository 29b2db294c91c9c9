"""Combinational steps shared by the blocks: the integer steps of :mod:`cimforge.golden.numerics`,
and multiplexing that simulates the same in every simulator."""

from __future__ import annotations

from amaranth import Const, Format, Module, Mux, Signal, Value, signed
from amaranth.lib import data

__all__ = ["PackedArray", "digit_shift", "limit", "round_shift", "round_shift_var", "select",
           "tree_sum"]


class PackedArray(data.ArrayLayout):
    """An :class:`~amaranth.lib.data.ArrayLayout` whose signals carry no per-element names
    into the generated Verilog. For an ``ArrayLayout`` signal Amaranth emits a wire and an
    assignment per element, in every module the signal passes through: a MiniLM layer's
    accelerator was 40 MB of Verilog, mostly those, and took minutes to convert. Elements
    are indexed as in any ``ArrayLayout``; only the debug names go."""

    def format(self, value, format_spec):
        if format_spec != "":
            raise ValueError(f"Format specifier {format_spec!r} is not supported for layouts")
        return Format("{}", Value.cast(value))


def limit(m: Module, value, bits: int, saturate: bool, name: str) -> Signal:
    """``value`` clamped (``saturate``) or wrapped to signed ``bits``, as a new signal
    (:func:`cimforge.golden.numerics.saturate` / :func:`cimforge.golden.numerics.wrap`).

    Written as multiplexers, not ``m.If``: a conditional combinational block becomes an
    ``always @*`` in the generated Verilog, which Icarus does not evaluate at time 0, so a
    value that never changes (an unused channel's 0) would read as X there."""
    out = Signal(signed(bits), name=name)
    if saturate:
        hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
        m.d.comb += out.eq(Mux(value > hi, hi, Mux(value < lo, lo, value)))
    else:
        m.d.comb += out.eq(value[:bits])
    return out


def round_shift(m: Module, value, shift: int, mode: str, name: str) -> Signal:
    """Signed ``value / 2^shift`` rounded by ``mode`` (:func:`cimforge.golden.numerics.round_shift`:
    ``floor``, ``half_up``, ``half_even``), as a new signal."""
    out = Signal(signed(len(value) - shift + 1), name=name)
    q = value >> shift
    rest = value[:shift]
    half = 1 << (shift - 1)
    if mode == "floor":
        m.d.comb += out.eq(q)
    elif mode == "half_up":
        m.d.comb += out.eq(q + (rest >= half))
    elif mode == "half_even":
        m.d.comb += out.eq(q + ((rest > half) | ((rest == half) & q[0])))
    else:
        raise ValueError(f"mode must be one of floor, half_up, half_even, not {mode!r}")
    return out


def select(index, values: list):
    """``values[index]`` as a chain of 2-way multiplexers. (An ``Array`` lookup becomes a
    ``case`` statement in the generated Verilog, which Icarus does not evaluate at time 0 when
    its inputs never change: constant tables there read as X.)"""
    out = values[0]
    for i, v in enumerate(values[1:], start=1):
        out = Mux(index == i, v, out)
    return out


def tree_sum(values: list):
    """Sum as a balanced adder tree (widths grow by one bit per level, not per term)."""
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


def digit_shift(digit, input_bits: int, dac_bits: int, digits: int):
    """Weight exponent of input digit ``digit`` (a signal): ``digit * dac_bits``, and
    ``input_bits - 1`` for the last digit, the sign bit (:func:`cimforge.config.digit_shift`).
    With a 1-bit DAC that is the digit itself."""
    if dac_bits == 1:
        return digit
    return Mux(digit == digits - 1, input_bits - 1, digit * dac_bits)


def round_shift_var(m: Module, value, shift, mode: str, name: str) -> Signal:
    """Signed ``value / 2^shift`` for an unsigned signal ``shift`` (0 passes ``value``
    through), rounded by ``mode`` (:func:`cimforge.golden.numerics.round_shift_var`), as a new
    signal."""
    out = Signal(signed(len(value) + 1), name=name)
    width = len(value)
    if 2 ** len(shift) - 1 > width:
        # a shift beyond the width rounds like a shift by the width: |value / 2^width| <= 1/2
        clamped = Signal(range(width + 1), name=f"{name}_shift")
        m.d.comb += clamped.eq(Mux(shift > width, width, shift))
        shift = clamped
    q = Signal(signed(len(value)), name=f"{name}_q")
    m.d.comb += q.eq(value >> shift)
    if mode == "floor":
        m.d.comb += out.eq(q)
        return out
    ones = Const((1 << width) - 1, width)
    rest = value.as_unsigned() & ~(ones << shift)[:width]
    half = Mux(shift == 0, 0, Const(1, width) << (shift - 1)[:len(shift)])[:width]
    if mode == "half_up":
        up = (shift != 0) & (rest >= half)
    elif mode == "half_even":
        up = (shift != 0) & ((rest > half) | ((rest == half) & q[0]))
    else:
        raise ValueError(f"mode must be one of floor, half_up, half_even, not {mode!r}")
    m.d.comb += out.eq(q + up)
    return out
