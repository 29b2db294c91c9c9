"""Quantised MiniLM: int8 linear layers, and the analog crossbar model standing in for them."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cimforge.config import load_config
from cimforge.golden.quant import CimLinear, IntLinear, quantize, quantize_weight

DATA = Path(__file__).resolve().parents[1] / "data"


def test_quantize_per_channel():
    w = np.array([[0.5, -2.0, 0.0], [-1.0, 1.0, 0.0]])
    q, s = quantize(w, 8, 0, "half_even")
    assert s.shape == (1, 3)
    assert np.allclose(s[0], [1.0 / 127, 2.0 / 127, 1.0])  # an all-zero channel gets scale 1
    assert q.tolist() == [[64, -127, 0], [-127, 64, 0]]  # 63.5 -> 64 (ties to even)
    assert np.abs(q * s - w).max() <= s.max() / 2


def test_outlier_split():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((200, 3)) * 0.01
    w[7, 1] = 5.0  # one weight far outside its channel
    plain = quantize_weight(w, 8, "half_even")
    assert plain.n_outliers == 0 and np.abs(plain.q[:, 1]).max() == 127
    assert (plain.q[:, 1] == 0).mean() > 0.9  # the outlier's scale flattens the rest
    split = quantize_weight(w, 8, "half_even", outlier_sigma=8.0)
    assert split.n_outliers == 1 and split.outliers[7, 1] != 0 and split.q[7, 1] == 0
    assert split.scale[0, 1] < plain.scale[0, 1] / 100  # set by the weights that remain
    back = (split.q + split.outliers) * split.scale
    assert np.abs(back - w).max() <= split.scale.max() / 2 + 1e-12
    # the other channels are untouched
    assert (split.q[:, [0, 2]] == plain.q[:, [0, 2]]).all()


def test_int_mode_is_close_to_float(encoder, sentences):
    ref = np.load(DATA / "minilm_reference.npz")["embeddings"]
    emb = encoder.with_linear(IntLinear(load_config("minilm"))).embed(sentences)
    cos = (emb * ref).sum(axis=1)
    assert cos.mean() >= 0.995 and cos.min() >= 0.99, (cos.mean(), cos.min())


def test_ideal_cim_equals_int_exactly(encoder, sentences):
    # every device effect off and a 12-bit ADC that resolves every 256-row read of 4-bit cells
    base = load_config("minilm")
    cfg = dataclasses.replace(
        base,
        tile=dataclasses.replace(base.tile, bits_per_cell=4, rows_per_read=256),
        adc=dataclasses.replace(base.adc, bits=12),
    )
    few = sentences[:3]
    for c in (cfg, dataclasses.replace(
            cfg, numerics=dataclasses.replace(cfg.numerics, outlier_sigma=8.0))):
        cim = encoder.with_linear(CimLinear(c)).embed(few)
        ints = encoder.with_linear(IntLinear(c)).embed(few)
        assert (cim == ints).all()


def cosines(encoder, sentences, cfg):
    ref = np.load(DATA / "minilm_reference.npz")["embeddings"]
    return (encoder.with_linear(CimLinear(cfg)).embed(sentences) * ref).sum(axis=1)


def test_8bit_adc_alone_keeps_minilm(encoder, sentences):
    # every device effect off, 256 rows per read, 8-bit SAR ADC with calibrated ranges
    cos = cosines(encoder, sentences, load_config("minilm-adc8"))
    assert cos.mean() >= 0.99, (cos.mean(), cos.min())


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.full),
                                  pytest.param(2, marks=pytest.mark.full)])
def test_pcm_after_one_hour_keeps_minilm(encoder, sentences, seed):
    # the PCM model with its published constants, 1 h after programming, drift-compensated
    cfg = dataclasses.replace(load_config("minilm-pcm"), seed=seed)
    cos = cosines(encoder, sentences, cfg)
    assert cos.mean() >= 0.95, (seed, cos.mean(), cos.min())
