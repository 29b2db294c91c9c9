"""cocotb bench of the analog tile unit (``hw/analog_tile.py`` in ``hw/analog_tile_sim.py``).

Run through :func:`cimforge.verif.runner.run_bench` (pytest: ``tests/cocotb/test_analog_tile.py``;
``cimforge flow``). The design comes from the manifest named by ``CIMFORGE_MANIFEST``; the
expected results, reads and cycles from golden (:class:`cimforge.verif.tile_case.TileCase`).

Parts, all event-driven so that the simulator, not Python, sets the pace:

* :meth:`TileTB.write_registers` writes golden's gain, drift, range and offset registers;
* the stream drivers every bench uses (:mod:`cimforge.verif.streams`) offer input vectors
  and take results under a flow pattern;
* :class:`AnalogAdapter` is the crossbar's analog side: in every cycle with the sample strobe
  up it checks the word-line drive, the ADC gains, ranges and offset trims against golden's
  read and loads the crossbar model with what golden's ADCs make of that read.

Each test then checks every result bit-exact, every acceptance and result in the cycle the
golden cycle model predicts, and that nothing is left over. Seeds derive from
``cocotb.RANDOM_SEED`` and are in every failure message.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadWrite, RisingEdge
from cocotb.utils import get_sim_time

from cimforge.config import config_from_dict
from cimforge.golden.analog_tile import AnalogTileSpec
from cimforge.hw.analog_tile_sim import PROBED
from cimforge.hw.crossbar_shell import analog_value_bits
from cimforge.verif.payload import PayloadCodec
from cimforge.verif.records import write_record
from cimforge.verif.scoreboard import Scoreboard
from cimforge.verif.streams import (
    FLOW_PATTERNS,
    PERIOD_PS,
    CycleClock,
    StreamSink,
    StreamSource,
)
from cimforge.verif.tile_case import (
    TileCase,
    effects_for,
    random_matrix,
    read_errors,
    throughput_case,
)

TILE_PATTERNS = ("full_rate", "idle", "backpressure", "stalled_sink")
THROUGHPUT_VECTORS = "CIMFORGE_TILE_VECTORS"  # vectors of the throughput test (default 4)
THROUGHPUT_SEED = "CIMFORGE_TILE_SEED"  # its stimulus seed (default 0)


def pack_columns(values: np.ndarray, width: int) -> int:
    """Unsigned ``width``-bit values as one integer, element ``c`` at bits ``[c width +:
    width]``."""
    v = np.asarray(values, dtype=np.uint64)
    bits = ((v[:, None] >> np.arange(width, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    return int.from_bytes(np.packbits(bits.reshape(-1), bitorder="little").tobytes(), "little")


class AnalogAdapter:
    """The analog side of the crossbar shell, read by read."""

    def __init__(self, dut, clock: CycleClock, spec: AnalogTileSpec, board: Scoreboard,
                 block: dict, unit: int | None = None):
        self.dut, self.clock, self.spec, self.board = dut, clock, spec, board
        self.case: TileCase | None = None
        self.read = 0
        self.samples: list[int] = []
        # the ports: probe_<pin> and a_value, or for tile unit u of a larger design
        # probe<u>_<pin> and a_value<u> -- or, in the generated accelerator, no a_value port
        # but the register xbar_model<u>.analog.held
        tag = "" if unit is None else str(unit)
        self._probe = lambda pin: f"probe{tag}_{pin}"
        self._a_value = f"a_value{tag}"
        self._sample = getattr(dut, self._probe("sample"))
        # the vector-valued ports (the manifest has their element layout)
        self.codec = {p["name"]: PayloadCodec(p["fields"]) for p in block["ports"]
                      if "fields" in p and (p["name"] == self._a_value
                                            or p["name"] in {self._probe(q) for q in PROBED})}
        if self._a_value in self.codec:
            self._target = getattr(dut, self._a_value)
        else:  # the model's analog source, written through VPI (hw/crossbar_shell.py)
            self._target = getattr(dut, f"xbar_model{tag}").analog.held

    def serve(self, case: TileCase) -> None:
        """Serve ``case``'s reads from the next sample on."""
        self.case, self.read = case, 0
        if self._a_value in self.codec:
            self._values = [self.codec[self._a_value].pack(data=v)
                            for v in case.values.tolist()]
        else:
            self._values = [pack_columns(v, analog_value_bits(self.spec)) for v in case.values]

    def probe(self, name: str) -> list[int]:
        """The values of shell input ``name`` now (empty if the design has no such pin)."""
        port = self._probe(name)
        if port not in self.codec:
            return []
        return self.codec[port].unpack(int(getattr(self.dut, port).value))["data"]

    async def run(self) -> None:
        dut = self.dut
        sample = self._sample
        a_value = self._target
        while True:
            if not int(sample.value):
                await RisingEdge(sample)
            await ReadWrite()
            if not int(sample.value):
                continue
            self.samples.append(self.clock.now)
            if self.case is None:
                self.board.error(f"cycle {self.clock.now}: a read sampled with no case served")
            else:
                errors = read_errors(self.case, self.read, self.probe("wl"),
                                     self.probe("gain"), self.probe("range_exp"),
                                     self.probe("offset_trim"))
                for e in errors:
                    self.board.error(f"cycle {self.clock.now}: {e}")
                if self.read < len(self._values):
                    a_value.value = self._values[self.read]
                self.read += 1
            await RisingEdge(dut.clk)


