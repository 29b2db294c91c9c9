"""The integer and accelerator decoders: decoding token by token equals the full forward to
the bit, the cache refuses what it cannot hold, the ideal accelerator equals the integer model,
and both stay close to the float decoder."""

import json

import numpy as np
import pytest

from cimforge.cli import main
from cimforge.config import load_config
from cimforge.golden.accelerator import AcceleratorDecoder
from cimforge.golden.float_model import Decoder, DecoderWeights
from cimforge.golden.int_decoder import (
    CacheFullError,
    IntOnlyDecoder,
    calibrate_decoder,
    calibration_prompts,
)

CFG = load_config("tiny-decoder")
# every noisy effect, per-read noise included (the PCM model has none of its own)
NOISY = CFG.with_sections(
    analog={"prog_noise": True, "read_noise": True, "drift": True, "t_inference": 3600.0,
            "drift_compensation": True},
    device={"pcm_model": False, "read_sigma": 0.02, "prog_sigma": 0.02})


@pytest.fixture(scope="module")
def decoder():
    return Decoder(DecoderWeights.random(CFG.model, seed=CFG.seed))


@pytest.fixture(scope="module")
def ranges(decoder):
    return calibrate_decoder(decoder, calibration_prompts(decoder, 8, seed=0))


def _ids(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, CFG.model.vocab_size, n)


def _in_steps(model, ids, splits):
    """Codes of ``ids`` run as chunks cut at ``splits`` (prefill, then the rest)."""
    cache = model.new_cache()
    out, start = [], 0
    for end in [*splits, len(ids)]:
        out.append(model.forward_codes(model.embedding_codes(ids[start:end], start), cache))
        start = end
    assert cache.length == len(ids)
    return np.concatenate(out)


@pytest.mark.parametrize("kind, cfg", [("int", CFG), ("accel", CFG), ("accel", NOISY)],
                         ids=["int-only", "accel-ideal", "accel-noisy"])
def test_token_by_token_equals_the_full_forward(decoder, ranges, kind, cfg):
    model = (IntOnlyDecoder if kind == "int" else AcceleratorDecoder)(decoder, cfg, ranges)
    ids = _ids(model.capacity, seed=3)
    full = _in_steps(model, ids, [])
    n = len(ids)
    for splits in ([4, *range(5, n)], [1, 2, 3], [n - 1]):  # prefill 4 then decode; ...
        assert (_in_steps(model, ids, splits) == full).all(), splits


def test_noise_changes_the_codes(decoder, ranges):
    # the noisy case above is not trivially the ideal one
    ids = _ids(10, seed=4)
    ideal, noisy = (_in_steps(AcceleratorDecoder(decoder, c, ranges), ids, [])
                    for c in (CFG, NOISY))
    assert (ideal != noisy).any()


def test_ideal_accelerator_equals_the_integer_model(decoder, ranges):
    ids = _ids(CFG.model.max_seq, seed=5)
    a = _in_steps(AcceleratorDecoder(decoder, CFG, ranges), ids, [6])
    assert (a == _in_steps(IntOnlyDecoder(decoder, CFG, ranges), ids, [6])).all()


def test_a_full_cache_refuses_and_keeps_its_contents(decoder, ranges):
    model = AcceleratorDecoder(decoder, CFG, ranges)
    assert model.capacity == CFG.dcim.rows == 16
    cache = model.new_cache()
    ids = _ids(model.capacity, seed=6)
    model.forward_codes(model.embedding_codes(ids[:12]), cache)
    k = cache.k.copy()
    with pytest.raises(CacheFullError, match="12 cached \\+ 5 new tokens exceed the KV "
                                             "cache's capacity of 16 tokens"):
        model.forward_codes(np.zeros((5, CFG.model.d_model), np.int64), cache)
    assert cache.length == 12 and (cache.k == k).all()
    model.forward_codes(model.embedding_codes(ids[12:], 12), cache)  # what fits still runs
    assert cache.length == 16


def test_close_to_the_float_decoder(decoder, ranges):
    ids = _ids(CFG.model.max_seq, seed=7)
    ref = decoder.forward(ids[None])[0]
    got = IntOnlyDecoder(decoder, CFG, ranges).forward(ids)
    cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() > 0.999, cos


def test_decode_command(capsys):
    assert main(["decode", "--sequences", "2", "--prompt", "6", "--steps", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for mode in ("int", "accel"):
        r = report["modes"][mode]
        assert r["decode_steps"] == 8 and r["cosine_min"] > 0.999, r


@pytest.mark.parametrize("argv, message", [
    (["--config", "tiny"], "--config tiny is an encoder model: decode needs model.kind = "
                           "'decoder'"),
    (["--prompt", "10", "--steps", "7"], "--prompt 10 and 7 decode steps need 17 cache "
                                         "positions; the cache holds 16"),
    (["--sequences", "0"], "--sequences must be at least 1, not 0"),
])
def test_decode_command_refuses(capsys, argv, message):
    assert main(["decode", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and not captured.out

