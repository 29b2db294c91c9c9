"""cocotb bench of the whole accelerator (``hw/accelerator_axi.py`` in
``hw/accelerator_sim.py``), driven only through its AXI ports.

Run through :func:`cimforge.verif.runner.run_bench` (pytest:
``tests/cocotb/test_accelerator.py``; ``cimforge flow``). The golden side is
:class:`cimforge.verif.accel_case.AccelCase`: the register writes (parameters of every layer,
every tile unit's calibration registers), the input beats, every tile unit's reads and the
expected output beats; the cycles come from :class:`cimforge.golden.accel_timing.
AcceleratorTiming`. Each tile unit's crossbar model is served by its own analog adapter
(:class:`cimforge.verif.benches.analog_tile.AnalogAdapter`), which also checks every read's
word-line drive and registers against golden's.

The weights are programmed as a host would (the first test of a simulation and
``wrong_weights_detected`` do it; the crossbars are non-volatile, so later tests run on them):
a write to ``PROGRAM``, then the weight image (:mod:`cimforge.golden.accel_program`) on the
input stream. A monitor per tile unit records every crossbar row written on its programming
port (checked, with every image beat, at the cycle golden's programming schedule predicts, and
``PROG_CYCLES``); the rows assembled are what the unit's crossbars hold, and the analog
adapters read those crossbars (:class:`cimforge.golden.cim.CimMatrix` built from the captured
levels, with golden's programming effects), so a weight never programmed or programmed wrong
changes the reads.

A run's test writes everything over AXI4-Lite, streams the tokens in, takes the hidden
states out under a flow pattern, and checks every output beat bit-exact and every input and
output beat at the predicted cycle, the CYCLES, TOKENS and KV_TOKENS registers, and that
nothing is left over.

A decoder config's tests generate: a prefill of a random prompt, then decode steps of one
token each, the next token chosen as a host would -- the arg-max of the seeded vocabulary head
(:func:`cimforge.golden.int_decoder.vocab_head`) over the hidden state the accelerator just
returned -- each step checked as a run on golden's cache; and the cache at its capacity.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge
from cocotb.utils import get_sim_time

from cimforge.config import config_from_dict
from cimforge.golden.accel_program import (
    LevelCapture,
    ProgramFormat,
    ProgramSchedule,
    weight_image,
)
from cimforge.golden.accel_regmap import CONTROL, ERROR_BITS, ID, Region, RegisterMap
from cimforge.golden.accel_timing import AcceleratorTiming
from cimforge.golden.analog_tile import AnalogTileSpec
from cimforge.golden.int_decoder import IntOnlyDecoder, vocab_head
from cimforge.golden.mapping import map_model
from cimforge.verif.accel_case import (
    AccelCase,
    accelerator_model,
    pack_beats,
    random_tokens,
    sentence_codes,
    unit_level_maps,
    unpack_beats,
)
from cimforge.verif.axi import OKAY, SLVERR, AxiLiteMaster, AxisSink, AxisSource
from cimforge.verif.benches.analog_tile import AnalogAdapter
from cimforge.verif.records import write_record
from cimforge.verif.scoreboard import Scoreboard
from cimforge.verif.streams import FLOW_PATTERNS, PERIOD_PS, CycleClock

ACCEL_PATTERNS = ("full_rate", "idle_backpressure")
PROGRAMMING = 1 << 2  # STATUS bits
KV_FULL = 1 << 3
DECODE_STEPS = 8  # a decoder test's steps after the prefill
# What the crossbars hold: non-volatile, it outlives a reset and so the test that wrote it
# (the later tests of a simulation run on the weights an earlier one programmed)
_CROSSBARS: dict = {}


class ProgramMonitor:
    """Records every crossbar row written on tile unit ``unit``'s programming port:
    (cycle, unit, crossbar, row, levels)."""

    def __init__(self, dut, clock: CycleClock, fmt: ProgramFormat, unit: int,
                 writes: list):
        self.dut, self.clock, self.fmt, self.unit, self.writes = dut, clock, fmt, unit, writes
        pin = lambda name: getattr(dut, f"probe{unit}_prog_{name}")  # noqa: E731
        self.strobe, self.xbar, self.row, self.levels = (pin(n) for n in
                                                         ("strobe", "xbar", "row", "levels"))

    async def run(self) -> None:
        while True:
            if not int(self.strobe.value):
                await RisingEdge(self.strobe)
            await ReadOnly()
            if int(self.strobe.value):
                self.writes.append((self.clock.now, self.unit, int(self.xbar.value),
                                    int(self.row.value),
                                    self.fmt.row_levels(int(self.levels.value))))
            await RisingEdge(self.dut.clk)


class AccelTB:
    """Clock, reset, AXI drivers and one analog adapter per tile unit."""

    def __init__(self, dut, name: str, pattern: str = "full_rate"):
        self.dut = dut
        self.seed = cocotb.RANDOM_SEED
        self.rng = np.random.default_rng(self.seed)
        manifest = json.loads(Path(os.environ["CIMFORGE_MANIFEST"]).read_text())
        self.block = manifest["blocks"][os.environ.get("CIMFORGE_BLOCK", "accelerator_sim")]
        self.cfg = config_from_dict(manifest["config"], source="manifest",
                                    name=manifest["config_name"])
        self.digest = int(manifest["config_digest"][:8], 16)
        params = self.block["parameters"]
        self.regmap = RegisterMap(tuple(Region(n, "", b, w)
                                        for n, (b, w) in params["regions"].items()))
        self.pattern = pattern
        self.idle, self.stall = FLOW_PATTERNS[pattern]
        self.board = Scoreboard(f"{name}[{pattern}]", dut._log)
        self.clock = CycleClock()
        self.axil = AxiLiteMaster(dut)
        self.source = AxisSource(dut, "s_axis", self.clock, idle=self.idle,
                                 rng=random.Random(f"{self.seed}-source"), rst=dut.rst)
        self.sink = AxisSink(dut, "m_axis", self.clock, stall=self.stall,
                             rng=random.Random(f"{self.seed}-sink"), rst=dut.rst)
        self.adapters = {}
        for u in params["mapping"]["units"]:
            spec = AnalogTileSpec.from_config(self.cfg.with_sections(
                tile={"row_tiles": u["row_tiles"], "col_tiles": u["col_tiles"]}))
            self.adapters[u["index"]] = AnalogAdapter(dut, self.clock, spec, self.board,
                                                      self.block, unit=u["index"])
        self.timing = AcceleratorTiming(self.cfg)
        self.per_beat = self.timing.per_beat
        self.fmt = ProgramFormat(map_model(self.cfg))
        self.prog_writes: list = []
        self.monitors = [ProgramMonitor(dut, self.clock, self.fmt, u["index"], self.prog_writes)
                         for u in params["mapping"]["units"]]
        self.programmed: dict[int, np.ndarray] | None = None
        self.prog_cycles: int | None = None
        self._models: dict[bool, object] = {}
        self.decoder = self.cfg.model.kind == "decoder"
        self._caches: dict[bool, object] = {}  # a decoder's golden K and V caches
        self._matrices: dict = {}  # the crossbars' golden models, built once

    def control(self, name: str) -> int:
        """Byte address of control register ``name``."""
        return 4 * (self.regmap.region("control").base + CONTROL[name][0])

    async def start(self) -> None:
        dut = self.dut
        Clock(dut.clk, PERIOD_PS, unit="ps").start()
        dut.rst.value = 1
        await ClockCycles(dut.clk, 2)
        dut.rst.value = 0
        await RisingEdge(dut.clk)
        for adapter in self.adapters.values():
            cocotb.start_soon(adapter.run())
        for monitor in self.monitors:
            cocotb.start_soon(monitor.run())
        self.source.start()
        self.sink.start()

    async def ensure_programmed(self) -> None:
        """Program the weights unless an earlier test of this simulation did."""
        if "levels" in _CROSSBARS:
            self.programmed = _CROSSBARS["levels"]
            self.prog_cycles = _CROSSBARS["prog_cycles"]
        else:
            await self.program()

    def model(self, effects: bool = False):
        if effects not in self._models:
            self._models[effects] = accelerator_model(self.cfg, effects)
        return self._models[effects]

    def case(self, n: int, effects: bool = False, h: np.ndarray | None = None) -> AccelCase:
        """A run on the crossbars as programmed: the embedding codes ``h``, or for the
        real MiniLM the shortest reference sentence of at least ``n`` tokens, else ``n``
        random tokens. A decoder's run continues golden's cache (:meth:`new_sequence`)."""
        model = self.model(effects)
        if self.decoder:
            cache = self._caches.setdefault(effects, model.new_cache())
            if h is None:
                h = random_tokens(model, n, self.rng, cache.length)
            return AccelCase(model.cfg, model, self.regmap, h, self.per_beat, self.programmed,
                             cache=cache, matrices=self._matrices)
        if h is None and self.cfg.model.name == "minilm":
            text, h = sentence_codes(model, n)
            self.dut._log.info(f"sentence ({len(h)} tokens): {text!r}")
        elif h is None:
            h = random_tokens(model, n, self.rng)
        return AccelCase(model.cfg, model, self.regmap, h, self.per_beat, self.programmed,
                         matrices=self._matrices)

    async def program(self, level_maps: dict[int, np.ndarray] | None = None) -> None:
        """Program the crossbars with ``level_maps`` (default: golden's mapping of the
        model's weights) as a host would; check every image beat and crossbar write at its
        predicted cycle, ``PROG_CYCLES`` and ``STATUS``; keep what each unit now holds."""
        b = self.board
        if level_maps is None:
            level_maps = unit_level_maps(self.model())
        beats = weight_image(self.fmt, level_maps)
        start, start_ps = time.perf_counter(), get_sim_time(unit="ps")
        b.compare("PROGRAM write", OKAY, await self.axil.write(self.control("program"), 1))
        self.clock.start()
        del self.prog_writes[:]
        before = len(self.source.sent)
        width = self.cfg.accelerator.stream_bits
        self.source.send(data | last << width for data, last in beats)
        status, _ = await self.axil.read(self.control("status"))
        b.compare("STATUS.programming while the image streams", PROGRAMMING,
                  status & PROGRAMMING)
        while len(self.source.sent) < before + len(beats):
            await ClockCycles(self.dut.clk, 256)
        sent = self.source.sent[before:]
        want = ProgramSchedule.of(self.fmt, [t.offered for t in sent])
        await ClockCycles(self.dut.clk, max(0, want.done - self.clock.now) + 2)
        b.compare("image beats taken (cycles)", want.accepted, [t.taken for t in sent])
        b.compare("crossbar rows written (cycle, unit, crossbar, row)",
                  [(c, *o) for c, o in zip(want.writes, self.fmt.order, strict=True)],
                  [w[:4] for w in self.prog_writes])
        b.compare("STATUS after programming", (0, OKAY),
                  await self.axil.read(self.control("status")))
        b.compare("PROG_CYCLES", (want.cycles, OKAY),
                  await self.axil.read(self.control("prog_cycles")))
        units = {u.index: u for u in self.fmt.mapping.units}
        captures = {i: LevelCapture(self.fmt, u) for i, u in units.items()}
        for _, unit, x, r, levels in self.prog_writes:
            captures[unit].write(x, r, levels)
        self.programmed = {i: c.level_map for i, c in captures.items()}
        self.prog_cycles = want.cycles
        _CROSSBARS.update(levels=self.programmed, prog_cycles=want.cycles)
        self.dut._log.info("weights programmed: %d crossbar rows in %d cycles",
                           len(self.prog_writes), want.cycles)
        # what programming cost the simulation (the benchmark's figures)
        write_record(test=f"{b.name}:program", phase="program", seed=self.seed,
                     image_beats=len(beats), prog_cycles=want.cycles,
                     timed_cycles=int(get_sim_time(unit="ps") - start_ps) // PERIOD_PS,
                     wall_seconds=time.perf_counter() - start, errors=len(b.errors))

    async def new_sequence(self) -> None:
        """A decoder's next run starts a new sequence: KV_CLEAR, and golden's caches
        emptied."""
        self.board.compare("KV_CLEAR", OKAY, await self.axil.write(self.control("kv_clear"), 1))
        self._caches.clear()

    async def generate(self, prompt: int, steps: int, effects: bool = False) -> list[int]:
        """A decoder's generation from a new sequence: a prefill of ``prompt`` random tokens,
        then ``steps`` decode steps, each token the arg-max of the vocabulary head over the
        hidden state the accelerator returned last; every run checked. The tokens fed."""
        model = self.model(effects)
        head = vocab_head(self.cfg)
        await self.new_sequence()
        ids = self.rng.integers(0, self.cfg.model.vocab_size, prompt).tolist()
        case = self.case(prompt, effects, model.embedding_codes(ids))
        for step in range(steps + 1):
            if step:
                case = self.case(1, effects, model.embedding_codes(ids[-1:], len(ids) - 1))
            received = await self.run(case)
            hidden = unpack_beats(received, self.cfg.model.d_model,
                                  model.spec.residual_bits, self.per_beat)
            ids.append(int(np.argmax(model.hidden(hidden[-1]) @ head)))
        return ids[:-1]

    async def write_all(self, case: AccelCase) -> None:
        for word, value in case.writes:
            resp = await self.axil.write(4 * word, value)
            if resp != OKAY:
                self.board.error(f"write of word {word:#x}: response {resp}, expected OKAY")

    async def run(self, case: AccelCase, board: Scoreboard | None = None) -> list[int]:
        """Write everything (a decoder's parameters once a sequence), stream the run, take
        the output; check (on ``board``, default the test's). The output beats' data."""
        b = board or self.board
        for adapter in self.adapters.values():
            adapter.board = b
        start, start_ps = time.perf_counter(), get_sim_time(unit="ps")
        if case.base == 0:
            await self.write_all(case)
            self.dut._log.info("%d register writes in %.1f s", len(case.writes),
                               time.perf_counter() - start)
        for u, adapter in self.adapters.items():
            adapter.serve(case.units[u])
        first_samples = {u: len(a.samples) for u, a in self.adapters.items()}
        self.clock.start()
        sent_before, received_before = len(self.source.sent), len(self.sink.received)
        self.source.send(data | last << self.cfg.accelerator.stream_bits
                         for data, last in case.beats)
        n, base = len(case.h), case.base
        out_beats = len(case.beats)
        budget = self.timing.schedule(n, base=base).taken[-1] * 4 + 2000
        budget = int(budget / (1 - self.idle) / (1 - self.stall))
        await self.sink.wait_for(received_before + out_beats, budget)
        await ClockCycles(self.dut.clk, 50)  # anything extra shows now
        self.wall_seconds = time.perf_counter() - start
        self.timed_cycles = int(get_sim_time(unit="ps") - start_ps) // PERIOD_PS
        sent = self.source.sent[sent_before:]
        received = self.sink.received[received_before:]
        b.compare("output beats", out_beats, len(received))
        want = pack_beats(case.expected, case.model.spec.residual_bits, self.per_beat)
        width = self.cfg.accelerator.stream_bits
        for i, (w, got) in enumerate(zip(want, received)):
            if got.payload is not None:
                b.compare(f"output beat {i} (tdata, tlast)", w,
                          (got.payload & ((1 << width) - 1), got.payload >> width))
        for msg in self.sink.protocol_errors:
            b.error(f"m_axis protocol: {msg}")
        for u, adapter in self.adapters.items():
            b.compare(f"unit {u} reads", len(case.units[u].drives),
                      len(adapter.samples) - first_samples[u])
        model = self.timing.schedule(n, [t.offered for t in sent], self.sink.ready_in, base)
        for name, got in (("input accepted", [t.taken for t in sent]),
                          ("output offered", [t.offered for t in received]),
                          ("output taken", [t.taken for t in received])):
            key = {"input accepted": "accepted", "output offered": "offered",
                   "output taken": "taken"}[name]
            b.compare(f"{name} cycles", getattr(model, key), got)
        cycles, _ = await self.axil.read(self.control("cycles"))
        if sent and received:
            b.compare("CYCLES register", received[-1].taken - sent[0].taken + 1, cycles)
        b.compare("TOKENS after the run (cleared)", (0, OKAY),
                  await self.axil.read(self.control("tokens")))
        b.compare("KV_TOKENS after the run", (base + n if self.decoder else 0, OKAY),
                  await self.axil.read(self.control("kv_tokens")))
        for adapter in self.adapters.values():
            adapter.board = self.board
        data = [t.payload & ((1 << width) - 1) for t in received if t.payload is not None]
        if b is not self.board:
            return data
        bounds = self.timing.bounds(n, base)
        latency = model.latency
        write_record(test=b.name, pattern=self.pattern, seed=self.seed, tokens=n, base=base,
                     cycles=cycles, predicted_cycles=latency,
                     cycles_per_token=cycles / n, bound=bounds.bound, tight_bound=bounds.tight,
                     busiest=bounds.busiest, critical_path=bounds.critical_path,
                     busy_share={k: round(w / latency, 4) for k, w in bounds.work.items()},
                     prog_cycles=self.prog_cycles, wall_seconds=self.wall_seconds,
                     timed_cycles=self.timed_cycles,
                     register_writes=len(case.writes) if base == 0 else 0,
                     errors=len(b.errors))
        b.assert_clean(f"test seed {self.seed}; rerun with "
                       f"COCOTB_RANDOM_SEED={os.environ.get('COCOTB_RANDOM_SEED')}")
        return data


@cocotb.test()
async def ideal_equals_integer_model(dut):
    """No device effect, ADCs resolving every read: the accelerator's hidden states are the
    integer model's, bit for bit, through AXI; the ID and CONFIG registers read back. A
    decoder: a prefill of half ``seq_len`` and :data:`DECODE_STEPS` decode steps, the tokens
    chosen from the accelerator's own outputs, equal to the integer decoder's full forward
    of the same tokens."""
    tb = AccelTB(dut, "ideal_equals_integer_model")
    await tb.start()
    await tb.program()
    for name, want in (("id", ID), ("config", tb.digest)):
        got, resp = await tb.axil.read(tb.control(name))
        tb.board.compare(f"{name.upper()} register", (want, OKAY), (got, resp))
    if tb.decoder:
        ids = await tb.generate(tb.cfg.model.seq_len // 2, DECODE_STEPS)
        model = tb.model()
        ints = IntOnlyDecoder(model.float_model, model.cfg, model.ranges)
        cache = tb._caches[False]
        tb.board.compare("golden accelerator equals the integer model",
                         ints.forward_codes(ints.embedding_codes(ids), ints.new_cache()).tolist(),
                         model.forward_codes(model.embedding_codes(ids), model.new_cache())
                         .tolist())
        tb.board.compare("cache length", len(ids), cache.length)
        tb.board.assert_clean(f"test seed {tb.seed}")
        return
    case = tb.case(tb.cfg.model.seq_len)
    from cimforge.golden.int_model import IntOnlyEncoder

    ints = IntOnlyEncoder(case.model, case.model.cfg, case.model.ranges)
    ones = np.ones((1, len(case.h)), dtype=bool)
    tb.board.compare("golden accelerator equals the integer model",
                     ints.codes_from_embeddings(case.h, ones, ones).tolist(),
                     case.expected.tolist())
    await tb.run(case)


@cocotb.test()
@cocotb.parametrize(pattern=list(ACCEL_PATTERNS))
async def all_effects(dut, pattern: str):
    """Every analog effect on (the tile benches' set: programming and read noise, drift,
    faults, IR drop, drift compensation), random idle and back-pressure on the streams: two
    sequences back to back, bit- and cycle-exact (a decoder: a generation, as in
    ``ideal_equals_integer_model``)."""
    tb = AccelTB(dut, "all_effects", pattern)
    await tb.start()
    await tb.ensure_programmed()
    if tb.decoder:
        await tb.generate(tb.cfg.model.seq_len // 2, DECODE_STEPS, effects=True)
        return
    await tb.run(tb.case(tb.cfg.model.seq_len, effects=True))
    await tb.run(tb.case(max(1, tb.cfg.model.seq_len // 2), effects=True))


@cocotb.test()
async def wrong_weights_detected(dut):
    """A crossbar of the last layer's ff2 unit left at the erased level (zeros in the image)
    changes what that crossbar reads: the bench must see the hidden states differ from
    golden's. Programmed right, the same tokens come out exact. (One row of the first layer's
    q unit is not enough to be sure: on tiny-2layer its effect was rounded away.)"""
    tb = AccelTB(dut, "wrong_weights_detected")
    await tb.start()
    maps = {u: m.copy() for u, m in unit_level_maps(tb.model()).items()}
    last = tb.fmt.mapping.units[-1]
    t = tb.cfg.tile
    maps[last.index][:t.rows, :t.cols] = 0  # crossbar 0 of the unit, never programmed
    tb.board.compare("the crossbar holds weights", True, bool(
        unit_level_maps(tb.model())[last.index][:t.rows, :t.cols].any()))
    await tb.program(maps)
    if tb.decoder:
        await tb.new_sequence()
    case = tb.case(tb.cfg.model.seq_len)
    wrong = Scoreboard(f"{tb.board.name}, crossbar unprogrammed", dut._log, max_logged=0)
    await tb.run(case, wrong)
    differ = [e for e in wrong.errors if e.startswith("output beat")]
    dut._log.info("with unit %d's crossbar 0 unprogrammed: %d of %d output beats differ",
                  last.index, len(differ), len(case.beats))
    tb.board.compare("output beats differ with a crossbar unprogrammed", True, bool(differ))
    await tb.program()
    if tb.decoder:
        await tb.new_sequence()
    await tb.run(tb.case(len(case.h), h=case.h))
    tb.board.assert_clean(f"test seed {tb.seed}")


@cocotb.test()
async def bad_input(dut):
    """A write where nothing is or to a read-only register, a write, PROGRAM or KV_CLEAR
    while busy, a read of a write-only region: SLVERR and their ERROR bits; a sequence longer
    than the KV capacity: ERROR.kv_overflow, the capacity's tokens out (a decoder's cache is
    then full: STATUS.kv_full, and a decode step's token is dropped, with ERROR.kv_overflow
    and no output, until KV_CLEAR); a misplaced tlast in a sequence or in the weight image:
    ERROR.tlast. ERROR clears by writing 1s."""
    tb = AccelTB(dut, "bad_input")
    await tb.start()
    await tb.ensure_programmed()
    b = tb.board
    error = tb.control("error")
    params = tb.regmap.region("lnf" if tb.decoder else "ln0")
    top = 4 * tb.regmap.words
    b.compare("write beyond the map", SLVERR, await tb.axil.write(top, 1))
    b.compare("ERROR after it", (1 << ERROR_BITS["bad_address"], OKAY),
              await tb.axil.read(error))
    b.compare("read of a parameter region", SLVERR,
              (await tb.axil.read(4 * params.base))[1])
    await tb.axil.write(error, 0xF)
    b.compare("write to the read-only ID", SLVERR, await tb.axil.write(tb.control("id"), 0))
    b.compare("ERROR after it", (1 << ERROR_BITS["bad_address"], OKAY),
              await tb.axil.read(error))
    b.compare("ID unchanged", (ID, OKAY), await tb.axil.read(tb.control("id")))
    await tb.axil.write(error, 0xF)
    b.compare("ERROR cleared", (0, OKAY), await tb.axil.read(error))
    # a sequence longer than the capacity: the first `capacity` tokens are computed
    cap = tb.cfg.dcim.rows
    if tb.decoder:
        await tb.new_sequence()
    case = tb.case(cap)
    await tb.write_all(case)
    extra = random_tokens(case.model, 2, tb.rng)
    long_beats = pack_beats(np.vstack([case.h, extra]), case.model.spec.residual_bits,
                            tb.per_beat)
    for u, adapter in tb.adapters.items():
        adapter.serve(case.units[u])
    before = len(tb.sink.received)
    tb.source.send(data | last << tb.cfg.accelerator.stream_bits for data, last in long_beats)
    await RisingEdge(dut.s_axis_tready)
    await ClockCycles(dut.clk, 4)
    # a parameter write, or a PROGRAM, while the sequence runs is refused
    b.compare("write while busy", SLVERR, await tb.axil.write(4 * params.base, 0))
    b.compare("PROGRAM while busy", SLVERR, await tb.axil.write(tb.control("program"), 1))
    b.compare("KV_CLEAR while busy", SLVERR, await tb.axil.write(tb.control("kv_clear"), 1))
    await tb.sink.wait_for(before + len(case.beats), 400_000)
    await ClockCycles(dut.clk, 50)
    got = tb.sink.received[before:]
    b.compare("tokens out of an overlong sequence", len(case.beats), len(got))
    want = pack_beats(case.expected, case.model.spec.residual_bits, tb.per_beat)
    width = tb.cfg.accelerator.stream_bits
    b.compare("the capacity's tokens", [d for d, _ in want],
              [t.payload & ((1 << width) - 1) for t in got])
    flags = (1 << ERROR_BITS["kv_overflow"]) | (1 << ERROR_BITS["busy_write"])
    b.compare("ERROR after it", (flags, OKAY), await tb.axil.read(error))
    await tb.axil.write(error, flags)
    if tb.decoder:
        # the cache is full: the next run's token is dropped, nothing comes out
        b.compare("KV_TOKENS of a full cache", (cap, OKAY),
                  await tb.axil.read(tb.control("kv_tokens")))
        b.compare("STATUS of a full cache", (KV_FULL, OKAY),
                  await tb.axil.read(tb.control("status")))
        before = len(tb.sink.received)
        tb.source.send(data | last << width for data, last in
                       pack_beats(extra[:1], case.model.spec.residual_bits, tb.per_beat))
        await ClockCycles(dut.clk, 400)
        b.compare("output of a run into a full cache", before, len(tb.sink.received))
        b.compare("ERROR after it", (1 << ERROR_BITS["kv_overflow"], OKAY),
                  await tb.axil.read(error))
        b.compare("KV_TOKENS after it", (cap, OKAY),
                  await tb.axil.read(tb.control("kv_tokens")))
        await tb.axil.write(error, 1 << ERROR_BITS["kv_overflow"])
        await tb.new_sequence()
        b.compare("STATUS after KV_CLEAR", (0, OKAY), await tb.axil.read(tb.control("status")))
    # tlast on the first beat of the second token: one token computed, the rest dropped
    one = tb.case(1)
    await tb.write_all(one)
    for u, adapter in tb.adapters.items():
        adapter.serve(one.units[u])
    second = pack_beats(random_tokens(one.model, 1, tb.rng), one.model.spec.residual_bits,
                        tb.per_beat)
    beats = [(d, 0) for d, _ in one.beats] + [(second[0][0], 1)]
    before = len(tb.sink.received)
    tb.source.send(data | last << width for data, last in beats)
    await tb.sink.wait_for(before + len(one.beats), 200_000)
    await ClockCycles(dut.clk, 50)
    got = tb.sink.received[before:]
    want = pack_beats(one.expected, one.model.spec.residual_bits, tb.per_beat)
    b.compare("a misplaced tlast: the complete token out", want,
              [(t.payload & ((1 << width) - 1), t.payload >> width) for t in got])
    b.compare("ERROR after it", (1 << ERROR_BITS["tlast"], OKAY), await tb.axil.read(error))
    await tb.axil.write(error, 1 << ERROR_BITS["tlast"])
    # a weight image cut short by tlast: ERROR.tlast, programming ends with the rows written
    image = weight_image(tb.fmt, unit_level_maps(tb.model()))
    cut = 2 * tb.fmt.beats_per_row + 1
    b.compare("PROGRAM", OKAY, await tb.axil.write(tb.control("program"), 1))
    del tb.prog_writes[:]
    tb.source.send(d | int(i == cut - 1) << width for i, (d, _) in enumerate(image[:cut]))
    await ClockCycles(dut.clk, cut + 4 * tb.fmt.cycles_per_row)
    b.compare("ERROR after an image cut short", (1 << ERROR_BITS["tlast"], OKAY),
              await tb.axil.read(error))
    b.compare("STATUS after it: an error, not programming", (1 << 1, OKAY),
              await tb.axil.read(tb.control("status")))
    b.compare("crossbar rows written before the cut", 2, len(tb.prog_writes))
    b.assert_clean(f"test seed {tb.seed}")
