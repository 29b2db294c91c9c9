# amaranth: UnusedElaboratable=no
"""The reciprocal's staged forms (hw/reciprocal.py) against golden
:func:`cimforge.golden.nonlinear.reciprocal`, in Amaranth's simulator: LayerNorm's
``newton_steps_staged`` (every mantissa at small widths, random ones and the seed intervals'
ends at wide widths) and softmax's ``reciprocal_pipeline_staged`` (a new value every cycle,
each result exactly :func:`reciprocal_staged_depth` cycles later, with its tag)."""

import dataclasses

import numpy as np
import pytest
from amaranth import Module, Signal, unsigned
from amaranth.sim import Simulator

from cimforge.golden.nonlinear import NonlinearSpec, reciprocal
from cimforge.hw.reciprocal import (
    newton_steps_staged,
    reciprocal_pipeline_staged,
    reciprocal_staged_depth,
)


def _run(spec: NonlinearSpec, mants: list[int]) -> None:
    """Stream normalised mantissas, one a cycle, and compare each result with golden's
    reciprocal of the mantissa itself (``z = p``: ``m`` as it is)."""
    p = spec.recip_bits
    m = Module()
    valid, mant, tag = Signal(), Signal(unsigned(p + 1)), Signal(range(len(mants) + 1))
    stages, r = newton_steps_staged(m, {"valid": valid, "m": mant, "tag": tag}, spec, "nr")
    assert len(stages) == max(1, 3 * spec.recip_steps)
    last = stages[-1]
    got: dict[int, int] = {}

    async def bench(ctx):
        for k in range(len(mants) + len(stages) + 1):
            if k < len(mants):
                ctx.set(valid, 1)
                ctx.set(mant, mants[k])
                ctx.set(tag, k)
            else:
                ctx.set(valid, 0)
            await ctx.tick()
            if ctx.get(last["valid"]):
                got[ctx.get(last["tag"])] = ctx.get(r)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    want, z = reciprocal(np.array(mants, dtype=np.int64), spec)
    assert set(z.tolist()) == {p}
    assert [got[k] for k in range(len(mants))] == want.tolist()


# seed tables of up to 2^5 entries: the simulator compiles the table's chain of 2^Q
# multiplexers into nested Python, which its parser refuses from 2^6 on (a limit of the
# simulation, shared with reciprocal_pipeline; the Verilog has no such limit)
@pytest.mark.parametrize("p, q, steps", [(8, 1, 0), (8, 3, 1), (8, 4, 2), (10, 2, 3),
                                         (9, 5, 4)])
def test_newton_steps_staged_every_mantissa(p, q, steps):
    spec = NonlinearSpec(recip_bits=p, recip_seed_bits=q, recip_steps=steps, ln_frac_bits=4)
    _run(spec, list(range(1 << p, 1 << (p + 1))))


@pytest.mark.parametrize("p, q, steps", [(16, 4, 2), (16, 4, 1), (24, 5, 2), (17, 5, 3)])
def test_newton_steps_staged_wide(p, q, steps):
    spec = NonlinearSpec(recip_bits=p, recip_seed_bits=q, recip_steps=steps, ln_frac_bits=4)
    rng = np.random.default_rng(11)
    ends = [(1 << p) + (i << (p - q)) + d for i in range(1 << q) for d in (0, -1)]
    mants = sorted({*(int(v) for v in rng.integers(1 << p, 1 << (p + 1), 400)),
                    *(v for v in ends if v >= 1 << p), (2 << p) - 1})
    _run(spec, mants)


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
