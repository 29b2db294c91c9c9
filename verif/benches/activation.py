"""cocotb bench of the activation unit (``hw/activation.py``, :class:`Activation`): every
input code (exhaustive: the unit's input is at most 16 bits), at two input ranges, under the
flow patterns, bit- and cycle-exact against :mod:`cimforge.golden.activation`. The table (or the
polynomial's constants) is programmed through the unit's ports first."""

from __future__ import annotations

import cocotb
import numpy as np

from cimforge.golden.activation import ActivationSpec, activation_items
from cimforge.verif.nonlinear_case import activation_program
from cimforge.verif.unit_bench import UnitBench


async def _exhaustive(dut, name: str, pattern: str, peak: float, tb=None) -> None:
    if tb is None:
        tb = UnitBench(dut, name, pattern, "activation", ActivationSpec)
        await tb.start()
    spec = tb.spec
    program = activation_program(spec, peak / ((1 << (spec.in_bits - 1)) - 1),
                                 peak / ((1 << (spec.out_bits - 1)) - 1))
    if "table" in program:
        await tb.program([{"table_addr": a, "table_data": int(v)}
                          for a, v in enumerate(program["table"])], "table_we")
    if "poly" in program:
        p = program["poly"]
        tb.set_inputs(b=p.b, c=p.c, one=p.one, mult=p.out.mult, shift=p.out.shift)
    codes = tb.rng.permutation(np.arange(-(1 << (spec.in_bits - 1)), 1 << (spec.in_bits - 1)))
    want = activation_items(spec, codes, **program)
    await tb.run([{"data": int(c)} for c in codes], [{"data": int(v)} for v in want],
                 spec.timing.schedule, spec.depth)


@cocotb.test()
@cocotb.parametrize(pattern=["full_rate", "idle", "backpressure", "idle_backpressure"])
async def exhaustive(dut, pattern: str):
    """Every input code once, in random order, inputs spanning +-6."""
    await _exhaustive(dut, "exhaustive", pattern, 6.0)


@cocotb.test()
async def exhaustive_wide_range(dut):
    """Every input code, inputs spanning +-24 (MiniLM's first FFN reaches 24.8)."""
    await _exhaustive(dut, "exhaustive_wide_range", "full_rate", 24.0)


@cocotb.test()
async def reprogrammed(dut):
    """Programmed for one layer's scales, run, then programmed for another's (+-3) and run
    again: the second programming takes effect in full, on a unit that has run."""
    tb = UnitBench(dut, "reprogrammed", "full_rate", "activation", ActivationSpec)
    await tb.start()
    await _exhaustive(dut, "reprogrammed", "full_rate", 12.0, tb)
    tb.source.sent.clear()
    tb.sink.received.clear()
    await _exhaustive(dut, "reprogrammed", "full_rate", 3.0, tb)
