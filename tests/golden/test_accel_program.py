"""Weight programming in golden: the image carries every cell's level, a crossbar built from
the levels it carries is golden's own, a wrong level changes what the crossbar reads, and the
programming schedule follows the device's write time."""

import numpy as np
import pytest

from cimforge.config import ConfigError, load_config
from cimforge.golden.accel_program import (
    LevelCapture,
    ProgramFormat,
    ProgramSchedule,
    cycles_per_row,
    weight_image,
)
from cimforge.golden.cim import CimMatrix
from cimforge.golden.mapping import map_model
from cimforge.verif.accel_case import accelerator_model, unit_level_maps
from cimforge.verif.tile_case import EFFECTS

TINY = load_config("tiny")


@pytest.fixture(scope="module")
def tiny():
    model = accelerator_model(TINY)
    return ProgramFormat(model.mapping), unit_level_maps(model)


def _decode(fmt, beats):
    """What a programmer makes of ``beats``: every unit's captured levels."""
    sb, bpr = fmt.cfg.accelerator.stream_bits, fmt.beats_per_row
    units = {u.index: u for u in fmt.mapping.units}
    caps = {i: LevelCapture(fmt, u) for i, u in units.items()}
    for j, (index, x, r) in enumerate(fmt.order):
        word = sum(beats[j * bpr + b][0] << (b * sb) for b in range(bpr))
        caps[index].write(x, r, fmt.row_levels(word))
    return caps


def test_image_carries_every_level(tiny):
    fmt, maps = tiny
    beats = weight_image(fmt, maps)
    assert len(beats) == fmt.beats == 64 * 32 * 2
    assert [last for _, last in beats] == [0] * (len(beats) - 1) + [1]
    assert all(0 <= d < 1 << TINY.accelerator.stream_bits for d, _ in beats)
    for index, cap in _decode(fmt, beats).items():
        assert (cap.level_map == maps[index]).all()
        assert cap.writes == fmt.mapping.units[index].crossbars * TINY.tile.rows


def test_crossbar_from_programmed_levels_is_goldens():
    cfg = TINY.with_sections(analog=EFFECTS)  # programming noise, faults, drift, ...
    rng = np.random.default_rng(3)
    w = rng.integers(-128, 128, size=(32, 30))
    x = rng.integers(-128, 128, size=(4, 32))
    golden = CimMatrix(w, cfg, key=7)
    same = CimMatrix(w, cfg, key=7, levels=golden.level_map.copy())
    assert (same.g_us == golden.g_us).all()
    assert (same.matmul(x) == golden.matmul(x)).all()
    wrong = golden.level_map.copy()
    wrong[5, :] = 0  # one row never programmed
    assert (CimMatrix(w, cfg, key=7, levels=wrong).matmul(x) != golden.matmul(x)).any()
    with pytest.raises(ValueError, match="levels must be"):
        CimMatrix(w, cfg, levels=wrong[:-1])


def test_schedule_paced_by_the_device(tiny):
    fmt, _ = tiny
    busy = cycles_per_row(TINY)
    assert busy == 10 * (15 + 4 * 6)  # PCM: 10 iterations of a 150 ns pulse at 100 MHz + a read
    s = ProgramSchedule.of(fmt)
    per_xbar = {}
    for (index, x, _), at in zip(fmt.order, s.writes, strict=True):
        per_xbar.setdefault((index, x), []).append(at)
    gaps = [b - a for ats in per_xbar.values() for a, b in zip(ats, ats[1:])]
    assert min(gaps) == busy + 1  # a crossbar's rows follow one another as fast as it allows
    assert s.done == s.writes[-1] + busy
    assert s.cycles > fmt.beats  # the device, not the stream, sets the pace
    late = [t + 100 for t in range(fmt.beats)]  # a host that starts late
    assert ProgramSchedule.of(fmt, late).writes == [t + 100 for t in s.writes]


def test_write_verify_iterations_checked():
    with pytest.raises(ConfigError, match="write_verify_iterations"):
        TINY.with_sections(device={"preset": "pcm", "write_verify_iterations": 0})


def test_schedule_refuses_a_wrong_beat_count():
    fmt = ProgramFormat(map_model(TINY))
    with pytest.raises(ValueError, match="beats offered"):
        ProgramSchedule.of(fmt, [0, 1, 2])


@pytest.mark.parametrize("name, sections", [
    ("tiny", {}), ("tiny-2layer", {}), ("minilm-layer", {}),
    # few crossbars against a long write: each round waits for the first crossbar's write
    ("tiny", {"device": {"write_verify_iterations": 100}}),
    ("tiny", {"accelerator": {"clock_mhz": 1000.0}}),
])
def test_full_rate_cycles_in_closed_form(name, sections):
    fmt = ProgramFormat(map_model(load_config(name).with_sections(**sections)))
    assert ProgramSchedule.full_rate_cycles(fmt) == ProgramSchedule.of(fmt).cycles
