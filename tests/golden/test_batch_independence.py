"""A sequence's result is a function of the sequence, its config and its seed alone: never of
the batch it is computed in or its padding (the hardware sees one sequence at a time)."""

import numpy as np
import pytest

from cimforge.config import load_config
from cimforge.golden.accelerator import AcceleratorModel
from cimforge.golden.float_model import Encoder, EncoderWeights
from cimforge.golden.int_model import IntOnlyEncoder, calibrate
from cimforge.golden.quant import CimLinear, IntLinear

# every noisy effect, per-read noise included (the PCM model has none of its own)
NOISY = {"analog": {"prog_noise": True, "read_noise": True, "drift": True,
                    "t_inference": 3600.0, "drift_compensation": True},
         "device": {"pcm_model": False, "read_sigma": 0.02, "prog_sigma": 0.02}}


def _alone_and_batched(embed, sentences):
    """Embeddings of ``sentences`` at batch sizes 1, 2, 4 and all, and each one alone: all
    equal to the bit."""
    one = embed(sentences, 1)
    for size in (2, 4, len(sentences)):
        batched = embed(sentences, size)
        bad = np.nonzero((batched != one).any(axis=1))[0]
        assert not len(bad), f"batch size {size} changes sentences {bad.tolist()}"
    for i in (0, len(sentences) - 1):
        assert (embed([sentences[i]], 1)[0] == one[i]).all()


@pytest.fixture(scope="module")
def few(sentences):
    # lengths differ, so every batch but the first pads
    return sorted(sentences, key=len)[::5][:6]


@pytest.mark.parametrize("mode", ["float", "int", "int-only", "cim", "accel"])
def test_minilm_embeddings_do_not_depend_on_the_batch(encoder, few, sentences, mode):
    cfg = load_config("minilm")
    if mode == "float":
        model = encoder
    elif mode == "int":
        model = encoder.with_linear(IntLinear(cfg))
    elif mode == "cim":
        # every PCM effect (per-read noise is in the tiny test below: on MiniLM's 85 M cells
        # it costs minutes)
        model = encoder.with_linear(CimLinear(load_config("minilm-pcm")))
    else:
        ranges = calibrate(encoder, sentences)
        model = (IntOnlyEncoder if mode == "int-only" else AcceleratorModel)(encoder, cfg, ranges)
    _alone_and_batched(lambda s, b: model.embed(s, batch_size=b), few)


def test_calibration_does_not_depend_on_the_batch(encoder, sentences):
    assert calibrate(encoder, sentences, batch_size=1) == calibrate(encoder, sentences,
                                                                      batch_size=7)


def test_noisy_accelerator_codes_do_not_depend_on_padding():
    # the tiny model on noisy tiles: a sequence padded inside a batch gives the codes it gives
    # alone, and the noise is really there
    cfg = load_config("tiny")
    enc = Encoder(model=cfg.model, weights=EncoderWeights.random(cfg.model, 3))
    rng = np.random.default_rng(5)
    seqs = [rng.integers(0, cfg.model.vocab_size, size=n).tolist() for n in (5, 8, 3)]
    ranges = calibrate(enc, seqs)
    accel = AcceleratorModel(enc, cfg.with_sections(**NOISY), ranges)
    t = max(map(len, seqs))
    ids = np.zeros((len(seqs), t), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, s in enumerate(seqs):
        ids[i, :len(s)], mask[i, :len(s)] = s, 1
    batched = accel.encode_codes(ids, mask, mask.astype(bool))
    start = 0
    for s in seqs:
        alone = accel.run(accel.embedding_codes(np.array([s]), np.ones((1, len(s)), bool)))
        assert (batched[start:start + len(s)] == alone).all()
        start += len(s)
    ideal = AcceleratorModel(enc, cfg, ranges)
    assert (ideal.encode_codes(ids, mask, mask.astype(bool)) != batched).any()
