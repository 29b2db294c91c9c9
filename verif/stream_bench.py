"""The part every stream-in, stream-out bench shares: the design's manifest entry, the seed,
payload codecs, a cycle counter, a source and a sink with an idle/back-pressure pattern, a
scoreboard, and clock and reset."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from verif.payload import PayloadCodec
from verif.scoreboard import Scoreboard
from verif.streams import CycleCounter, StreamSink, StreamSource

__all__ = ["FLOW_PATTERNS", "StreamBench"]

FLOW_PATTERNS = {  # name: (source idle probability, sink stall probability)
    "full_rate": (0.0, 0.0),
    "idle": (0.4, 0.0),
    "backpressure": (0.0, 0.7),
    "idle_backpressure": (0.3, 0.9),
}


class StreamBench:
    """Clock, reset, ``i_stream`` source and ``o_stream`` sink around one generated block.

    ``patterns`` maps a pattern name to (source idle probability, sink stall probability).
    Attributes: ``block`` (the manifest entry), ``config`` (the design's config as a dict),
    ``seed`` and ``rng`` (cocotb gives each test its own seed, derived from
    ``COCOTB_RANDOM_SEED`` and the test's name), ``in_codec``/``out_codec``, ``counter``,
    ``source``, ``sink``, ``board``.
    """

    def __init__(self, dut, name: str, pattern: str, patterns: dict, default_block: str):
        self.dut = dut
        self.name = name
        self.seed = cocotb.RANDOM_SEED
        self.rng = np.random.default_rng(self.seed)
        manifest = json.loads(Path(os.environ["CIMFORGE_MANIFEST"]).read_text())
        self.config = manifest["config"]
        self.block = manifest["blocks"][os.environ.get("CIMFORGE_BLOCK", default_block)]
        self.in_codec = PayloadCodec.for_port(self.block, "i_stream__payload")
        self.out_codec = PayloadCodec.for_port(self.block, "o_stream__payload")
        self.pattern = pattern
        idle, stall = patterns[pattern]
        self.counter = CycleCounter(dut.clk)
        pyrng = random.Random(self.seed)
        self.source = StreamSource(dut, "i_stream", dut.clk, self.counter, idle=idle, rng=pyrng)
        self.sink = StreamSink(dut, "o_stream", dut.clk, self.counter, stall=stall, rng=pyrng)
        self.board = Scoreboard(f"{name}[{pattern}]", dut._log)

    async def start(self) -> None:
        Clock(self.dut.clk, 10, unit="ns").start()
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0
        cocotb.start_soon(self.counter.run())
        cocotb.start_soon(self.source.run())
        cocotb.start_soon(self.sink.run())

    def sink_ready(self, cycle: int) -> bool:
        """The sink's ``ready`` in ``cycle`` as recorded (ready before it started)."""
        return bool(self.sink.trace.get(cycle, (0, 1))[1])

    def check_results(self, expected: list) -> None:
        """Every expected result received, bit-exact and in order, and the output stream's
        protocol kept."""
        b, received = self.board, self.sink.received
        b.compare("results received", len(expected), len(received))
        for msg in self.sink.protocol_errors:
            b.error(f"o_stream protocol: {msg}")
        for j, (want, got) in enumerate(zip(expected, received)):
            b.compare(f"result {j}", want, self.out_codec.unpack(got.payload))

    def assert_clean(self) -> None:
        self.board.assert_clean(f"test seed {self.seed}; rerun with "
                                f"COCOTB_RANDOM_SEED={os.environ.get('COCOTB_RANDOM_SEED')}")
