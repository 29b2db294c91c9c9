"""The accelerator in Amaranth's own simulator: parameter writes, the input beats, every tile
unit's analog adapter, the output beats (for development and quick unit tests; the benches
drive the generated Verilog through AXI)."""

from __future__ import annotations

from dataclasses import dataclass, field

from amaranth.sim import Simulator

from cimforge.hw.accelerator_sim import AcceleratorSim
from cimforge.verif.accel_case import AccelCase
from cimforge.verif.tile_case import read_errors

__all__ = ["AccelRun", "run_accel"]


@dataclass
class AccelRun:
    out: list[int] = field(default_factory=list)  # output beats' data
    lasts: list[int] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)  # cycles input beats were taken
    taken: list[int] = field(default_factory=list)  # cycles output beats were taken
    errors: list[str] = field(default_factory=list)
    cycles: int = 0


def run_accel(cases: AccelCase | list[AccelCase], top: AcceleratorSim | None = None,
              max_cycles: int = 200_000) -> AccelRun:
    """Write the first case's parameters, then stream each case's run in turn (the next once
    the previous one's output is out): the outputs, cycles and read errors of them all."""
    cases = [cases] if isinstance(cases, AccelCase) else list(cases)
    top = top or AcceleratorSim(cases[0].cfg)
    run = AccelRun()

    async def bench(ctx):
        for addr, value in cases[0].writes:
            ctx.set(top.param.addr, addr)
            ctx.set(top.param.data, value)
            ctx.set(top.param.we, 1)
            await ctx.tick()
        ctx.set(top.param.we, 0)
        ctx.set(top.o_stream.ready, 1)
        cycle = 0
        for case in cases:
            n_out = len(run.out) + len(case.beats)  # the output packs like the input
            reads = {u: 0 for u in case.units}
            beats = list(case.beats)
            while len(run.out) < n_out and cycle < max_cycles:
                if beats:
                    ctx.set(top.i_stream.valid, 1)
                    ctx.set(top.i_stream.payload.data, beats[0][0])
                    ctx.set(top.i_stream.payload.last, beats[0][1])
                else:
                    ctx.set(top.i_stream.valid, 0)
                for u, tc in case.units.items():
                    if ctx.get(getattr(top, f"probe{u}_sample")):
                        def probe(name, u=u):
                            port = getattr(top, f"probe{u}_{name}", None)
                            return [] if port is None else [int(v) for v in ctx.get(port)]
                        errs = read_errors(tc, reads[u], probe("wl"), probe("gain"),
                                           probe("range_exp"), probe("offset_trim"))
                        run.errors += [f"cycle {cycle} unit {u}: {e}" for e in errs]
                        if reads[u] < len(tc.values):
                            ctx.set(getattr(top, f"a_value{u}"), tc.values[reads[u]].tolist())
                        reads[u] += 1
                if beats and ctx.get(top.i_stream.ready):
                    run.accepted.append(cycle)
                    beats.pop(0)
                if ctx.get(top.o_stream.valid):
                    run.out.append(ctx.get(top.o_stream.payload.data))
                    run.lasts.append(ctx.get(top.o_stream.payload.last))
                    run.taken.append(cycle)
                await ctx.tick()
                cycle += 1
                if len(run.errors) > 20:
                    break
            if cycle >= max_cycles:
                run.errors.append(f"timeout after {cycle} cycles ({len(run.out)} of {n_out} "
                                  f"beats out)")
                break
        run.cycles = cycle

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return run
