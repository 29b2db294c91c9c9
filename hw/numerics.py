"""Combinational integer steps shared by the blocks: the RTL of :mod:`golden.numerics`."""

from __future__ import annotations

from amaranth import Module, Signal, signed

__all__ = ["limit", "round_shift"]


def limit(m: Module, value, bits: int, saturate: bool, name: str) -> Signal:
    """``value`` clamped (``saturate``) or wrapped to signed ``bits``, as a new signal
    (:func:`golden.numerics.saturate` / :func:`golden.numerics.wrap`)."""
    out = Signal(signed(bits), name=name)
    if saturate:
        hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
        with m.If(value > hi):
            m.d.comb += out.eq(hi)
        with m.Elif(value < lo):
            m.d.comb += out.eq(lo)
        with m.Else():
            m.d.comb += out.eq(value)
    else:
        m.d.comb += out.eq(value[:bits])
    return out


def round_shift(m: Module, value, shift: int, mode: str, name: str) -> Signal:
    """Signed ``value / 2^shift`` rounded by ``mode`` (:func:`golden.numerics.round_shift`:
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
