"""The analytic cost model (golden/cost.py), the estimate (golden/estimate.py) and the
validation against published chips (golden/validation.py)."""

from __future__ import annotations

import dataclasses
import math

import pytest

from cimforge.config import CostConfig, load_config
from cimforge.golden.accel_timing import AcceleratorTiming
from cimforge.golden.cost import (
    Tech,
    adc_energy_j,
    area_scale,
    energy_scale,
    mean_input_square,
)
from cimforge.golden.estimate import GPU_BASELINE, estimate, model_config
from cimforge.golden.mapping import map_model


def test_scaling_is_one_at_the_same_node_and_shrinks_with_it():
    for node in (7.0, 14.0, 22.0, 45.0, 130.0):
        assert area_scale(node, node) == pytest.approx(1.0)
        assert energy_scale(node, 0.8, node, 0.8) == pytest.approx(1.0)
    nodes = [130.0, 90.0, 65.0, 45.0, 32.0, 28.0, 22.0, 16.0, 14.0, 10.0, 7.0]
    areas = [area_scale(n, 45.0) for n in nodes]
    energies = [energy_scale(n, 0.8, 45.0, 0.8) for n in nodes]
    assert areas == sorted(areas, reverse=True) and energies == sorted(energies, reverse=True)
    # a higher supply costs more energy at every node
    assert all(energy_scale(n, 1.0, n, 0.8) > 1 for n in nodes)
    with pytest.raises(ValueError, match="node 5 nm is outside the scaling tables' 7 to 130 nm"):
        area_scale(5.0, 45.0)


def test_mean_input_square_is_the_mean_over_levels():
    for bits in range(1, 6):
        levels = 1 << bits
        brute = sum((k / (levels - 1)) ** 2 for k in range(levels)) / levels
        assert mean_input_square(bits) == pytest.approx(brute)
    assert mean_input_square(1) == 0.5


def test_adc_energy_grows_with_bits_and_respects_the_survey_bound():
    cost = CostConfig()
    energies = [adc_energy_j(b, 1e8, cost) for b in range(1, 13)]
    assert all(b > a for a, b in zip(energies, energies[1:]))
    # never below the best published figure of merit in the rate's band (1.83 fJ below 1 GS/s)
    for b in range(1, 13):
        enob = b - cost.adc_enob_loss
        assert adc_energy_j(b, 5e8, cost) >= 1.83e-15 * 2 ** enob
    # a faster ADC of the same resolution is never cheaper
    assert adc_energy_j(8, 5e9, cost) >= adc_energy_j(8, 5e8, cost)


def test_estimate_uses_the_rtl_checked_cycle_model():
    cfg = load_config("tiny")  # its own model: the RTL runs it cycle-exactly (docs)
    est = estimate(cfg, None, 8)
    assert est.model == "tiny"
    assert est.cycles == AcceleratorTiming(cfg).schedule(8).latency
    assert est.total_j == pytest.approx(sum(est.energy_j.values()))
    assert all(v > 0 for v in est.energy_j.values())
    assert all(v > 0 for v in est.area_m2.values())


def test_estimate_counts_the_mappings_work():
    """MACs of the linear layers from the mapping's units (inputs x channels a vector), and
    every column of every active crossbar converted a read."""
    cfg = load_config("minilm")
    est = estimate(cfg, "bert-base", 16)
    mcfg = model_config(cfg, "bert-base", 16)
    mapping = map_model(mcfg)
    m = mcfg.model
    linear = 16 * sum(u.inputs * u.channels for u in mapping.units)
    attention = 16 * m.n_layers * m.n_heads * 2 * 16 * m.d_head
    assert est.macs == linear + attention
    from cimforge.hw.transformer_layer import unit_spec

    conversions = sum(16 * unit_spec(mcfg, u).reads_per_vector * u.col_tiles * mcfg.tile.cols
                      for u in mapping.units)
    assert est.counts["conversions"] == conversions


