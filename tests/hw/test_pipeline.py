# amaranth: UnusedElaboratable=no
"""The skid buffer (``hw/pipeline.py``): behind a unit whose sink stalls it, the sink sees
every result in the cycle the unit's own cycle model says, and the unit's ready no longer
hangs on the sink's."""

import numpy as np
import pytest
from amaranth import Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from cimforge.config import load_config
from cimforge.golden.requant import RequantSpec
from cimforge.hw.pipeline import skid_buffer
from cimforge.hw.requant import Requantizer, requant_in_layout
from cimforge.verif.amaranth_stream import run_stream
from cimforge.verif.nonlinear_case import expected_requant, requant_items

SPEC = RequantSpec.from_config(load_config("tiny"))


class _Skidded(wiring.Component):
    """A requantiser whose output goes through a skid buffer."""

    def __init__(self, spec: RequantSpec):
        self.spec = spec
        super().__init__({"i_stream": In(stream.Signature(requant_in_layout(spec))),
                          "o_stream": Out(stream.Signature(signed(spec.residual_bits)))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rq = self.rq = rq = Requantizer(self.spec)
        wiring.connect(m, wiring.flipped(self.i_stream), rq.i_stream)
        skid_buffer(m, rq.o_stream, self.o_stream, "skid")
        return m


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("stall", [0.0, 0.3, 0.7])
def test_skid_buffer_keeps_the_sink_side_timing(seed, stall):
    # the source offers every item from the cycle after the last was taken (its offers then
    # depend on the unit's acceptances, which the buffer moves: the model gets the rule)
    items = requant_items(SPEC, np.random.default_rng(seed), 200)
    run = run_stream(_Skidded(SPEC), items, len(items), stall=stall, seed=seed)
    assert run.results == expected_requant(SPEC, items), f"seed {seed}"
    model = SPEC.timing.schedule([0] + [None] * (len(items) - 1), run.sink_ready)
    # the sink's side is the requantiser's own (the unit moves one item further while its
    # result waits in the buffer, so its input side may take an item earlier)
    assert (run.offered, run.taken) == (model.offered, model.taken), f"seed {seed}"
    if stall:
        assert any(not run.sink_ready(c) for c in run.offered), "no stall was exercised"


def test_skid_buffer_ready_is_a_register():
    """The unit's ready does not follow its sink's within a cycle: high while nothing is held
    (the sink not ready), low while a result is held (the sink ready), until the next edge."""
    dut = _Skidded(SPEC)
    item = requant_items(SPEC, np.random.default_rng(7), 1)[0]
    seen = []

    async def bench(ctx):
        ctx.set(dut.o_stream.ready, 0)
        ctx.set(dut.i_stream.payload, item)
        ctx.set(dut.i_stream.valid, 1)
        await ctx.tick()
        ctx.set(dut.i_stream.valid, 0)
        while not ctx.get(dut.o_stream.valid):  # the result, not taken: the buffer keeps it
            seen.append(("empty", ctx.get(dut.rq.o_stream.ready)))
            await ctx.tick()
        await ctx.tick()
        ctx.set(dut.o_stream.ready, 1)  # taken now: the unit is told at the next edge
        seen.append(("held", ctx.get(dut.rq.o_stream.ready), ctx.get(dut.o_stream.valid)))
        await ctx.tick()
        seen.append(("after", ctx.get(dut.rq.o_stream.ready), ctx.get(dut.o_stream.valid)))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen[:-2] and all(s == ("empty", 1) for s in seen[:-2])
    assert seen[-2:] == [("held", 0, 1), ("after", 1, 0)]
