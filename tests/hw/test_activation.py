# amaranth: UnusedElaboratable=no
"""The activation unit in Amaranth's simulator against golden over every input code, bit- and
cycle-exact (fast; the cocotb bench covers the generated Verilog)."""

import numpy as np
import pytest

from cimforge.golden.activation import ActivationSpec, activation_items
from cimforge.hw.activation import Activation
from cimforge.verif.amaranth_stream import run_stream
from cimforge.verif.nonlinear_case import activation_program

SEED = 5


def activation_setup(dut, program: dict):
    """Program the unit in the simulator (the table, or the polynomial's constants)."""
    async def setup(ctx):
        if "table" in program:
            ctx.set(dut.table_we, 1)
            for addr, value in enumerate(program["table"]):
                ctx.set(dut.table_addr, addr)
                ctx.set(dut.table_data, int(value))
                await ctx.tick()
            ctx.set(dut.table_we, 0)
        if "poly" in program:
            poly = program["poly"]
            for name in ("b", "c", "one"):
                ctx.set(getattr(dut, name), getattr(poly, name))
            ctx.set(dut.mult, poly.out.mult)
            ctx.set(dut.shift, poly.out.shift)
    return setup


@pytest.mark.parametrize("function, in_bits, out_bits", [
    ("lut", 8, 16), ("lut", 10, 8), ("poly", 8, 16), ("poly", 12, 8), ("relu", 8, 16)])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_activation_exhaustive(function, in_bits, out_bits, idle, stall):
    spec = ActivationSpec(function, in_bits, out_bits, 16, "half_even")
    dut = Activation(spec)
    peak = 6.0
    in_step = peak / ((1 << (in_bits - 1)) - 1)
    out_step = peak / ((1 << (out_bits - 1)) - 1)
    program = activation_program(spec, in_step, out_step)
    setup = activation_setup(dut, program)
    codes = np.arange(-(1 << (in_bits - 1)), 1 << (in_bits - 1))
    codes = np.random.default_rng(SEED).permutation(codes)
    run = run_stream(dut, [int(c) for c in codes], len(codes), idle=idle, stall=stall,
                     seed=SEED, setup=setup, unpack=int)
    assert run.results == activation_items(spec, codes, **program).tolist()
    run.assert_schedule(spec.timing.schedule(run.offered_in, run.sink_ready))
