"""The activation unit (:class:`cimforge.hw.activation.Activation`): GELU by table or I-BERT
polynomial, or ReLU; its parameters, the function of one code and its cycle model, a stall
pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cimforge.config import Config
from cimforge.golden.nonlinear import (
    GeluPoly,
    NonlinearSpec,
    gelu_lut,
    gelu_poly,
    gelu_poly_const_bits,
    relu,
)
from cimforge.golden.numerics import as_dict
from cimforge.golden.stream_timing import PipelineTiming

__all__ = ["ACT_FUNCTIONS", "ActivationSpec", "activation_items"]


ACT_FUNCTIONS = ("lut", "poly", "relu")


@dataclass(frozen=True)
class ActivationSpec:
    """The activation unit: signed ``in_bits`` codes in, signed ``out_bits`` out, by
    ``function``: ``lut`` (a programmable ``2^in_bits``-entry table,
    :func:`cimforge.golden.nonlinear.gelu_lut`), ``poly`` (I-BERT's integer GELU with programmable
    constants, :func:`cimforge.golden.nonlinear.gelu_poly`) or ``relu``."""

    function: str
    in_bits: int
    out_bits: int
    mult_bits: int
    rounding: str

    def __post_init__(self):
        if self.function not in ACT_FUNCTIONS:
            raise ValueError(f"function must be one of {', '.join(ACT_FUNCTIONS)}, "
                             f"not {self.function!r}")
        if self.function == "relu" and self.out_bits < self.in_bits:
            raise ValueError("relu needs out_bits >= in_bits")

    @classmethod
    def from_config(cls, cfg: Config) -> ActivationSpec:
        nl = cfg.nonlinear
        relu = nl.activation == "relu"
        per_token = cfg.numerics.act_scale == "per_token"
        out_bits = nl.residual_bits if per_token else cfg.numerics.act_bits
        # ReLU takes the FFN's output requantised straight to the activation format
        return cls(function="relu" if relu else nl.gelu_method,
                   in_bits=out_bits if relu else nl.gelu_in_bits, out_bits=out_bits,
                   mult_bits=nl.mult_bits, rounding=cfg.numerics.rounding)

    def as_dict(self) -> dict:
        return as_dict(self)

    @property
    def const_bits(self) -> int:
        """Signed width of the polynomial constants (``gelu_poly_const_bits``)."""
        return gelu_poly_const_bits(self.nonlinear())

    @property
    def product_bits(self) -> int:
        """Signed width of ``q (one - L) * mult``."""
        return self.in_bits + self.const_bits + self.mult_bits

    @property
    def depth(self) -> int:
        return {"lut": 2, "poly": 5, "relu": 1}[self.function]

    @property
    def timing(self) -> PipelineTiming:
        return PipelineTiming(self.depth)

    def nonlinear(self) -> NonlinearSpec:
        # (ReLU uses no GELU method; "poly" has no limit on the input width)
        return NonlinearSpec(gelu_method="lut" if self.function == "lut" else "poly",
                             gelu_in_bits=self.in_bits, mult_bits=self.mult_bits,
                             rounding=self.rounding)


def activation_items(spec: ActivationSpec, q: np.ndarray, table: np.ndarray | None = None,
                     poly: GeluPoly | None = None) -> np.ndarray:
    """The activation unit's output for codes ``q``."""
    sp = spec.nonlinear()
    if spec.function == "lut":
        return gelu_lut(q, table, sp)
    if spec.function == "poly":
        return gelu_poly(q, poly, sp, spec.out_bits)
    return relu(q)
