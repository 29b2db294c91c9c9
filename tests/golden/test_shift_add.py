"""cimforge.golden.shift_add: the specification itself, checked against plain integer arithmetic."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cimforge.config import load_config
from cimforge.golden.shift_add import (
    Beats,
    ShiftAddSpec,
    dot_product_beats,
    input_digits_of,
    saturate,
    shift_add,
    wrap,
)


def spec_(**kw):
    args = dict(lanes=4, adc_bits=8, input_bits=8, dac_bits=1, weight_slices=4,
                bits_per_cell=2, acc_bits=32, saturate=True)
    args.update(kw)
    return ShiftAddSpec(**args)


def reference(spec, beats):
    """Beat-by-beat recurrence with Python ints: the definition, unvectorised."""
    out, acc = [], [0] * spec.lanes
    lo, hi = spec.acc_min, spec.acc_max
    for i in range(len(beats)):
        # digit d weighs 2^(d dac_bits); the last, the sign bit alone, 2^(input_bits - 1)
        d = int(beats.digit[i])
        d_shift = spec.input_bits - 1 if d == spec.input_digits - 1 else d * spec.dac_bits
        shift = d_shift + int(beats.slice[i]) * spec.bits_per_cell
        for lane in range(spec.lanes):
            t = int(beats.codes[i, lane]) << shift
            v = acc[lane] + (-t if beats.negative[i] else t)
            if spec.saturate:
                v = min(max(v, lo), hi)
            else:
                v = (v - lo) % (1 << spec.acc_bits) + lo
            acc[lane] = v
        if beats.last[i]:
            out.append(acc)
            acc = [0] * spec.lanes
    return out


def test_from_config_tiny():
    cfg = load_config("tiny")
    s = ShiftAddSpec.from_config(cfg)
    assert (s.lanes, s.adc_bits, s.max_shift, s.acc_bits) == (8, 6, 13, 32)
    assert s.term_bits == cfg.term_bits


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"lanes": 0}, r"lanes must be a positive integer, not 0"),
        ({"adc_bits": 17}, r"adc_bits must be at most 16, not 17"),
        ({"acc_bits": 20}, r"acc_bits must be at least 22 to hold one signed term"),
        ({"saturate": 1}, r"saturate must be a bool, not 1"),
    ],
)
def test_spec_errors(kw, message):
    with pytest.raises(ValueError, match=message):
        spec_(**kw)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    bpc=st.sampled_from([1, 2, 4]),
    in_bits=st.sampled_from([4, 8]),
    k=st.integers(1, 70),
    lanes=st.integers(1, 5),
    rows_per_read=st.sampled_from([1, 4, 16, 32]),
    dac=st.sampled_from([1, 2, 3]),
)
def test_ideal_reads_give_exact_matmul(seed, bpc, in_bits, k, lanes, rows_per_read, dac):
    rng = np.random.default_rng(seed)
    largest = rows_per_read * ((1 << bpc) - 1) * ((1 << dac) - 1)
    spec = spec_(lanes=lanes, input_bits=in_bits, weight_slices=8 // bpc, bits_per_cell=bpc,
                 adc_bits=max(1, largest.bit_length()), dac_bits=dac)
    x = rng.integers(-(1 << (in_bits - 1)), 1 << (in_bits - 1), (3, k))
    w = rng.integers(-128, 128, (k, lanes))
    x[0] = -(1 << (in_bits - 1))
    w[:, 0] = -128
    beats = dot_product_beats(spec, x, w, rows_per_read)
    assert (shift_add(spec, beats) == x @ w).all(), f"seed {seed}"


@pytest.mark.parametrize("bits, dac, digits", [(8, 1, 8), (8, 2, 5), (8, 3, 4), (8, 4, 3),
                                               (4, 2, 3), (2, 4, 2)])
def test_input_digits_rebuild_the_input(bits, dac, digits):
    x = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))[None, :]
    d = input_digits_of(x, bits, dac)
    spec = spec_(input_bits=bits, dac_bits=dac)
    assert d.shape == (1, digits, x.shape[1]) == (1, spec.input_digits, x.shape[1])
    sign = np.where(np.arange(digits) == digits - 1, -1, 1)
    assert (np.einsum("ndk,d->nk", d, sign << spec.digit_shifts()) == x).all()
    assert d.min() == 0 and d[:, :-1].max() < 1 << dac and d[:, -1].max() == 1


def biased_beats(rng, n, negative_rate, last_rate):
    """Random beats for a 3-lane, 6-bit, 4-digit, 2-slice spec; a sign bias makes the running
    sums drift, so narrow accumulators overflow."""
    last = (rng.random(n) < last_rate).astype(np.int64)
    last[-1] = 1
    return Beats(rng.integers(0, 64, (n, 3)), rng.integers(0, 4, n), rng.integers(0, 2, n),
                 (rng.random(n) < negative_rate).astype(np.int64), last)


def exact(spec, beats):
    """Segment sums without any limiting."""
    return reference(dataclasses.replace(spec, acc_bits=62), beats)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), sat=st.booleans(), acc_bits=st.integers(12, 24),
       negative_rate=st.floats(0, 1))
def test_vectorised_equals_recurrence(seed, sat, acc_bits, negative_rate):
    rng = np.random.default_rng(seed)
    spec = spec_(lanes=3, adc_bits=6, input_bits=4, weight_slices=2, acc_bits=acc_bits,
                 saturate=sat)
    beats = biased_beats(rng, 400, negative_rate, 0.05)
    assert shift_add(spec, beats).tolist() == reference(spec, beats), f"seed {seed}"


@pytest.mark.parametrize("sat", [True, False])
def test_limiting_path_is_exercised(sat):
    """The per-beat recurrence (not just the cumulative sum) decides these results."""
    rng = np.random.default_rng(5)
    spec = spec_(lanes=3, adc_bits=6, input_bits=4, weight_slices=2, acc_bits=12, saturate=sat)
    beats = biased_beats(rng, 400, 0.2, 0.05)
    got = shift_add(spec, beats).tolist()
    assert got == reference(spec, beats)
    assert got != exact(spec, beats)


def test_beats_outside_port_rejected():
    spec = spec_(lanes=1)
    one = np.ones(1, dtype=np.int64)
    with pytest.raises(ValueError, match=r"codes must lie in \[0, 255\]"):
        shift_add(spec, Beats(np.array([[256]]), 0 * one, 0 * one, 0 * one, one))
    with pytest.raises(ValueError, match=r"digit must lie in \[0, 7\]"):
        shift_add(spec, Beats(np.array([[1]]), 8 * one, 0 * one, 0 * one, one))


def test_ideal_reads_refuse_a_too_narrow_adc():
    spec = spec_(lanes=1, adc_bits=5)
    with pytest.raises(ValueError, match=r"reaches 48, beyond the 5-bit ADC's 31"):
        dot_product_beats(spec, np.zeros((1, 16), int), np.zeros((16, 1), int), 16)


def test_wrap_and_saturate():
    x = np.array([-129, -128, 127, 128, 300])
    assert wrap(x, 8).tolist() == [127, -128, 127, -128, 44]
    assert saturate(x, 8).tolist() == [-128, -128, 127, 127, 127]
