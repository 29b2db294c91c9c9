"""The weight programmer in Amaranth's simulator, with the crossbar models' busy timing: every
row of the image reaches its crossbar with its levels, every beat is taken and every row
written in the cycle golden's schedule predicts, and a misplaced tlast is reported."""

import random

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from cimforge.config import load_config
from cimforge.golden.accel_program import (
    LevelCapture,
    ProgramFormat,
    ProgramSchedule,
    crossbar_row,
    cycles_per_row,
    weight_image,
)
from cimforge.golden.mapping import map_model
from cimforge.hw.crossbar_shell import CrossbarModel
from cimforge.hw.transformer_layer import unit_spec
from cimforge.hw.weight_programmer import WeightProgrammer

# tiny with 8-row crossbars: the whole image in a few thousand cycles
CFG = load_config("tiny").with_sections(tile={"rows": 8, "rows_per_read": 8},
                                         model={"d_model": 16, "d_ff": 24})


def _harness(fmt):
    m = Module()
    m.submodules.prog = prog = WeightProgrammer(fmt)
    for u in fmt.mapping.units:
        model = CrossbarModel(unit_spec(fmt.cfg, u), cycles_per_row(fmt.cfg))
        m.submodules[f"model{u.index}"] = model
        wiring.connect(m, getattr(prog, f"prog{u.index}"), model.prog)
    return m, prog


def _run(fmt, beats, idle, seed):
    """Start, offer ``beats`` with idle cycles at probability ``idle``; returns the offered
    and accepted cycles, the strobes (cycle, unit, xbar, row, levels) and tlast errors."""
    m, prog = _harness(fmt)
    rng = random.Random(seed)
    got = {"offered": [], "accepted": [], "strobes": [], "errors": []}

    async def bench(ctx):
        ctx.set(prog.start, 1)
        await ctx.tick()
        ctx.set(prog.start, 0)
        cycle, i, valid = 0, 0, False
        while cycle < 200_000:
            if not valid and i < len(beats) and rng.random() >= idle:
                data, last = beats[i]
                ctx.set(prog.i_stream.payload.data, data)
                ctx.set(prog.i_stream.payload.last, last)
                ctx.set(prog.i_stream.valid, 1)
                got["offered"].append(cycle)
                valid = True
            for u in fmt.mapping.units:
                p = getattr(prog, f"prog{u.index}")
                if ctx.get(p.strobe):
                    got["strobes"].append((cycle, u.index, ctx.get(p.xbar), ctx.get(p.row),
                                           fmt.row_levels(ctx.get(p.levels.as_value()))))
            if ctx.get(prog.tlast_error):
                got["errors"].append(cycle)
            if valid and ctx.get(prog.i_stream.ready):
                got["accepted"].append(cycle)
                valid = False
                i += 1
            await ctx.tick()
            if not valid:
                ctx.set(prog.i_stream.valid, 0)
            cycle += 1
            if i == len(beats) and not ctx.get(prog.active):
                break

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.fixture(scope="module")
def image():
    fmt = ProgramFormat(map_model(CFG))
    rng = np.random.default_rng(5)
    maps = {u.index: rng.integers(0, 1 << CFG.tile.bits_per_cell,
                                  size=(u.row_tiles * CFG.tile.rows, u.col_tiles * CFG.tile.cols),
                                  dtype=np.uint8) for u in fmt.mapping.units}
    return fmt, maps, weight_image(fmt, maps)


@pytest.mark.parametrize("idle", [0.0, 0.3])
def test_image_written_at_predicted_cycles(image, idle):
    fmt, maps, beats = image
    got = _run(fmt, beats, idle, seed=int(idle * 10))
    assert got["errors"] == []
    want = ProgramSchedule.of(fmt, got["offered"])
    assert got["accepted"] == want.accepted
    assert [s[0] for s in got["strobes"]] == want.writes
    assert [s[1:4] for s in got["strobes"]] == fmt.order
    units = {u.index: u for u in fmt.mapping.units}
    captures = {i: LevelCapture(fmt, u) for i, u in units.items()}
    for _, index, x, r, levels in got["strobes"]:
        captures[index].write(x, r, levels)
    for index, cap in captures.items():
        assert (cap.level_map == maps[index]).all(), f"unit {index}"
    # the rows really are interleaved: the device time, not the stream, sets the pace here
    assert want.cycles > len(beats)


def test_early_tlast_ends_the_image(image):
    fmt, maps, beats = image
    cut = 3 * fmt.beats_per_row
    short = beats[:cut - 1] + [(beats[cut - 1][0], 1)]
    got = _run(fmt, short, 0.0, seed=1)
    assert got["errors"] == [got["accepted"][-1]]
    assert len(got["strobes"]) == 2  # the third row's buffer is dropped


def test_missing_tlast_is_reported(image):
    fmt, maps, beats = image
    got = _run(fmt, beats[:-1] + [(beats[-1][0], 0)], 0.0, seed=2)
    assert got["errors"] == [got["accepted"][-1]]
    assert len(got["strobes"]) == len(fmt.order)


def test_crossbar_row_and_words_round_trip(image):
    fmt, maps, _ = image
    u = fmt.mapping.units[-1]
    row = crossbar_row(maps[u.index], u, u.crossbars - 1, 2, CFG.tile.rows, CFG.tile.cols)
    assert (fmt.row_levels(fmt.row_word(row)) == row).all()
