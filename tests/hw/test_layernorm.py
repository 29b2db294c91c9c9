# amaranth: UnusedElaboratable=no
"""The LayerNorm unit in Amaranth's simulator against golden, bit- and cycle-exact (fast; the
cocotb bench covers the generated Verilog)."""

import numpy as np
import pytest

from cimforge.golden.layernorm import LayerNormSpec, layer_norm_rows
from cimforge.hw.layernorm import LayerNorm
from cimforge.verif.amaranth_stream import run_stream
from cimforge.verif.nonlinear_case import ln_case

SEED = 5


@pytest.mark.parametrize("d, out_bits, nl", [
    (32, 16, {}), (12, 8, {"recip_steps": 1}), (40, 16, {"rounding": "half_up"}),
    (20, 8, {"rounding": "floor"}),
    # other formats: a narrow residual with wide fractions, a 4-element row
    (64, 16, {"in_bits": 8, "recip_bits": 24, "ln_frac_bits": 20}),
    (4, 16, {"recip_bits": 20, "ln_frac_bits": 16, "mult_bits": 12}),
])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_layer_norm(d, out_bits, nl, idle, stall):
    fields = {"in_bits": 16, "mult_bits": 16, "ln_frac_bits": 10, "recip_bits": 16,
              "recip_seed_bits": 4, "recip_steps": 2, "rounding": "half_even", **nl}
    _run(LayerNormSpec(d=d, out_bits=out_bits, **fields), idle, stall)


@pytest.mark.parametrize("slots", [1, 2, 5])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_layer_norm_other_slot_counts(slots, idle, stall):
    """The row ring steps modulo its slot count (no fixed slot count in RTL or model)."""
    spec = LayerNormSpec(d=12, in_bits=16, out_bits=16, mult_bits=16, ln_frac_bits=10,
                         recip_bits=16, recip_seed_bits=4, recip_steps=2, rounding="half_even",
                         slots=slots)
    _run(spec, idle, stall)


def _run(spec, idle, stall):
    d = spec.d
    rows, params = ln_case(spec, np.random.default_rng(SEED), 12)
    dut = LayerNorm(spec)

    async def setup(ctx):
        ctx.set(dut.shift, params.shift)
        ctx.set(dut.param_we, 1)
        for i in range(d):
            ctx.set(dut.param_addr, i)
            ctx.set(dut.param_gamma, int(params.gamma[i]))
            ctx.set(dut.param_beta, int(params.beta[i]))
            await ctx.tick()
        ctx.set(dut.param_we, 0)

    items = [int(v) for v in rows.reshape(-1)]
    run = run_stream(dut, items, len(items), idle=idle, stall=stall, seed=SEED, setup=setup,
                     unpack=lambda p: (int(p.y), int(p.last)))
    want = layer_norm_rows(spec, rows, params.gamma, params.beta, params.shift).reshape(-1)
    got = np.array([y for y, _ in run.results])
    assert np.array_equal(got, want), np.nonzero(got != want)[0][:10]
    assert [last for _, last in run.results] == [int(i % d == d - 1) for i in range(len(items))]
    run.assert_schedule(spec.timing.schedule(run.offered_in, run.sink_ready))
