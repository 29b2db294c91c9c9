# amaranth: UnusedElaboratable=no
"""Analog tile unit in Amaranth's simulator against golden (fast; the cocotb bench covers the
generated Verilog in Verilator and Icarus)."""


import numpy as np
import pytest
from amaranth.hdl import Fragment

from cimforge.config import load_config
from cimforge.golden.analog_tile import AnalogTileSpec
from cimforge.hw.analog_tile import AnalogTile
from cimforge.verif.amaranth_tile import run_tile
from cimforge.verif.tile_case import EFFECTS, TileCase, random_matrix

TINY = load_config("tiny")
ALL_EFFECTS = EFFECTS



def case_for(cfg, seed, vectors=3, scale=40.0):
    spec = AnalogTileSpec.from_config(cfg)
    rng = np.random.default_rng(seed)
    w = random_matrix(spec, rng, scale=scale)
    x = np.clip(np.rint(rng.standard_normal((vectors, w.shape[0])) * 60), -128, 127)
    x = x.astype(np.int64)
    x[0, ::2] = -128
    return TileCase(cfg, w, x)


def check(case, seed=0, **kw):
    run = run_tile(case, seed=seed, **kw)
    errors = run.check(case)
    assert not errors, f"seed {seed}: {len(errors)} mismatches, first: {errors[:3]}"
    return run


def test_rejects_non_spec():
    with pytest.raises(TypeError, match=r"spec must be an AnalogTileSpec, not 3"):
        AnalogTile(3)


def test_elaborates():
    Fragment.get(AnalogTile(AnalogTileSpec.from_config(TINY)), None)


def test_ideal_equals_integer_matmul():
    case = case_for(TINY, 1)
    n = case.w.shape[1]
    assert (case.expected[:, :n] == case.x @ case.w).all()
    check(case)


CONFIGS = {
    "all_effects_sar": {"analog": ALL_EFFECTS, "adc": {"offset_sigma_lsb": 0.4}},
    "offset_trimmed_sar": {"analog": ALL_EFFECTS,
                           "adc": {"offset_sigma_lsb": 1.2, "offset_calibration": True}},
    "flash": {"adc": {"kind": "flash"}},
    "flash_offsets_effects": {"adc": {"kind": "flash", "offset_sigma_lsb": 0.6},
                              "analog": ALL_EFFECTS},
    "bpc1": {"tile": {"bits_per_cell": 1, "rows_per_read": 8, "cols": 32},
             "adc": {"bits": 4}},
    "bpc4": {"tile": {"bits_per_cell": 4, "rows_per_read": 4}, "adc": {"bits": 6},
             "device": {"max_bits_per_cell": 4}},
    "one_adc_per_column": {"adc": {"cols_per_adc": 1}},
    "eight_cols_per_adc": {"adc": {"cols_per_adc": 8}},
    # an ADC converting two whole channels in turn: two accumulator entries per lane
    "sixteen_cols_per_adc": {"adc": {"cols_per_adc": 16}},
    "bpc4_two_col_tiles": {"tile": {"bits_per_cell": 4, "rows_per_read": 4, "col_tiles": 2},
                           "adc": {"bits": 6, "cols_per_adc": 16}, "analog": ALL_EFFECTS,
                           "device": {"max_bits_per_cell": 4}},
    "tiles_2x2": {"tile": {"row_tiles": 2, "col_tiles": 2}, "analog": ALL_EFFECTS},
    "dac2_calibrated": {"tile": {"dac_bits": 2}, "adc": {"range": "calibrated", "bits": 7},
                        "analog": ALL_EFFECTS},
    "gain_trim_full_range": {"adc": {"range": "full", "gain_calibration": True},
                             "analog": ALL_EFFECTS},
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_configuration_against_golden(name):
    cfg = TINY.with_sections(**CONFIGS[name])
    check(case_for(cfg, 2))


@pytest.mark.parametrize("idle, stall", [(0.3, 0.0), (0.0, 0.6), (0.3, 0.6), (0.0, 0.99)])
def test_flow_control(idle, stall):
    cfg = TINY.with_sections(adc={"kind": "flash", "cols_per_adc": 1})  # short reads: stalls bite
    case = case_for(cfg, 3, vectors=8)
    check(case, seed=5, idle=idle, stall=stall)


@pytest.mark.parametrize("saturate, rounding", [(True, "half_even"), (False, "half_up"),
                                                (True, "floor")])
def test_accumulator_limits_and_rounding(saturate, rounding):
    # a 20-bit accumulator overflows on extreme inputs (32 x 128 x 128 = 2^19), and a year's
    # drift compensation (a factor near 2) rounds and overflows again
    cfg = TINY.with_sections(numerics={"acc_bits": 20, "saturate": saturate, "rounding": rounding},
                analog={"drift": True, "t_inference": 3.0e7, "drift_compensation": True})
    rng = np.random.default_rng(4)
    w = rng.integers(-128, 128, size=(32, 4))
    w[:, 0], w[:, 1] = -128, 127
    x = rng.integers(-128, 128, size=(4, 32))
    x[1:3] = -128
    case = TileCase(cfg, w, x)
    exact = TileCase(cfg.with_sections(numerics={"acc_bits": 48}), case.w, case.x).expected
    assert (case.expected != exact).any()  # the limits matter in this case
    check(case)


def test_full_rate_utilisation():
    case = case_for(TINY, 6, vectors=6)
    run = check(case)
    spec = case.spec
    # reads back to back from the first sample to the last: the ADCs never idle
    gaps = {b - a for a, b in zip(run.samples, run.samples[1:])}
    assert gaps == {spec.read_cycles}
    assert len(run.samples) == 6 * spec.reads_per_vector


@pytest.mark.parametrize("written, stored", [
    ([20, -20 & 0xFFFF, 5, -3 & 0xFFFF], [8, -8, 5, -3]),  # clamped to +-ADC_EXP_LIMIT
    # docs/hw-analog-tile.md: the word is read as signed 16-bit, then clamped, then kept in
    # 5 bits, so 0x1F (-1 in 5 bits) is +31 and stores +8
    ([0x1F, 0xFFFF, 0x8000, 0x0003], [8, -1, -8, 3]),
])
def test_range_registers_are_clamped_on_write(written, stored):
    from amaranth.sim import Simulator

    from cimforge.golden.analog_tile import REGISTERS
    from cimforge.golden.cim import ADC_EXP_LIMIT
    from cimforge.hw.analog_tile_sim import AnalogTileSim

    dut = AnalogTileSim(AnalogTileSpec.from_config(TINY))
    assert len(written) <= dut.spec.weight_slices and max(map(abs, stored)) <= ADC_EXP_LIMIT
    seen = []

    async def bench(ctx):
        for k, value in enumerate(written):
            ctx.set(dut.csr.addr, REGISTERS["range"] + k)
            ctx.set(dut.csr.data, value)
            ctx.set(dut.csr.we, 1)
            await ctx.tick()
        ctx.set(dut.csr.we, 0)
        await ctx.tick()
        seen.extend(int(v) for v in ctx.get(dut.probe_range_exp))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen[:len(stored)] == stored
