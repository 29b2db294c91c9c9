"""The golden accelerator and its mapping: placement, refusals, equality with the integer
model on ideal tiles, accuracy on MiniLM."""

import json

import numpy as np
import pytest

from cimforge.cli import main
from cimforge.config import load_config
from cimforge.data import reference_sentences
from cimforge.golden.accelerator import AcceleratorModel, KvCapacityError
from cimforge.golden.float_model import Encoder, EncoderWeights
from cimforge.golden.int_model import IntOnlyEncoder, calibrate
from cimforge.golden.mapping import MATRICES, MappingError, map_model

TINY = load_config("tiny")


def test_tiny_placement():
    m = map_model(TINY)
    cpt = TINY.channels_per_tile  # 32 columns / (2 x 4 slices) = 4 channels per crossbar
    d, f = TINY.model.d_model, TINY.model.d_ff
    shapes = {u.matrix: (u.inputs, u.channels, u.row_tiles, u.col_tiles) for u in m.units}
    assert shapes == {"q": (d, d, 1, d // cpt), "k": (d, d, 1, d // cpt),
                      "v": (d, d, 1, d // cpt), "o": (d, d, 1, d // cpt),
                      "ff1": (d, f, 1, f // cpt), "ff2": (f, d, 2, d // cpt)}
    assert m.crossbars == 4 * 8 + 16 + 16
    assert m.cells_used == m.cells  # every cell of tiny's crossbars holds a weight slice
    assert [u.index for u in m.units] == list(range(len(m.units)))
    assert len(m.macros) == 2 * TINY.model.n_heads and m.kv_capacity == TINY.dcim.rows


def test_wide_matrices_split_into_units_side_by_side():
    cfg = TINY.with_sections(accelerator={"max_unit_tiles": 3})
    m = map_model(cfg)
    ff1 = m.units_of(0, "ff1")  # 16 column tiles in runs of at most 3: 6 units, 3 3 3 3 2 2
    assert [u.col_tiles for u in ff1] == [3, 3, 3, 3, 2, 2]
    assert [u.first for u in ff1] == [0, 12, 24, 36, 48, 56]
    assert sum(u.channels for u in ff1) == TINY.model.d_ff
    with pytest.raises(MappingError, match=r"ff2 \(64 x 32\) needs 2 row tiles"):
        map_model(TINY.with_sections(accelerator={"max_unit_tiles": 1}))


@pytest.mark.parametrize("sections, message", [
    ({"accelerator": {"crossbars": 63}},
     "tiny needs 64 crossbars of 32x32 (6 tile units over 1 layers), and "
     "accelerator.crossbars declares 63: declare at least 64"),
    ({"accelerator": {"dcim_macros": 3}},
     "need 4 digital-CIM macros, and accelerator.dcim_macros declares 3"),
    ({"dcim": {"cols": 8}}, "d_head = 16 elements, and a digital-CIM macro row holds "
                            "dcim.cols = 8"),
    ({"dcim": {"rows": 4}}, "model.seq_len = 8 tokens exceed the KV capacity, dcim.rows = 4"),
])
def test_refusals(sections, message):
    with pytest.raises(MappingError) as e:
        map_model(TINY.with_sections(**sections))
    assert message in str(e.value)


def test_map_command(capsys, tmp_path):
    assert main(["map", "--config", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "| 0 | ff2 | 64 x 32 | 1 | 2x8 | 16 |" in out
    assert "6 tile units, 64 crossbars" in out
    assert main(["map", "--config", "minilm", "--json"]) == 0
    placed = json.loads(capsys.readouterr().out)
    assert placed["crossbars"] == 1584 and len(placed["units"]) == 6 * 8
    bad = tmp_path / "bad.toml"
    bad.write_text('base = "tiny"\n[accelerator]\ncrossbars = 10\n')
    assert main(["map", "--config", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "declare at least 64" in captured.err


def _tiny_model(seed=2):
    enc = Encoder(model=TINY.model, weights=EncoderWeights.random(TINY.model, seed))
    rng = np.random.default_rng(seed)
    lengths = (8, 3, TINY.dcim.rows, 8)  # up to the KV capacity
    seqs = [rng.integers(0, TINY.model.vocab_size, size=n).tolist() for n in lengths]
    return enc, seqs, calibrate(enc, seqs)


@pytest.mark.parametrize("max_unit_tiles", [16, 3])
def test_ideal_tiles_equal_the_integer_model(max_unit_tiles):
    # ADCs that resolve every read and no device effect: the units' accumulators are the exact
    # products, so every code equals the integer model's (with matrices split over units too)
    enc, seqs, ranges = _tiny_model()
    cfg = TINY.with_sections(accelerator={"max_unit_tiles": max_unit_tiles})
    accel, ints = AcceleratorModel(enc, cfg, ranges), IntOnlyEncoder(enc, cfg, ranges)
    for s in seqs:
        ones = np.ones((1, len(s)), dtype=bool)
        h = ints.embedding_codes(np.array([s]), ones)
        got, want = accel.run(h), ints.codes_from_embeddings(h, ones, ones)
        assert (got == want).all()
        assert np.abs(want).max() > 1 << 12  # the codes use their range


def test_device_effects_reach_the_codes():
    enc, seqs, ranges = _tiny_model()
    noisy = TINY.with_sections(analog={"prog_noise": True})
    h = IntOnlyEncoder(enc, TINY, ranges).embedding_codes(np.array([seqs[0]]),
                                                          np.ones((1, 8), dtype=bool))
    ideal = AcceleratorModel(enc, TINY, ranges).run(h)
    assert (AcceleratorModel(enc, noisy, ranges).run(h) != ideal).any()


def test_kv_capacity():
    enc, _, ranges = _tiny_model()
    accel = AcceleratorModel(enc, TINY, ranges)
    cap = TINY.dcim.rows
    h = np.zeros((cap + 1, TINY.model.d_model), dtype=np.int64)
    with pytest.raises(KvCapacityError,
                       match=f"{cap + 1} tokens exceeds the KV capacity of {cap}"):
        accel.run(h)
    assert accel.run(h[:-1]).shape == (cap, TINY.model.d_model)


def test_linear_layers_sit_on_their_units():
    enc, _, ranges = _tiny_model()
    accel = AcceleratorModel(enc, TINY, ranges)
    units = [u for b in accel.blocks for u in (getattr(b, n).units for n in MATRICES)]
    assert [u for us in units for u in us] == list(accel.mapping.units)


@pytest.mark.full
def test_minilm_pcm_accuracy(encoder):
    # every PCM effect at one hour, 8-bit ADCs, no outlier side path: target 0.95
    sentences = reference_sentences()
    ranges = calibrate(encoder, sentences)
    accel = AcceleratorModel(encoder, load_config("minilm-pcm"), ranges)
    cos = np.einsum("nd,nd->n", accel.embed(sentences), encoder.embed(sentences))
    assert cos.mean() >= 0.95, cos.mean()
