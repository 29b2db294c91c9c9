"""The integer-only MiniLM: every operation through the golden integer units."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from cimforge.config import load_config
from cimforge.golden.float_model import PROBE_POINTS
from cimforge.golden.int_model import IntOnlyEncoder, calibrate

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(scope="module")
def ranges(encoder, sentences):
    return calibrate(encoder, sentences)


@pytest.fixture(scope="module")
def reference():
    return np.load(DATA / "minilm_reference.npz")["embeddings"]


def test_calibration_sees_every_point(encoder, ranges):
    points = [p for p in PROBE_POINTS if p not in ("emb", "x", "qkv")] + ["q", "k", "v"]
    want = {(-1, "emb"), (-1, "x")} | {(i, p) for i in range(encoder.model.n_layers)
                                       for p in points}
    assert set(ranges) == want
    assert all(v > 0 for v in ranges.values())


def _cosines(enc, sentences, reference):
    return np.einsum("nd,nd->n", enc.embed(sentences), reference)


def test_int_only_minilm_keeps_cosine(encoder, sentences, ranges, reference):
    cos = _cosines(IntOnlyEncoder(encoder, load_config("minilm"), ranges), sentences, reference)
    assert cos.mean() >= 0.99 and cos.min() >= 0.98, (cos.mean(), cos.min())


def test_per_token_scaling_is_what_keeps_it(encoder, sentences, ranges, reference):
    cfg = load_config("minilm")
    static = dataclasses.replace(cfg, numerics=dataclasses.replace(cfg.numerics,
                                                                    act_scale="per_tensor"))
    per_tensor = _cosines(IntOnlyEncoder(encoder, static, ranges), sentences, reference)
    per_token = _cosines(IntOnlyEncoder(encoder, cfg, ranges), sentences, reference)
    assert per_tensor.mean() < per_token.mean() - 0.01


@pytest.mark.parametrize("change", [{"exp_method": "poly"},
                                    {"gelu_method": "poly", "gelu_in_bits": 16}])
def test_other_unit_methods_keep_cosine(encoder, sentences, ranges, reference, change):
    cfg = load_config("minilm")
    cfg = dataclasses.replace(cfg, nonlinear=dataclasses.replace(cfg.nonlinear, **change))
    cos = _cosines(IntOnlyEncoder(encoder, cfg, ranges), sentences, reference)
    assert cos.mean() >= 0.99, (change, cos.mean())


def test_hidden_states_are_integer_codes(encoder, ranges):
    enc = IntOnlyEncoder(encoder, load_config("minilm"), ranges)
    ids, mask = enc.tokenize(["integer only", "a second, longer sentence to pad the first"])
    codes = enc.encode_codes(ids, mask, np.ones(ids.shape, dtype=bool))
    assert codes.dtype == np.int64
    assert np.abs(codes).max() <= (1 << (enc.x_bits - 1)) - 1
    scaled = enc.forward(ids, mask).reshape(codes.shape)
    assert np.allclose(scaled, codes * enc.x_steps[-1], rtol=1e-6)


def test_calibration_holds_on_sentences_it_did_not_see(encoder, sentences, reference):
    half = len(sentences) // 2
    ranges = calibrate(encoder, sentences[:half])
    emb = IntOnlyEncoder(encoder, load_config("minilm"), ranges).embed(sentences[half:])
    cos = np.einsum("nd,nd->n", emb, reference[half:])
    assert cos.mean() >= 0.99, cos.mean()