def test_encoder_tile_energy_grows_with_tokens_decoder_attention_with_context():
    cfg = load_config("minilm")
    a, b = estimate(cfg, "minilm", 16), estimate(cfg, "minilm", 32)
    assert b.energy_j["ADCs"] == pytest.approx(2 * a.energy_j["ADCs"])
    g1, g2 = estimate(cfg, "gpt2", 128), estimate(cfg, "gpt2", 1024)
    assert g1.energy_j["ADCs"] == pytest.approx(g2.energy_j["ADCs"])  # one token's vectors
    key = "digital CIM (attention)"
    assert g2.energy_j[key] == pytest.approx(8 * g1.energy_j[key])
    assert g2.cycles > g1.cycles


def test_gpu_comparison_where_a_baseline_is_known():
    cfg = load_config("minilm")
    est = estimate(cfg, "bert-base", 128)
    rows = {r["batch"]: r for r in est.gpu["baselines"]}
    sec, joules = GPU_BASELINE[("bert-base", 128, 1)]
    assert rows[1]["speedup"] == pytest.approx(sec / est.latency_s)
    assert rows[1]["efficiency"] == pytest.approx(joules / est.total_j)
    assert rows[32]["energy_j"] == pytest.approx(GPU_BASELINE[("bert-base", 128, 32)][1] / 32)
    assert estimate(cfg, "bert-base", 64).gpu is None


def test_tops_per_w_counts_two_operations_a_mac():
    est = estimate(load_config("minilm"), "minilm", 8)
    assert est.tops_per_w == pytest.approx(2 * est.macs / est.total_j / 1e12)
    assert math.isfinite(est.tops)


def test_digital_energy_scales_with_gates_activity_and_node():
    t22, t45 = Tech(CostConfig(node_nm=22.0, vdd=0.9)), Tech(CostConfig(node_nm=45.0, vdd=0.9))
    assert t22.digital_j(1000, 10) == pytest.approx(2 * t22.digital_j(500, 10))
    assert t22.digital_j(1000, 10) < t45.digital_j(1000, 10)
    half = Tech(CostConfig(node_nm=22.0, vdd=0.9, digital_activity=0.25))
    assert half.digital_j(1000, 10) == pytest.approx(t22.digital_j(1000, 10) / 2)


@pytest.mark.parametrize("model, seq, message", [
    ("llama", 8, "model must be one of"),
    ("minilm", 0, "seq must be in [1, 512] for minilm, not 0"),
    ("gpt2", 2000, "seq must be in [1, 1024] for gpt2, not 2000"),
])
def test_model_config_refuses(model, seq, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        model_config(load_config("minilm"), model, seq)


def test_adc_static_power_adds_power_times_the_conversion_time():
    base = CostConfig(node_nm=14.0, vdd=0.85)
    static = CostConfig(node_nm=14.0, vdd=0.85, adc_static_w=2e-4)
    for rate in (1e6, 7.7e6, 1e8):
        extra = adc_energy_j(8, rate, static) - adc_energy_j(8, rate, base)
        assert extra == pytest.approx(2e-4 / rate)


def test_ibm_adc_power_comes_from_hermes_core_not_the_64_core_chip():
    from cimforge.golden.validation import CASES, HERMES_CORE_W, HERMES_MVM_S, hermes_adc_static_w

    # the sister chip's measured power is the model's events plus its 256 ADCs' power
    w = hermes_adc_static_w(0.8)
    ibm = [c for c in CASES if c.chip.startswith("IBM")]
    events = sum(dataclasses.replace(
        ibm[0], cost=dataclasses.replace(ibm[0].cost, vdd=0.8, adc_static_w=0.0)
    ).components().values())
    assert events + 256 * w * HERMES_MVM_S == pytest.approx(HERMES_CORE_W * HERMES_MVM_S)
    assert hermes_adc_static_w(0.85) == pytest.approx(w * 0.85 / 0.8)
    # the 4-phase mode integrates four windows: its ADC energy is four times the 1-phase's
    one, four = (c.components()["ADC"] for c in ibm)
    assert [c.figure.split(", ")[-1] for c in ibm] == ["1-phase", "4-phase"]
    assert four == pytest.approx(4 * one, rel=0.01)
