"""The per-token scaling unit (:class:`cimforge.hw.token_quant.TokenQuantizer`): its
parameters, the golden codes and exponents of rows
(:func:`cimforge.golden.nonlinear.token_quantize`) and its cycle model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cimforge.config import Config
from cimforge.golden.nonlinear import token_quantize
from cimforge.golden.numerics import as_dict, positive_int
from cimforge.golden.stream_timing import OutputPipeline, RowRing, Schedule, Source

__all__ = ["TokenQuantSpec", "TokenQuantTiming", "token_quant_rows"]




@dataclass(frozen=True)
class TokenQuantSpec:
    """The per-token scaling unit: rows of ``d`` signed ``in_bits`` values in, each row
    scaled to signed ``out_bits`` by a power of two
    (:func:`cimforge.golden.nonlinear.token_quantize`); every output carries the row's exponent."""

    d: int
    in_bits: int
    out_bits: int
    rounding: str
    slots: int = 2  # row buffers: one filling, one being read

    def __post_init__(self):
        positive_int("slots", self.slots)

    @classmethod
    def from_config(cls, cfg: Config) -> TokenQuantSpec:
        return cls(d=cfg.model.d_model, in_bits=cfg.nonlinear.residual_bits,
                   out_bits=cfg.numerics.act_bits, rounding=cfg.numerics.rounding)

    def as_dict(self) -> dict:
        return as_dict(self)

    @property
    def max_exp(self) -> int:
        return self.in_bits - self.out_bits + 1

    @property
    def timing(self) -> TokenQuantTiming:
        return TokenQuantTiming(self)


def token_quant_rows(spec: TokenQuantSpec, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Golden codes and exponents of ``rows`` (n, d)."""
    return token_quantize(np.asarray(rows, dtype=np.int64), spec.out_bits, spec.rounding)


class TokenQuantTiming:
    """Cycle model of :class:`cimforge.hw.token_quant.TokenQuantizer`: **collect** takes a
    value per cycle into one of ``slots`` row buffers (default 2), tracking the largest
    magnitude (the exponent is known with the row's last value); **output** reads a finished
    row, a value per cycle, through a three-stage stall pipeline (read, with the exponent;
    shift and rounding bit; round and saturate). A row's first result comes ``d + 3`` cycles
    after its first value; with two slots or more, rows stream at one value per cycle."""

    OUT_DEPTH = 3

    def __init__(self, spec: TokenQuantSpec):
        self.spec = spec

    def first_result_latency(self) -> int:
        return self.spec.d + 3

    def schedule(self, offered: Sequence[int | None],
                 sink_ready: Callable[[int], bool] | None = None) -> Schedule:
        """Predict a run of values (rows of ``d``), offered as for
        :meth:`~cimforge.golden.stream_timing.PipelineTiming.schedule`."""
        src, out = Source(offered), OutputPipeline(self.OUT_DEPTH, sink_ready, len(offered))
        rows = RowRing(self.spec.d, self.spec.slots)
        cycle = 0
        while not out.done:
            advance = out.begin(cycle)
            rows.begin()
            take_in = rows.can_collect and src.offering(cycle)
            c_issue = advance and (rows.c_busy or rows.full[rows.c_slot])
            if take_in:
                rows.collect()
                src.accepted.append(cycle)
            if c_issue:
                rows.issue()
            out.end(cycle, c_issue)
            rows.end()
            cycle += 1
        return out.schedule(src)
