"""cocotb bench of the requantiser (``hw/requant.py``, :class:`Requantizer`): random items
(every rounding and saturation path, token exponents, residuals) and corners, under four
flow patterns, bit- and cycle-exact against :mod:`cimforge.golden.requant`."""

from __future__ import annotations

import cocotb

from cimforge.golden.requant import RequantSpec
from cimforge.verif.nonlinear_case import (
    expected_requant,
    requant_corners,
    requant_items,
    requant_linear_layer,
)
from cimforge.verif.streams import STREAM_PATTERNS
from cimforge.verif.unit_bench import UnitBench


async def _run(dut, name: str, pattern: str, make) -> None:
    tb = UnitBench(dut, name, pattern, "requant", RequantSpec)
    await tb.start()
    items = make(tb.spec, tb.rng)
    await tb.run(items, [{"data": v} for v in expected_requant(tb.spec, items)],
                 tb.spec.timing.schedule, tb.spec.DEPTH)


@cocotb.test()
@cocotb.parametrize(pattern=list(STREAM_PATTERNS))
async def random_items(dut, pattern: str):
    """400 random items: accumulators of every magnitude, exponents, multipliers, shifts."""
    await _run(dut, "random_items", pattern, lambda spec, rng: requant_items(spec, rng, 400))


@cocotb.test()
async def corners(dut):
    """Extreme accumulators, biases and residuals; shifts 0 and ``MAX_SHIFT``; exponents up
    to the field's largest (the shifted sum saturating beyond ``max_exp``); both
    saturations."""
    await _run(dut, "corners", "full_rate", lambda spec, rng: requant_corners(spec))


@cocotb.test()
async def linear_layer(dut):
    """A linear layer's outputs as the integer model makes them: int8 rows times int8
    weights (int32), per-token exponents, int32 biases, per-channel multipliers sharing
    one shift, residuals; to the residual format and to int8."""
    await _run(dut, "linear_layer", "full_rate",
               lambda spec, rng: requant_linear_layer(spec, rng, tokens=12, channels=24))
