"""Integer rounding and saturation steps shared by every bit-exact golden block."""

from __future__ import annotations

from dataclasses import fields

import numpy as np

__all__ = ["CodeAccRanges", "as_dict", "positive_int", "round_shift", "round_shift_var",
           "saturate", "wrap"]


def round_shift(x: np.ndarray, shift: int, mode: str) -> np.ndarray:
    """``x / 2^shift`` rounded to an integer by ``mode`` (int64 in, int64 out).

    ``floor``: arithmetic shift right; ``half_up``: ties towards +inf; ``half_even``: ties to
    the even neighbour.
    """
    x = np.asarray(x, dtype=np.int64)
    if shift == 0:
        return x.copy()
    if mode == "floor":
        return x >> shift
    half = np.int64(1) << (shift - 1)
    if mode == "half_up":
        return (x + half) >> shift
    if mode == "half_even":
        q = x >> shift
        r = x - (q << shift)
        return q + ((r > half) | ((r == half) & ((q & 1) == 1))).astype(np.int64)
    raise ValueError(f"mode must be one of floor, half_up, half_even, not {mode!r}")


def round_shift_var(x: np.ndarray, shift: np.ndarray, mode: str) -> np.ndarray:
    """:func:`round_shift` with a per-element shift (``>= 0``; 0 passes ``x`` through)."""
    x = np.asarray(x, dtype=np.int64)
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), x.shape)
    q = x >> shift
    if mode == "floor":
        return q
    r = x - (q << shift)
    half = np.where(shift > 0, np.int64(1) << np.maximum(shift - 1, 0), np.int64(1) << 62)
    if mode == "half_up":
        return q + (r >= half)
    return q + ((r > half) | ((r == half) & ((q & 1) == 1)))


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement truncation of int64 values to signed ``bits``."""
    half = np.int64(1) << (bits - 1)
    return ((x + half) & ((half << 1) - 1)) - half


def saturate(x: np.ndarray, bits: int) -> np.ndarray:
    """Clamp int64 values to signed ``bits``."""
    return np.clip(x, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


class CodeAccRanges:
    """Ranges of an unsigned ``adc_bits`` code and a signed ``acc_bits`` accumulator, for
    parameter classes that define those two widths."""

    adc_bits: int
    acc_bits: int

    @property
    def code_max(self) -> int:
        return (1 << self.adc_bits) - 1

    @property
    def acc_min(self) -> int:
        return -(1 << (self.acc_bits - 1))

    @property
    def acc_max(self) -> int:
        return (1 << (self.acc_bits - 1)) - 1


def positive_int(name: str, value: object) -> None:
    """Raise ValueError unless ``value`` is an int >= 1 (a parameter check)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")


def as_dict(spec) -> dict:
    """A parameter dataclass's fields as a dict (what a manifest records)."""
    return {f.name: getattr(spec, f.name) for f in fields(spec)}
