"""Workload profile against the survey's Table I and against direct counting."""

import json

import pytest

from cimforge.config import KNOWN_MODELS, ModelConfig
from cimforge.golden.workload import linear_weights_per_layer, profile

KEYS = {
    "model",
    "kind",
    "seq_len",
    "n_layers",
    "d_model",
    "n_heads",
    "d_ff",
    "weight_count",
    "fc_macs",
    "attention_macs",
    "total_macs",
    "static_mvm_fraction",
    "kv_cache_bytes",
    "softmax_exps",
    "gelu_evals",
    "layernorm_rows",
}


# -- Table I of the survey ------------------------------------------------------------------


def test_bert_base_table_i():
    p = profile(KNOWN_MODELS["bert-base"], 128)
    assert round(p["weight_count"] / 1e6, 1) == 84.9  # "~85M"
    assert 0.965 <= p["static_mvm_fraction"] <= 0.975  # FC : attention = 97 : 3


def test_bert_large_table_i():
    p = profile(KNOWN_MODELS["bert-large"], 128)
    assert round(p["weight_count"] / 1e6) == 302  # "~302M"
    assert round(p["static_mvm_fraction"], 2) == 0.98  # 98 : 2


def test_gpt3_table_i():
    p = profile(KNOWN_MODELS["gpt3"], 2048)
    assert round(p["weight_count"] / 1e9) == 174  # "~174B"
    assert p["static_mvm_fraction"] > 0.95


# -- definitions ----------------------------------------------------------------------------


def test_keys_and_json():
    p = profile(KNOWN_MODELS["minilm"], 16)
    assert set(p) == KEYS
    assert json.loads(json.dumps(p)) == p
    assert p["model"] == "minilm" and p["kind"] == "encoder" and p["seq_len"] == 16


def _count_attention_pairs(n: int, causal: bool) -> int:
    return sum(1 for q in range(n) for k in range(n) if not causal or k <= q)


@pytest.mark.parametrize("kind", ["encoder", "decoder"])
def test_counts_on_a_small_model(kind):
    m = ModelConfig("small", kind, 8, 2, 24, 3, vocab_size=100, max_seq=32, seq_len=7)
    n = 7
    p = profile(m, n)
    pairs = _count_attention_pairs(n, causal=kind == "decoder")
    assert linear_weights_per_layer(m) == 8 * 8 * 4 + 8 * 24 * 2
    assert p["weight_count"] == 3 * (4 * 64 + 2 * 8 * 24)
    assert p["fc_macs"] == n * p["weight_count"]
    assert p["attention_macs"] == 3 * 2 * pairs * 8
    assert p["total_macs"] == p["fc_macs"] + p["attention_macs"]
    assert p["static_mvm_fraction"] == p["fc_macs"] / p["total_macs"]
    assert p["kv_cache_bytes"] == 2 * 3 * n * 8
    assert p["softmax_exps"] == 3 * 2 * pairs
    assert p["gelu_evals"] == 3 * n * 24
    assert p["layernorm_rows"] == (2 * 3 + 1) * n


def test_decoder_attention_is_causal_half():
    enc = profile(KNOWN_MODELS["bert-base"], 100)
    dec = profile(ModelConfig("x", "decoder", 768, 12, 3072, 12, 30522, 512, 128), 100)
    assert dec["weight_count"] == enc["weight_count"]
    assert dec["attention_macs"] * 2 == enc["attention_macs"] * 101 // 100


def test_attention_share_grows_with_sequence():
    fractions = [profile(KNOWN_MODELS["gpt2"], n)["static_mvm_fraction"] for n in (1, 64, 1024)]
    assert fractions[0] > fractions[1] > fractions[2]


@pytest.mark.parametrize(
    ("seq_len", "message"),
    [
        (0, r"seq_len 0 is out of range for bert-base: must be in \[1, 512\] \(max_seq\)"),
        (513, r"seq_len 513 is out of range for bert-base: must be in \[1, 512\]"),
        (1.5, r"seq_len must be an integer, not 1.5"),
        (True, r"seq_len must be an integer, not True"),
    ],
)
def test_bad_seq_len(seq_len, message):
    with pytest.raises(ValueError, match=message):
        profile(KNOWN_MODELS["bert-base"], seq_len)
