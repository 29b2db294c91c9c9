"""The requantiser unit (:class:`cimforge.hw.requant.Requantizer`): its parameters, the
bit-exact function of one item and its cycle model, a 3-stage stall pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cimforge.config import WIDE_BITS, Config
from cimforge.golden.numerics import as_dict, round_shift_var, saturate
from cimforge.golden.stream_timing import PipelineTiming

__all__ = ["RequantSpec", "requant_item"]


@dataclass(frozen=True)
class RequantSpec:
    """The requantiser: ``y = sat(sat(round(sat_F((acc << exp) + bias) * mult / 2^shift)) +
    residual)``, the outer two saturations to ``act_bits`` when ``narrow`` else
    ``residual_bits``, ``sat_F`` to signed :attr:`full_bits`.

    ``acc`` is a signed ``acc_bits`` accumulator, ``exp`` the token's exponent (0 ..
    ``max_exp`` from :func:`cimforge.golden.nonlinear.token_quantize`; the field is
    :attr:`exp_field_bits` wide and carries up to :attr:`exp_field_max`), ``bias`` signed
    ``acc_bits + max_exp``, ``mult`` unsigned ``mult_bits``, ``shift`` 0 .. ``MAX_SHIFT``,
    ``residual`` signed ``residual_bits`` (0 for a plain requantisation).

    ``sat_F`` never acts for ``exp <= max_exp`` (``(acc << max_exp) + bias`` fits
    :attr:`full_bits`); it defines the exponents the field can carry beyond ``max_exp``:
    the shifted sum saturates there instead of wrapping."""

    acc_bits: int
    act_bits: int
    residual_bits: int
    mult_bits: int
    rounding: str

    DEPTH = 8  # acc << exp | sat(+ bias) | * mult (partial products) | their sum | shift (high
    # bits) | shift (low bits) | round, saturate | + residual, saturate

    def __post_init__(self):
        if self.product_bits > WIDE_BITS + 1:
            raise ValueError(
                f"the requantiser's product would be {self.product_bits} bits wide "
                f"(numerics.acc_bits {self.acc_bits} + token exponent "
                f"{self.max_exp} + 1 + nonlinear.mult_bits {self.mult_bits}): it must fit "
                f"{WIDE_BITS + 1} bits; use a narrower acc_bits or mult_bits")
        if self.acc_bits + self.exp_field_max > WIDE_BITS:
            raise ValueError(
                f"the requantiser's shifted accumulator would be "
                f"{self.acc_bits + self.exp_field_max} bits wide (numerics.acc_bits "
                f"{self.acc_bits} + the exponent field's largest value {self.exp_field_max}): "
                f"it must fit {WIDE_BITS} bits; use a narrower acc_bits or residual_bits")

    @classmethod
    def from_config(cls, cfg: Config) -> RequantSpec:
        nl = cfg.nonlinear
        return cls(acc_bits=cfg.numerics.acc_bits, act_bits=cfg.numerics.act_bits,
                   residual_bits=nl.residual_bits, mult_bits=nl.mult_bits,
                   rounding=cfg.numerics.rounding)

    def as_dict(self) -> dict:
        return as_dict(self)

    @property
    def max_exp(self) -> int:
        """Largest token exponent: a ``residual_bits`` row scaled to ``act_bits``."""
        return self.residual_bits - self.act_bits + 1

    @property
    def exp_field_bits(self) -> int:
        """Width of the ``exp`` field (unsigned, holds ``max_exp``)."""
        return self.max_exp.bit_length()

    @property
    def exp_field_max(self) -> int:
        """Largest value the ``exp`` field can carry (``>= max_exp``)."""
        return (1 << self.exp_field_bits) - 1

    @property
    def bias_bits(self) -> int:
        return self.acc_bits + self.max_exp

    @property
    def full_bits(self) -> int:
        """Signed width of ``sat_F((acc << exp) + bias)``: exact up to ``exp = max_exp``."""
        return self.bias_bits + 1

    @property
    def product_bits(self) -> int:
        return self.full_bits + self.mult_bits

    @property
    def timing(self) -> PipelineTiming:
        return PipelineTiming(self.DEPTH)


def requant_item(spec: RequantSpec, acc, exp, bias, mult, shift, residual, narrow):
    """The requantiser's result for one item (or arrays of items)."""
    exp = np.asarray(exp, dtype=np.int64)
    if np.any((exp < 0) | (exp > spec.exp_field_max)):
        raise ValueError(f"exp must be in 0..{spec.exp_field_max} (the "
                         f"{spec.exp_field_bits}-bit field)")
    full = saturate((np.asarray(acc, dtype=np.int64) << exp) + bias, spec.full_bits)
    y = round_shift_var(full * np.asarray(mult, dtype=np.int64), shift, spec.rounding)
    narrow = np.asarray(narrow, dtype=bool)
    y = np.where(narrow, saturate(y, spec.act_bits), saturate(y, spec.residual_bits))
    y = y + np.asarray(residual, dtype=np.int64)
    return np.where(narrow, saturate(y, spec.act_bits), saturate(y, spec.residual_bits))
