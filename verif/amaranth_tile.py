"""The analog tile unit in Amaranth's own simulator: the same stimulus, analog adapter and
checks as the cocotb bench, for fast unit tests and the simulator benchmark.

Cycle ``c`` is the clock period after the ``c``-th tick of the testbench (the convention of
:mod:`cimforge.verif.streams`). In every cycle the testbench drives the register port and the
streams, and -- in a cycle whose sample strobe is high -- checks the word-line drive against the
read golden expects and loads the crossbar model with that read's values (the analog adapter).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from amaranth.sim import Simulator

from cimforge.golden.analog_tile import Schedule
from cimforge.hw.analog_tile_sim import AnalogTileSim
from cimforge.verif.tile_case import TileCase, read_errors

__all__ = ["TileRun", "run_tile"]


@dataclass
class TileRun:
    """What a run produced: results and the cycles of every transfer."""

    results: list[list[int]] = field(default_factory=list)
    offered_inputs: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    offered: list[int] = field(default_factory=list)
    taken: list[int] = field(default_factory=list)
    sink_ready: dict[int, bool] = field(default_factory=dict)
    samples: list[int] = field(default_factory=list)  # cycles with the sample strobe high
    errors: list[str] = field(default_factory=list)
    cycles: int = 0

    def predicted(self, case: TileCase) -> Schedule:
        """The cycle model's prediction for this run's offers and sink."""
        return case.timing.collected(self.offered_inputs,
                                     lambda c: self.sink_ready.get(c, True))

    def check(self, case: TileCase) -> list[str]:
        """Every result bit-exact, every transfer in the predicted cycle; the mismatches."""
        errors = list(self.errors)
        if len(self.results) != len(case.expected):
            errors.append(f"{len(self.results)} results, expected {len(case.expected)}")
        for v, (got, want) in enumerate(zip(self.results, case.expected.tolist())):
            if got != want:
                errors.append(f"result {v}: expected {want}, got {got}")
        try:
            want = self.predicted(case)
        except ValueError as e:  # the design took a vector before the model would have
            return [*errors, f"accepted cycles {self.accepted} contradict the model: {e}"]
        for name in ("accepted", "offered", "taken"):
            if getattr(self, name) != getattr(want, name)[: len(getattr(self, name))]:
                errors.append(f"{name} cycles: predicted {getattr(want, name)}, "
                              f"got {getattr(self, name)}")
        return errors


def run_tile(case: TileCase, *, idle: float = 0.0, stall: float = 0.0, seed: int = 0,
             max_cycles: int | None = None) -> TileRun:
    """Simulate the unit on ``case``: register writes, then every vector of ``case.x``
    (the source idles with probability ``idle`` between vectors, the sink stalls with
    probability ``stall`` per cycle), until every result is taken."""
    spec = case.spec
    tile = AnalogTileSim(spec)  # the tile with the crossbar model, as the cocotb bench has it
    rng = random.Random(seed)
    run = TileRun()
    vectors = case.inputs.tolist()
    values = case.values.tolist()
    budget = max_cycles or (len(case.registers) + 200 + int(
        len(vectors) * (spec.reads_per_vector * spec.read_cycles + 20)
        / (1 - idle) / (1 - stall) * 3))

    async def bench(ctx):
        writes = list(case.registers)
        sent = 0
        offering = False
        read = 0
        cycle = 0
        while len(run.results) < len(vectors) and cycle < budget:
            # registers first, then the vectors
            if writes:
                addr, value = writes.pop(0)
                ctx.set(tile.csr.addr, addr)
                ctx.set(tile.csr.data, value)
                ctx.set(tile.csr.we, 1)
            else:
                ctx.set(tile.csr.we, 0)
                if not offering and sent < len(vectors) and not (idle and rng.random() < idle):
                    offering = True
                    run.offered_inputs.append(cycle)
                    ctx.set(tile.i_stream.payload, vectors[sent])
                    ctx.set(tile.i_stream.valid, 1)
            ready = not (stall and rng.random() < stall)
            run.sink_ready[cycle] = ready
            ctx.set(tile.o_stream.ready, int(ready))
            # the analog adapter: a read is being sampled
            if ctx.get(tile.probe_sample):
                run.samples.append(cycle)

                def probe(name):
                    port = getattr(tile, f"probe_{name}", None)
                    return [] if port is None else [int(v) for v in ctx.get(port)]

                errors = read_errors(case, read, probe("wl"), probe("gain"),
                                     probe("range_exp"), probe("offset_trim"))
                run.errors += [f"cycle {cycle}: {e}" for e in errors]
                if read < len(values):
                    ctx.set(tile.a_value, values[read])
                read += 1
            if ctx.get(tile.o_stream.valid):
                if len(run.offered) == len(run.results):
                    run.offered.append(cycle)
                if ready:
                    run.results.append([int(v) for v in ctx.get(tile.o_stream.payload)])
                    run.taken.append(cycle)
            if offering and ctx.get(tile.i_stream.ready):
                run.accepted.append(cycle)
                sent += 1
                offering = False
            await ctx.tick()
            if not offering:
                ctx.set(tile.i_stream.valid, 0)
            cycle += 1
        run.cycles = cycle
        if cycle >= budget:
            run.errors.append(f"timeout after {cycle} cycles")

    sim = Simulator(tile)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return run
