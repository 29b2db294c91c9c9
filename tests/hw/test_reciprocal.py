# amaranth: UnusedElaboratable=no
"""The staged reciprocal pipeline (hw/reciprocal.py) against golden
:func:`cimforge.golden.nonlinear.reciprocal`, in Amaranth's simulator: a new value every
cycle, each result exactly :func:`reciprocal_staged_depth` cycles later, with its tag."""

import dataclasses

import numpy as np
import pytest
from amaranth import Module, Signal, unsigned
from amaranth.sim import Simulator

from cimforge.golden.nonlinear import NonlinearSpec, reciprocal
from cimforge.hw.reciprocal import reciprocal_pipeline_staged, reciprocal_staged_depth


@pytest.mark.parametrize("width, nl", [
    (12, {}),  # every 12-bit value, the default formats (P 16, Q 4, two steps)
    (19, {"recip_steps": 1, "recip_seed_bits": 2}),  # softmax's tiny sum width
    (30, {"recip_bits": 24, "recip_steps": 3}),  # wider than the mantissa: a shift down
    (10, {"recip_bits": 8, "ln_frac_bits": 8, "recip_steps": 0}),  # the seed alone
])
def test_reciprocal_pipeline_staged(width, nl):
    spec = dataclasses.replace(NonlinearSpec(), **nl)
    rng = np.random.default_rng(6)
    if width <= 12:
        values = list(range(1 << width))
    else:  # every magnitude, its extremes, and zero
        values = [0, 1, 2, 3, (1 << width) - 1]
        values += [int(v) >> int(s) for v, s in zip(rng.integers(0, 1 << width, 3000),
                                                   rng.integers(0, width, 3000), strict=True)]
        values += [(1 << b) + d for b in range(1, width) for d in (-1, 0, 1)]
    m = Module()
    value, valid = Signal(unsigned(width)), Signal()
    tag = Signal(16)
    out_valid, r, z, tags = reciprocal_pipeline_staged(m, value, valid, {"tag": tag}, spec,
                                                       "rc")
    depth = reciprocal_staged_depth(spec.recip_steps)
    want_r, want_z = reciprocal(np.array(values), spec)
    got = {}

    async def bench(ctx):
        for cycle in range(len(values) + depth + 2):
            if cycle < len(values):
                ctx.set(value, values[cycle])
                ctx.set(tag, cycle % (1 << 16))
            ctx.set(valid, cycle < len(values))
            if ctx.get(out_valid):
                got[cycle - depth] = (ctx.get(r), ctx.get(z), ctx.get(tags["tag"]))
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert sorted(got) == list(range(len(values)))  # every result, `depth` cycles on
    bad = [(v, got[i], (int(want_r[i]), int(want_z[i]), i % (1 << 16)))
           for i, v in enumerate(values)
           if got[i] != (int(want_r[i]), int(want_z[i]), i % (1 << 16))]
    assert bad == [], bad[:10]
