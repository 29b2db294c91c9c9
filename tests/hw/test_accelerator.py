"""The accelerator core in Amaranth's simulator: a short sequence through every engine of
``tiny``'s layer, bit-exact against the golden accelerator, no word-line drive off golden's."""

import numpy as np
import pytest

from cimforge.config import load_config
from cimforge.golden.accel_timing import AcceleratorTiming
from cimforge.golden.accelerator import AcceleratorModel
from cimforge.golden.float_model import Encoder, EncoderWeights
from cimforge.golden.int_model import calibrate
from cimforge.hw.accelerator_sim import AcceleratorSim
from cimforge.verif.accel_case import AccelCase, pack_beats, unpack_beats
from cimforge.verif.amaranth_accel import run_accel

TINY = load_config("tiny")


@pytest.fixture(scope="module")
def model():
    enc = Encoder(model=TINY.model, weights=EncoderWeights.random(TINY.model, 2))
    rng = np.random.default_rng(2)
    lengths = (8, 3, TINY.dcim.rows, 8)  # up to the KV capacity
    seqs = [rng.integers(0, TINY.model.vocab_size, size=n).tolist() for n in lengths]
    return AcceleratorModel(enc, TINY, calibrate(enc, seqs))


def test_beats_round_trip():
    rows = np.array([[1, -2, 3], [-32768, 32767, 0]])
    beats = pack_beats(rows, 16, 2)
    assert [last for _, last in beats] == [0, 0, 0, 1]  # 2 beats a row, the second padded
    assert beats[0][0] == 1 | (0xFFFE << 16) and beats[1][0] == 3
    assert (unpack_beats([w for w, _ in beats], 3, 16, 2) == rows).all()


@pytest.mark.full  # 80 s in Amaranth's simulator; the cocotb bench runs the same by default
def test_sequence_through_the_layer(model):
    rng = np.random.default_rng(11)
    ids = rng.integers(0, TINY.model.vocab_size, size=(1, 3))
    h = model.embedding_codes(ids, np.ones_like(ids, dtype=bool))
    top = AcceleratorSim(TINY)
    case = AccelCase(TINY, model, top.regmap, h, top.core.per_beat)
    run = run_accel(case, top, max_cycles=20_000)
    assert run.errors == []
    got = unpack_beats(run.out, TINY.model.d_model, 16, top.core.per_beat)
    assert (got == case.expected).all()
    assert run.lasts == [0] * (len(run.lasts) - 1) + [1]
    # every input beat taken and every output beat offered in the cycle the model predicts
    predicted = AcceleratorTiming(TINY).schedule(len(h))
    assert run.accepted == predicted.accepted
    assert run.taken == predicted.taken
