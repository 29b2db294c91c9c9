"""The part every stream-in, stream-out bench shares: the design's manifest entry, the seed,
payload codecs, a cycle clock, a source and a sink with a flow pattern, a scoreboard, and
clock and reset."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from cimforge.verif.payload import PayloadCodec
from cimforge.verif.scoreboard import Scoreboard
from cimforge.verif.streams import (
    FLOW_PATTERNS,
    PERIOD_PS,
    CycleClock,
    StreamSink,
    StreamSource,
)

__all__ = ["StreamBench"]


class StreamBench:
    """Clock, reset, ``i_stream`` source and ``o_stream`` sink around one generated block,
    under the flow pattern ``pattern`` (a name of
    :data:`~cimforge.verif.streams.FLOW_PATTERNS`).

    Attributes: ``block`` (the manifest entry), ``config`` (the design's config as a dict),
    ``seed`` and ``rng`` (cocotb gives each test its own seed, derived from
    ``COCOTB_RANDOM_SEED`` and the test's name; the source and the sink draw from their own
    generators seeded from it), ``in_codec``/``out_codec``, ``clock``, ``source``, ``sink``,
    ``board``.
    """

    def __init__(self, dut, name: str, pattern: str, default_block: str):
        self.dut = dut
        self.name = name
        self.seed = cocotb.RANDOM_SEED
        self.rng = np.random.default_rng(self.seed)
        manifest = json.loads(Path(os.environ["CIMFORGE_MANIFEST"]).read_text())
        self.manifest = manifest
        self.config = manifest["config"]
        self.block = manifest["blocks"][os.environ.get("CIMFORGE_BLOCK", default_block)]
        self.in_codec = PayloadCodec.for_port(self.block, "i_stream__payload")
        self.out_codec = PayloadCodec.for_port(self.block, "o_stream__payload")
        self.pattern = pattern
        self.idle, self.stall = FLOW_PATTERNS[pattern]
        self.clock = CycleClock()
        self.source = StreamSource(dut, "i_stream", self.clock, idle=self.idle,
                                   rng=random.Random(f"{self.seed}-source"), rst=dut.rst)
        self.sink = StreamSink(dut, "o_stream", self.clock, stall=self.stall,
                               rng=random.Random(f"{self.seed}-sink"), rst=dut.rst)
        self.board = Scoreboard(f"{name}[{pattern}]", dut._log)

    async def start(self) -> None:
        """Start the clock, reset the design, start the drivers; cycle 0 begins as reset
        ends."""
        Clock(self.dut.clk, PERIOD_PS, unit="ps").start()
        await self.reset()
        self.source.start()
        self.sink.start()

    async def reset(self) -> None:
        """Two cycles of reset; the clock's cycle 0 begins as it ends (the drivers, if
        running, drop what they had in flight)."""
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0
        self.clock.start()

    def budget(self, items: int, per_item: int, extra: int = 100) -> int:
        """A generous cycle budget for ``items`` items of ``per_item`` cycles each under this
        bench's flow pattern."""
        return int((items * per_item + extra) / (1 - self.idle) / (1 - self.stall) * 3)

    async def drain(self, results: int, budget: int, settle: int) -> None:
        """Wait until ``results`` results have arrived and the source is empty (or ``budget``
        cycles), then ``settle`` more cycles, for anything extra to show."""
        await self.sink.wait_for(results, budget)
        for _ in range(budget):  # results can all be in while inputs are still accepted
            if not self.source.queue:
                break
            await RisingEdge(self.dut.clk)
        await ClockCycles(self.dut.clk, settle)

    def sink_ready(self, cycle: int) -> bool:
        """The sink's ``ready`` in ``cycle`` as recorded."""
        return self.sink.ready_in(cycle)

    def check_results(self, expected: list) -> None:
        """Every expected result received, bit-exact and in order, and the output stream's
        protocol kept."""
        b, received = self.board, self.sink.received
        b.compare("results received", len(expected), len(received))
        for msg in self.sink.protocol_errors:
            b.error(f"o_stream protocol: {msg}")
        for j, (want, got) in enumerate(zip(expected, received)):
            if got.payload is not None:
                b.compare(f"result {j}", want, self.out_codec.unpack(got.payload))

    def assert_clean(self) -> None:
        self.board.assert_clean(f"test seed {self.seed}; rerun with "
                                f"COCOTB_RANDOM_SEED={os.environ.get('COCOTB_RANDOM_SEED')}")