class TileTB:
    """Clock, reset, register writer, source, sink and analog adapter around one design."""

    def __init__(self, dut, name: str, pattern: str = "full_rate"):
        self.dut = dut
        self.seed = cocotb.RANDOM_SEED
        self.rng = np.random.default_rng(self.seed)
        manifest = json.loads(Path(os.environ["CIMFORGE_MANIFEST"]).read_text())
        self.block = manifest["blocks"][os.environ["CIMFORGE_BLOCK"]]
        self.cfg = config_from_dict(manifest["config"], source="manifest", name=manifest[
            "config_name"])
        self.spec = AnalogTileSpec(**self.block["parameters"])
        self.pattern = pattern
        self.idle, self.stall = FLOW_PATTERNS[pattern]
        self.board = Scoreboard(f"{name}[{pattern}]", dut._log)
        self.clock = CycleClock()
        self.in_codec = PayloadCodec.for_port(self.block, "i_stream__payload")
        self.out_codec = PayloadCodec.for_port(self.block, "o_stream__payload")
        self.source = StreamSource(dut, "i_stream", self.clock, idle=self.idle,
                                   rng=random.Random(f"{self.seed}-source"), rst=dut.rst)
        self.sink = StreamSink(dut, "o_stream", self.clock, stall=self.stall,
                               rng=random.Random(f"{self.seed}-sink"), rst=dut.rst)
        self.adapter = AnalogAdapter(dut, self.clock, self.spec, self.board, self.block)

    def config(self, effects: bool, offsets: float = 0.0):
        """The design's config with the analog effects on or off (the hardware is the same);
        ADC offsets of ``offsets`` LSB, trimmed by the offset registers for SAR ADCs."""
        analog = dataclasses.replace(self.cfg.analog, **effects_for(self.cfg)) if effects else (
            type(self.cfg.analog)())
        adc = dataclasses.replace(self.cfg.adc, offset_sigma_lsb=offsets,
                                  offset_calibration=bool(offsets) and self.spec.adc_kind == "sar")
        return dataclasses.replace(self.cfg, analog=analog, adc=adc)

    @property
    def input_range(self) -> tuple[int, int]:
        """Smallest and largest signed ``act_bits`` input."""
        half = 1 << (self.spec.act_bits - 1)
        return -half, half - 1

    def case(self, vectors: int, effects: bool, offsets: float = 0.0, inputs=None) -> TileCase:
        """A random matrix over the unit's tiles and ``vectors`` random inputs (or
        ``inputs(k)``, given the matrix's rows)."""
        w = random_matrix(self.spec, self.rng)
        if inputs is None:
            lo, hi = self.input_range
            x = self.rng.integers(lo, hi + 1, size=(vectors, w.shape[0]))
        else:
            x = inputs(w.shape[0])
        return TileCase(self.config(effects, offsets), w, x, key=int(self.rng.integers(1 << 16)))

    async def start(self) -> None:
        dut = self.dut
        Clock(dut.clk, PERIOD_PS, unit="ps").start()
        dut.csr__we.value = 0
        dut.a_value.value = 0
        await self.reset()
        cocotb.start_soon(self.adapter.run())
        self.source.start()
        self.sink.start()

    async def reset(self) -> None:
        """Two cycles of reset (the drivers drop what they had in flight)."""
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 2)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    def send(self, vectors) -> None:
        self.source.send(self.in_codec.pack(data=v) for v in vectors.tolist())

    async def write_registers(self, case: TileCase) -> None:
        dut = self.dut
        for addr, value in case.registers:
            dut.csr__addr.value = addr
            dut.csr__data.value = value
            dut.csr__we.value = 1
            await RisingEdge(dut.clk)
        dut.csr__we.value = 0
        await RisingEdge(dut.clk)

    async def run(self, case: TileCase) -> None:
        """Registers, then every vector; wait for every result (or a timeout); check."""
        import time

        b = self.board
        # a run starts with clean records: after a reset the drivers dropped theirs
        b.compare("source records before the run", [], self.source.sent)
        b.compare("sink records before the run", [], self.sink.received)
        start, start_ps = time.perf_counter(), get_sim_time(unit="ps")
        await self.write_registers(case)
        self.clock.start()
        self.adapter.serve(case)
        first_sample = len(self.adapter.samples)
        n = len(case.x)
        spec = self.spec
        self.send(case.inputs)
        per_vector = spec.reads_per_vector * spec.read_cycles + 40
        budget = int(n * per_vector / (1 - self.idle) / (1 - self.stall) * 3) + 500
        await self.sink.wait_for(n, budget)
        await ClockCycles(self.dut.clk, spec.read_cycles + 10)  # anything extra shows now
        self.wall_seconds = time.perf_counter() - start
        self.timed_cycles = int(get_sim_time(unit="ps") - start_ps) // PERIOD_PS
        self.check(case, self.adapter.samples[first_sample:])

    def check(self, case: TileCase, samples: list[int]) -> None:
        b, sent, received = self.board, self.source.sent, self.sink.received
        n = len(case.x)
        b.compare("results received", n, len(received))
        b.compare("reads sampled", len(case.drives), len(samples))
        for msg in self.sink.protocol_errors:
            b.error(f"o_stream protocol: {msg}")
        for v, (want, got) in enumerate(zip(case.expected.tolist(), received)):
            if got.payload is not None:
                b.compare(f"result {v}", want, self.out_codec.unpack(got.payload)["data"])
        try:
            model = case.timing.collected([t.offered for t in sent], self.sink.ready_in)
            for name, got in (("accepted", [t.taken for t in sent]),
                              ("offered", [t.offered for t in received]),
                              ("taken", [t.taken for t in received])):
                b.compare(f"{name} cycles", getattr(model, name)[: len(got)], got)
        except ValueError as e:
            b.error(f"accepted cycles {[t.taken for t in sent]} contradict the model: {e}")
        measured = predicted = utilisation = None
        if received and sent:
            measured = received[-1].offered - sent[0].taken
            if self.pattern == "full_rate":
                predicted = case.timing.stream_cycles(n)
                b.compare("cycles from first vector to last result", predicted, measured)
        if len(samples) > 1:
            # useful reads per cycle over the sampling span, relative to one per read_cycles
            span = samples[-1] - samples[0] + self.spec.read_cycles
            utilisation = len(samples) * self.spec.read_cycles / span
        write_record(
            test=b.name, pattern=self.pattern, seed=self.seed, vectors=n,
            reads=len(samples), cycles=measured, predicted_cycles=predicted,
            utilisation=utilisation, errors=len(b.errors),
            wall_seconds=getattr(self, "wall_seconds", None),
            timed_cycles=getattr(self, "timed_cycles", None),
        )
        b.assert_clean(f"test seed {self.seed}; rerun with "
                       f"COCOTB_RANDOM_SEED={os.environ.get('COCOTB_RANDOM_SEED')}")


