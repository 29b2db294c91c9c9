"""cimforge.config: presets, overrides, derived values and every kind of bad input."""

import dataclasses
import re

import pytest

from cimforge.config import (
    KNOWN_DEVICES,
    KNOWN_MODELS,
    Config,
    ConfigError,
    TileConfig,
    load_config,
    preset_names,
)


def write(tmp_path, text, name="cfg.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_presets_load():
    assert preset_names() == ["bert-base", "gpt2", "minilm", "minilm-adc8", "minilm-layer",
                              "minilm-pcm", "tiny", "tiny-2layer", "tiny-decoder"]
    for name in preset_names():
        cfg = load_config(name)
        assert cfg.name == name
    assert load_config(None).name == "tiny"


def test_known_model_shapes_fill_presets():
    assert load_config("minilm").model == KNOWN_MODELS["minilm"]
    assert load_config("gpt2").model.kind == "decoder"


def test_derived_values_tiny():
    cfg = load_config("tiny")
    assert cfg.weight_slices == 4  # 8-bit weights / 2 bits per cell
    assert cfg.input_digits == 8
    assert cfg.cols_per_channel == 8
    assert cfg.channels_per_tile == 4
    assert cfg.adcs_per_tile == 8
    assert cfg.max_shift == 7 + 6
    assert cfg.row_tiles(64) == 2
    assert cfg.model.d_head == 16


def test_config_is_frozen():
    cfg = load_config("tiny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3


def test_toml_path_with_base_and_overrides(tmp_path):
    p = write(tmp_path, 'base = "minilm"\nseed = 7\n[adc]\nbits = 6\n')
    cfg = load_config(p)
    assert (cfg.seed, cfg.adc.bits, cfg.adc.cols_per_adc) == (7, 6, 8)
    assert cfg.model == KNOWN_MODELS["minilm"] and cfg.name == "cfg"
    assert cfg.digest() != load_config("minilm").digest()


def test_naming_a_known_model_replaces_the_base_shape(tmp_path):
    p = write(tmp_path, 'base = "tiny"\n[model]\nname = "gpt2"\nseq_len = 16\n')
    cfg = load_config(p)
    assert cfg.model == dataclasses.replace(KNOWN_MODELS["gpt2"], seq_len=16)
    assert cfg.tile == load_config("tiny").tile


def test_device_preset_fills_and_overrides(tmp_path):
    p = write(tmp_path, 'base = "tiny"\n[device]\npreset = "reram"\nprog_sigma = 0.05\n')
    cfg = load_config(p)
    assert cfg.device == dataclasses.replace(KNOWN_DEVICES["reram"], prog_sigma=0.05)
    assert cfg.device.g_min_us == pytest.approx(10.0)


def test_device_presets_follow_table_ii():
    d = KNOWN_DEVICES
    assert [d[n].cell_area_f2 for n in ("sram", "reram", "pcm", "fefet")] == [160, 16, 16, 16]
    assert [d[n].endurance for n in ("sram", "reram", "pcm", "fefet", "mram")] == [
        1e16, 1e5, 1e7, 1e10, 1e15]
    assert [d[n].write_latency_s for n in ("reram", "pcm", "fefet")] == [100e-9, 150e-9, 175e-9]
    assert d["sram"].max_bits_per_cell == d["mram"].max_bits_per_cell == 1  # no multi-level


def test_base_relative_to_file(tmp_path):
    write(tmp_path, 'base = "tiny"\n[adc]\nbits = 7\n', "parent.toml")
    child = write(tmp_path, 'base = "parent.toml"\n[tile]\nrows_per_read = 8\n', "child.toml")
    cfg = load_config(child)
    assert (cfg.adc.bits, cfg.tile.rows_per_read, cfg.model.name) == (7, 8, "tiny")


def test_digest_ignores_the_cost_section():
    """[cost] parameterises estimates, not hardware: no rebuild when it changes."""
    cfg = load_config("tiny")
    cheap = cfg.with_sections(cost={"node_nm": 7.0, "vdd": 0.6})
    assert cheap.cost.node_nm == 7.0 and cheap.digest() == cfg.digest()
    assert cfg.with_sections(tile={"rows_per_read": 8}).digest() != cfg.digest()


def test_digest_ignores_name_only():
    a = load_config("tiny")
    assert dataclasses.replace(a, name="other").digest() == a.digest()
    assert dataclasses.replace(a, seed=2).digest() != a.digest()


BAD = [
    # (toml text, message regex)
    ('base = "tiny"\n[tile]\nrowz = 3\n',
     r"cfg\.toml: tile\.rowz: unknown key: \[tile\] allows rows, cols, bits_per_cell"),
    ('base = "tiny"\nmystery = 1\n', r"cfg\.toml: mystery: unknown key: allowed are base"),
    ('base = "tiny"\n[adc]\nbits = 17\n',
     r"cfg\.toml: adc\.bits: 17 is out of range: must be an integer in \[1, 16\]"),
    ('base = "tiny"\n[adc]\nbits = 0\n', r"adc\.bits: 0 is out of range"),
    ('base = "tiny"\n[adc]\nbits = "8"\n', r"cfg\.toml: adc\.bits: '8' must be an integer"),
    ('base = "tiny"\n[adc]\nkind = "delta-sigma"\n',
     r"adc\.kind: 'delta-sigma' is not allowed: must be one of sar, flash"),
    ('base = "tiny"\n[adc]\nkind = "flash"\nbits = 10\n',
     r"adc\.bits: 10 is too wide for a flash ADC .*must be <= 8"),
    ('base = "tiny"\n[adc]\nkind = "flash"\noffset_calibration = true\n',
     r"adc\.offset_calibration: true trims one comparator per ADC, and a flash ADC has "
     r"2\^bits - 1: must be false with kind = 'flash'"),
    ('base = "tiny"\n[model]\nd_model = 30\nn_heads = 4\n',
     r"cfg\.toml: model\.d_model: 30 is not divisible by n_heads \(4\)"),
    ('base = "tiny"\n[model]\nseq_len = 64\n', r"model\.seq_len: 64 exceeds max_seq \(16\)"),
    ('base = "tiny"\n[model]\nkind = "seq2seq"\n',
     r"model\.kind: 'seq2seq' is not allowed: must be one of encoder, decoder"),
    ('base = "tiny"\n[tile]\nrows_per_read = 12\n',
     r"cfg\.toml: tile\.rows_per_read: 12 does not divide rows \(32\)"),
    ('base = "tiny"\n[tile]\nrows_per_read = 64\n',
     r"tile\.rows_per_read: 64 is out of range: must be an integer in \[1, 32\]"),
    ('base = "tiny"\n[tile]\nbits_per_cell = 3\n',
     r"tile\.bits_per_cell: 3 is not allowed: must be one of 1, 2, 4"),
    ('base = "tiny"\n[tile]\nbits_per_cell = 2.0\n',
     r"tile\.bits_per_cell: 2\.0 must be an integer"),
    ('base = "tiny"\n[tile]\ndac_bits = true\n', r"tile\.dac_bits: True must be an integer"),
    ('base = "tiny"\n[tile]\ndac_bits = 5\n',
     r"tile\.dac_bits: 5 is out of range: must be an integer in \[1, 4\]"),
    ('base = "tiny"\n[adc]\nbits = 1\n',
     r"adc\.bits: 1 cannot resolve the 4 levels of one 2-bit cell: must be >= tile\.bits_per_cell"),
    ('base = "tiny"\nname = 3\n', r"cfg\.toml: name: 3 must be a non-empty string"),
    ('base = "tiny"\n[tile]\ncols = 36\n',
     r"tile\.cols: 36 is not a multiple of the 8 columns one output channel needs"),
    ('base = "tiny"\n[adc]\ncols_per_adc = 3\n',
     r"adc\.cols_per_adc: 3 does not divide tile\.cols \(32\)"),
    ('base = "tiny"\n[numerics]\nweight_bits = 6\n[tile]\nbits_per_cell = 4\n',
     r"tile\.bits_per_cell: 4 does not divide numerics\.weight_bits \(6\)"),
    ('base = "tiny"\n[numerics]\nrounding = "stochastic"\n',
     r"numerics\.rounding: 'stochastic' is not allowed: must be one of half_even, half_up"),
    ('base = "tiny"\n[numerics]\nsaturate = 1\n', r"numerics\.saturate: 1 must be true or false"),
    ('base = "tiny"\n[numerics]\nacc_bits = 16\n[adc]\nbits = 8\n',
     r"numerics\.acc_bits: 16 cannot hold one shift-add term \(22 bits"),
    ('base = "tiny"\nseed = -1\n', r"seed: -1 is out of range: must be an integer in \[0, "),
    ('base = "tiny"\n[device]\npreset = "dram"\n',
     r"device\.preset: 'dram' is not allowed: must be one of sram, reram, pcm, fefet, mram"),
    ('base = "tiny"\ntile = 3\n', r"cfg\.toml: tile: 3 must be a table \(\[tile\]\)"),
    ('base = "nonesuch"\n', r"'nonesuch' is neither a preset nor a TOML file: must be one of"),
    ('base = 3\n', r"cfg\.toml: base: 3 must be a preset name or a TOML path"),
    ('[adc\nbits = 3', r"cfg\.toml: invalid TOML"),
    # the cost model's section
    ('base = "tiny"\n[cost]\nnode_nm = 5\n', r"cost\.node_nm: 5 is out of range"),
    ('base = "tiny"\n[cost]\nvolts = 1\n', r"cost\.volts"),
    ('base = "tiny"\n[cost]\ng_mean_fraction = 1.5\n', r"cost\.g_mean_fraction: 1\.5 is out"),
    # devices and non-idealities
    ('base = "tiny"\n[device]\npreset = "memristor9"\n',
     r"cfg\.toml: device\.preset: 'memristor9' is not allowed: must be one of sram, reram, pcm"),
    ('base = "tiny"\n[device]\npreset = "sram"\n',
     r"tile\.bits_per_cell: 2 exceeds what a sram cell holds \(device\.max_bits_per_cell = 1\)"),
    ('base = "tiny"\n[device]\non_off = 1.0\n',
     r"device\.on_off: 1\.0 is out of range: must be > 1\.0"),
    ('base = "tiny"\n[device]\nprog_sigma = -0.1\n',
     r"device\.prog_sigma: -0\.1 is out of range: must be >= 0\.0 and <= 1\.0"),
    ('base = "tiny"\n[analog]\nt_inference = -5.0\n',
     r"cfg\.toml: analog\.t_inference: -5\.0 is out of range: must be > 0\.0"),
    ('base = "tiny"\n[analog]\nt_inference = 0\n', r"analog\.t_inference: 0 is out of range"),
    ('base = "tiny"\n[analog]\nstuck_on_rate = 1.5\n',
     r"analog\.stuck_on_rate: 1\.5 is out of range: must be >= 0\.0 and <= 1\.0"),
    ('base = "tiny"\n[analog]\nstuck_off_rate = -0.01\n',
     r"analog\.stuck_off_rate: -0\.01 is out of range: must be >= 0\.0 and <= 1\.0"),
    ('base = "tiny"\n[analog]\nstuck_on_rate = 0.6\nstuck_off_rate = 0.6\n',
     r"analog\.stuck_off_rate: 0\.6 plus stuck_on_rate \(0\.6\) exceeds 1"),
    ('base = "tiny"\n[analog]\nir_drop = "spice"\n',
     r"analog\.ir_drop: 'spice' is not allowed: must be one of off, exact, approx"),
    ('base = "tiny"\n[analog]\ndrift = "yes"\n', r"analog\.drift: 'yes' must be true or false"),
    ('base = "tiny"\n[numerics]\noutlier_sigma = 1.5\n',
     r"numerics\.outlier_sigma: 1\.5 would take .*: must be 0 \(off\) or >= 2"),
    ('base = "tiny"\n[numerics]\noutlier_sigma = -3\n',
     r"numerics\.outlier_sigma: -3 is out of range: must be >= 0\.0"),
    ('base = "tiny"\n[tile]\nslice_range = "auto"\n',
     r"tile\.slice_range: 'auto' is not allowed: must be one of fixed, fitted"),
    ('base = "tiny"\n[adc]\nrange = "auto"\n',
     r"adc\.range: 'auto' is not allowed: must be one of unit, full, calibrated"),
    ('base = "tiny"\n[adc]\nrange_scale = 0.0\n',
     r"adc\.range_scale: 0\.0 is out of range: must be > 0\.0 and <= 1\.0"),
    ('base = "tiny"\n[adc]\nrange_scale = 2\n', r"adc\.range_scale: 2 is out of range"),
    ('base = "tiny"\n[adc]\npercentile = 120\n',
     r"adc\.percentile: 120 is out of range: must be > 0\.0 and <= 100\.0"),
    ('base = "tiny"\n[adc]\noffset_sigma_lsb = "big"\n',
     r"adc\.offset_sigma_lsb: 'big' must be a number"),
    ('base = "minilm"\n[nonlinear]\nresidual_bits = 24\n',
     r"nonlinear\.residual_bits: 24: LayerNorm's exact variance sum over d_model = 384 with "
     r"nonlinear\.residual_bits = 24 is 66 bits wide, more than the 62 the golden model's int64 "
     r"arithmetic holds: must be <= 22 for this d_model \(or d_model <= 127\)"),
    ('base = "tiny"\n[nonlinear]\nresidual_bits = 8\n[numerics]\nact_bits = 12\n',
     r"nonlinear\.residual_bits: 8 is narrower than the activations: must be >= "
     r"numerics\.act_bits \(12\)"),
    ('base = "tiny"\n[nonlinear]\ngelu_in_bits = 12\n',
     r"nonlinear\.gelu_in_bits: 12 would need a 4096-entry GELU table: must be <= 10"),
    ('base = "tiny"\n[nonlinear]\nexp_method = "taylor"\n',
     r"nonlinear\.exp_method: 'taylor' is not allowed: must be one of lut, poly"),
    ('base = "tiny"\n[nonlinear]\nln_frac_bits = 20\n',
     r"nonlinear\.ln_frac_bits: 20 is out of range: must be an integer in \[4, 16\]"),
    ('base = "tiny"\n[nonlinear]\nrecip_steps = 9\n',
     r"nonlinear\.recip_steps: 9 is out of range: must be an integer in \[0, 4\]"),
]


@pytest.mark.parametrize("text, message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_config_messages(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(p)
    assert str(p) in str(info.value) or "nonesuch" in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=re.escape(f"{tmp_path}/nope.toml: file not found")):
        load_config(tmp_path / "nope.toml")


def test_neither_preset_nor_file():
    with pytest.raises(ConfigError, match=r"'huge' is neither a preset nor a TOML file: must be "
                       r"one of bert-base, gpt2, minilm, minilm-adc8, minilm-layer, minilm-pcm, "
                       r"tiny"):
        load_config("huge")


def test_base_cycle(tmp_path):
    write(tmp_path, 'base = "b.toml"\n', "a.toml")
    write(tmp_path, 'base = "a.toml"\n', "b.toml")
    with pytest.raises(ConfigError, match=r"base: .* is included twice: base presets form a cycle"):
        load_config(tmp_path / "a.toml")


def test_direct_construction_validates():
    with pytest.raises(ConfigError, match=r"rows_per_read: 5 does not divide rows \(256\)"):
        TileConfig(rows_per_read=5)
    with pytest.raises(ConfigError, match=r"adc\.cols_per_adc"):
        Config(adc=dataclasses.replace(Config().adc, cols_per_adc=7))
