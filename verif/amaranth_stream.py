"""Drive a stream-in, stream-out component in Amaranth's simulator with an idle/back-pressure
pattern, recording every transfer's cycle (the same convention as :mod:`cimforge.verif.streams`:
cycle ``n`` ends with the ``n + 1``-th clock edge)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from amaranth.sim import Simulator

__all__ = ["StreamRun", "run_stream"]


@dataclass
class StreamRun:
    results: list = field(default_factory=list)
    offered_in: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    offered: list[int] = field(default_factory=list)
    taken: list[int] = field(default_factory=list)
    ready: dict[int, bool] = field(default_factory=dict)

    def sink_ready(self, cycle: int) -> bool:
        return self.ready.get(cycle, True)

    def assert_schedule(self, model) -> None:
        """Every item accepted, and every result offered and taken, in the cycle the cycle
        model's :class:`~cimforge.golden.stream_timing.Schedule` ``model`` predicts."""
        assert model.accepted == self.accepted
        assert model.offered == self.offered
        assert model.taken == self.taken


def run_stream(dut, items: list, n_results: int, *, idle: float = 0.0, stall: float = 0.0,
               seed: int = 0, unpack=lambda p: p, max_cycles: int | None = None,
               setup=None) -> StreamRun:
    """Offer ``items`` (payload values for ``ctx.set``) on ``dut.i_stream`` and take
    ``n_results`` from ``dut.o_stream``. ``setup(ctx)`` (async) runs first, e.g. to load
    tables. ``unpack`` turns a taken payload into a comparable value."""
    rng = random.Random(seed)
    run = StreamRun()
    limit = max_cycles or 200 * (len(items) + n_results) + 500

    async def bench(ctx):
        if setup is not None:
            await setup(ctx)
        i, cycle, offering, pending = 0, 0, False, False
        while len(run.results) < n_results:
            if not offering and i < len(items) and not (idle and rng.random() < idle):
                ctx.set(dut.i_stream.payload, items[i])
                ctx.set(dut.i_stream.valid, 1)
                run.offered_in.append(cycle)
                offering = True
            ready = not (stall and rng.random() < stall)
            run.ready[cycle] = ready
            ctx.set(dut.o_stream.ready, int(ready))
            if ctx.get(dut.o_stream.valid):
                if not pending:
                    run.offered.append(cycle)
                    pending = True
                if ready:
                    run.results.append(unpack(ctx.get(dut.o_stream.payload)))
                    run.taken.append(cycle)
                    pending = False
            if offering and ctx.get(dut.i_stream.ready):
                run.accepted.append(cycle)
                i += 1
                offering = False
            await ctx.tick()
            if not offering:
                ctx.set(dut.i_stream.valid, 0)
            cycle += 1
            assert cycle < limit, f"timeout after {cycle} cycles (seed {seed})"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return run
