# amaranth: UnusedElaboratable=no
"""The token buffer (``hw/scratchpad.py``): rows written as a stream, read back by row through
several ports, the first element ``READ_LATENCY`` cycles after a read's start, every element
once and in order under any back-pressure of the reader."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from cimforge.golden.accel_timing import READ_LATENCY
from cimforge.hw.scratchpad import TokenBuffer

TOKENS, WIDTH, BITS = 4, 6, 8


def _run(rows: np.ndarray, reads: list[tuple[int, int, int]], stall: float, seed: int):
    """Write ``rows``, then read each ``(token, first, count)`` on port 0 (port 1 reads the
    same rows backwards); the sink of port 0 is not ready with probability ``stall``. Returns
    per read its elements, the cycles they were taken, and the cycle of its start."""
    dut = TokenBuffer(TOKENS, WIDTH, BITS, readers=2)
    rng = np.random.default_rng(seed)
    out = []

    async def bench(ctx):
        for v in rows.reshape(-1):
            ctx.set(dut.w_stream.payload, int(v))
            ctx.set(dut.w_stream.valid, 1)
            await ctx.tick()
        ctx.set(dut.w_stream.valid, 0)
        assert ctx.get(dut.done) == len(rows)
        cycle = 0
        for (token, first, count), back in zip(reads, reversed(reads), strict=True):
            for port, (t, f, c) in ((dut.r0, (token, first, count)), (dut.r1, back)):
                ctx.set(port.token, t)
                ctx.set(port.first, f)
                ctx.set(port.count, c)
                ctx.set(port.start, 1)
            ctx.set(dut.r1.data.ready, 1)
            await ctx.tick()
            start, cycle = cycle, cycle + 1
            for port in (dut.r0, dut.r1):
                ctx.set(port.start, 0)
            got, when, got1 = [], [], []
            while len(got) < count or len(got1) < back[2]:
                ready = int(rng.random() >= stall)
                ctx.set(dut.r0.data.ready, ready)
                if ctx.get(dut.r0.data.valid) and ready:
                    got.append(ctx.get(dut.r0.data.payload))
                    when.append(cycle)
                if ctx.get(dut.r1.data.valid):
                    got1.append(ctx.get(dut.r1.data.payload))
                await ctx.tick()
                cycle += 1
            assert not ctx.get(dut.r0.busy) and not ctx.get(dut.r1.busy)
            out.append((got, when, start, got1))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("stall", [0.0, 0.5])
def test_reads_return_the_rows(seed, stall):
    rng = np.random.default_rng(seed)
    rows = rng.integers(-(1 << (BITS - 1)), 1 << (BITS - 1), size=(TOKENS, WIDTH))
    reads = [(int(t), int(f), int(rng.integers(1, WIDTH - f + 1)))
             for t, f in zip(rng.integers(0, TOKENS, 5), rng.integers(0, WIDTH, 5), strict=True)]
    for (got, when, start, got1), (t, f, c), (bt, bf, bc) in zip(
            _run(rows, reads, stall, seed), reads, reversed(reads), strict=True):
        assert got == list(rows[t, f:f + c]), f"seed {seed}"
        assert got1 == list(rows[bt, bf:bf + bc]), f"seed {seed}"
        if not stall:  # the first element READ_LATENCY cycles after the start, then one a cycle
            assert when == list(range(start + READ_LATENCY, start + READ_LATENCY + c))
        else:
            assert when[0] >= start + READ_LATENCY