@cocotb.test()
async def ideal_equals_integer_matmul(dut):
    """No device effect, ADC resolving every read: every result is exactly x @ W."""
    tb = TileTB(dut, "ideal_equals_integer_matmul")
    await tb.start()
    case = tb.case(6, effects=False)
    n = case.w.shape[1]
    tb.board.compare("golden ideal results equal x @ W", (case.x @ case.w).tolist(),
                     case.expected[:, :n].tolist())
    await tb.run(case)


@cocotb.test()
@cocotb.parametrize(pattern=list(TILE_PATTERNS))
async def all_effects(dut, pattern: str):
    """Programming noise, drift, 1/f and per-read noise, faults, IR drop, ADC offsets (trimmed
    for SAR), drift compensation: bit-exact against golden with the same seed, under each flow
    pattern."""
    tb = TileTB(dut, "all_effects", pattern)
    await tb.start()
    await tb.run(tb.case(6, effects=True, offsets=0.4))


@cocotb.test()
async def corners(dut):
    """All-zero, all-min, all-max and alternating inputs."""
    tb = TileTB(dut, "corners")
    await tb.start()

    lo, hi = tb.input_range

    def corner_inputs(k: int) -> np.ndarray:
        alternating = np.resize([lo, hi], k)
        return np.stack([np.zeros(k), np.full(k, lo), np.full(k, hi), alternating,
                         np.full(k, -1)]).astype(np.int64)

    await tb.run(tb.case(5, effects=False, inputs=corner_inputs))


@cocotb.test()
async def reset_mid_vector(dut):
    """A reset in the middle of a vector clears the unit (registers too); what follows, with
    the registers written again, is exact."""
    tb = TileTB(dut, "reset_mid_vector")
    await tb.start()
    first = tb.case(5, effects=True)
    await tb.write_registers(first)
    tb.adapter.serve(first)
    tb.send(first.inputs)  # more vectors than the input buffer holds: some wait
    await ClockCycles(dut.clk, tb.spec.reads_per_vector * tb.spec.read_cycles // 2)
    tb.board.compare("vectors queued or in flight at the reset", True, bool(tb.source.queue))
    await tb.reset()  # the drivers drop what was in flight and start their records afresh
    await tb.run(tb.case(3, effects=True))


@cocotb.test()
async def throughput(dut):
    """Full rate with every effect on, for the simulator-speed benchmark: the same stimulus in
    every simulator (``CIMFORGE_TILE_VECTORS`` vectors from seed ``CIMFORGE_TILE_SEED``)."""
    tb = TileTB(dut, "throughput")
    await tb.start()
    vectors = int(os.environ.get(THROUGHPUT_VECTORS, "4"))
    await tb.run(throughput_case(tb.cfg, vectors, int(os.environ.get(THROUGHPUT_SEED, "0"))))
