"""Integer non-linear units against float, each with its stated bound (docs/nonlinear-units.md)."""

import dataclasses
import math

import numpy as np
import pytest

from cimforge.golden.float_model import gelu_erf
from cimforge.golden.float_model import layer_norm as float_layer_norm
from cimforge.golden.nonlinear import (
    NonlinearSpec,
    causal_mask,
    exp2_frac,
    gelu_lut,
    gelu_poly,
    gelu_poly_params,
    gelu_table,
    isqrt,
    layer_norm,
    layer_norm_params,
    multiplier,
    recip_seed_table,
    reciprocal,
    relu,
    requantize,
    residual_add,
    shared_shift_multipliers,
    softmax,
    softmax_multiplier,
    token_quantize,
)

SPEC = NonlinearSpec()
SEED = 20261125


def _float_probs(q, step, mask=None):
    x = (q * step).astype(np.float64)
    if mask is not None:
        x = np.where(mask, x, -np.inf)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# -- multipliers and the requantiser ----------------------------------------------------------


@pytest.mark.parametrize("scale", [1e-6, 0.0123, 0.5, 0.99999, 1.0, 3.7, 1000.0])
def test_multiplier_is_close_and_uses_every_bit(scale):
    m = multiplier(scale, 16)
    assert 1 << 15 <= m.mult < 1 << 16
    assert abs(m.value() / scale - 1) <= 2.0**-16


def test_multiplier_refuses_what_it_cannot_hold():
    for bad in (0.0, -1.0, float("nan"), 2.0**17):
        with pytest.raises(ValueError):
            multiplier(bad, 16)


def test_shared_shift_keeps_each_channel_close():
    scales = np.array([1e-3, 3e-3, 7.9e-3])
    m = shared_shift_multipliers(scales, 16)
    assert m.mult.max() < 1 << 16 and m.mult.max() >= 1 << 15
    assert np.all(np.abs(m.value() - scales) <= 2.0 ** -(m.shift + 1))


def test_requantize_rounds_and_saturates():
    m = multiplier(0.5, 8)  # x / 2 exactly
    acc = np.array([1, 3, 5, -1, -3, 400, -400])
    assert requantize(acc, m, 8, "half_even").tolist() == [0, 2, 2, 0, -2, 127, -128]
    assert requantize(acc, m, 8, "half_up").tolist() == [1, 2, 3, 0, -1, 127, -128]
    assert requantize(acc, m, 8, "floor").tolist() == [0, 1, 2, -1, -2, 127, -128]


def test_requantize_matches_float_within_half_a_step_and_the_multiplier_error():
    rng = np.random.default_rng(SEED)
    acc = rng.integers(-(1 << 31), 1 << 31, 100_000)
    scale = 3.1e-8
    m = multiplier(scale, 16)
    got = requantize(acc, m, 16, "half_even")
    want = acc * scale
    assert np.abs(got - want).max() <= 0.5 + np.abs(want).max() * 2.0**-16


def test_residual_add_saturates():
    assert residual_add(np.array([30000, -30000, 5]), np.array([5000, -5000, -7]), 16).tolist() \
        == [32767, -32768, -2]


def test_token_quantize_scales_each_row_by_the_least_power_of_two():
    rng = np.random.default_rng(SEED)
    x = rng.integers(-40000, 40000, (200, 64)) >> rng.integers(0, 16, (200, 1))
    q, e = token_quantize(x, 8, "half_even")
    assert np.abs(q).max() <= 127
    peak = np.abs(x).max(axis=1, keepdims=True)
    assert np.all(peak < 1 << (e + 7))  # the exponent is large enough ...
    assert np.all((e == 0) | (peak >= 1 << (e + 6)))  # ... and no larger than needed
    assert np.all(np.abs(q * (1 << e) - x) <= np.where(q == 127, 1 << e, (1 << e) // 2))


# -- reciprocal and square root ----------------------------------------------------------------


def test_reciprocal_relative_error_bound():
    # exhaustive over 1..2^17, then random 40-bit values: |r / 2^(P + z) * x - 1| <= 2^-14
    xs = np.concatenate([np.arange(1, 1 << 17),
                         np.random.default_rng(SEED).integers(1 << 17, 1 << 40, 100_000)])
    r, z = reciprocal(xs, SPEC)
    rel = r / 2.0 ** (SPEC.recip_bits + z) * xs - 1
    assert np.abs(rel).max() <= 2.0**-14
    assert r.max() <= 1 << SPEC.recip_bits and r.min() >= 1 << (SPEC.recip_bits - 1)


def test_reciprocal_newton_steps_each_square_the_error():
    xs = np.arange(1 << 12, 1 << 13)
    errors = []
    for steps in range(3):
        sp = dataclasses.replace(SPEC, recip_steps=steps, recip_bits=24)
        r, z = reciprocal(xs, sp)
        errors.append(np.abs(r / 2.0 ** (sp.recip_bits + z) * xs - 1).max())
    assert errors[0] <= 2.0 ** -(SPEC.recip_seed_bits + 1)  # the seed: half an interval
    assert errors[1] <= 1.5 * errors[0] ** 2 + 2.0**-22
    assert errors[2] <= 1.5 * errors[1] ** 2 + 2.0**-22


def test_reciprocal_newton_operands_fit():
    """For every mantissa, seed table and step: ``1 <= r <= 2^P`` and ``0 < w < 2^(P+1)``
    (``w = 2^(P+1) - ((m r) >> P)``), so the RTL's products are ``P + 1`` by ``P + 1`` bits
    (hw/reciprocal.py, ``newton_steps_staged``). Here every ``P`` up to 16; 17 to 24 pass
    too (30 s)."""
    for p in range(8, 17):
        m = np.arange(1 << p, 2 << p, dtype=np.int64)
        for q in range(1, 9):
            sp = dataclasses.replace(SPEC, recip_bits=p, recip_seed_bits=q, ln_frac_bits=4)
            r = recip_seed_table(sp)[(m - (1 << p)) >> (p - q)]
            for _ in range(4):
                assert 1 <= r.min() and r.max() <= 1 << p, (p, q)
                w = (2 << p) - ((m * r) >> p)
                assert 0 < w.min() and w.max() < 2 << p, (p, q)
                r = (r * w) >> p
            assert 1 <= r.min() and r.max() <= 1 << p, (p, q)


def test_reciprocal_of_zero_is_zero():
    r, z = reciprocal(np.array([0]), SPEC)
    assert r.tolist() == [0] and z.tolist() == [0]


def test_isqrt_is_exact():
    rng = np.random.default_rng(SEED)
    vs = np.concatenate([np.arange(0, 5000), rng.integers(0, 1 << 62, 5000),
                         [(1 << 62) - 1, (1 << 31) ** 2 - 1]])
    roots = isqrt(vs)
    assert roots.tolist() == [math.isqrt(int(v)) for v in vs]
    with pytest.raises(ValueError):
        isqrt(np.array([1 << 62]))


# -- exp and softmax ---------------------------------------------------------------------------


@pytest.mark.parametrize("method, bound", [("lut", 2.0**-16), ("poly", 3.0e-3)])
def test_exp2_fraction_bound(method, bound):
    sp = dataclasses.replace(SPEC, exp_method=method)
    f = np.arange(1 << sp.exp_frac_bits)
    got = exp2_frac(f, sp) / 2.0 ** (sp.exp_bits - 1)
    want = 2.0 ** (f / (1 << sp.exp_frac_bits))
    assert np.abs(got / want - 1).max() <= bound
    assert got.min() >= 1 and got.max() < 2


def _softmax_rows(rng):
    """(name, integer scores) rows: random at several spreads, and the corners."""
    big = (1 << 31) - 1
    yield "random", rng.normal(0, 300, (3000, 8)).round()
    yield "random long", rng.normal(0, 600, (200, 128)).round()
    yield "max length", rng.normal(0, 600, (20, 512)).round()
    yield "length 1", rng.integers(-big, big, (50, 1))
    yield "all equal", np.full((4, 16), 1234)
    dom = rng.normal(0, 50, (100, 32)).round()
    dom[np.arange(100), rng.integers(0, 32, 100)] += 5000
    yield "one dominant", dom
    yield "extreme", rng.choice([-big - 1, big, 0], (200, 16))
    yield "two-way tie", np.tile([[700, 700, -900, 0]], (3, 1))


@pytest.mark.parametrize("method", ["lut", "poly"])
def test_softmax_within_one_256th_of_float(method):
    sp = dataclasses.replace(SPEC, exp_method=method)
    step = 0.01
    m = softmax_multiplier(step, sp)
    rng = np.random.default_rng(SEED)
    for name, q in _softmax_rows(rng):
        q = q.astype(np.int64)
        p = softmax(q, m, sp)
        err = np.abs(p / sp.prob_one - _float_probs(q, step)).max()
        assert err <= 1 / 256, f"{name}: {err * 256:.3f}/256 (seed {SEED})"
        assert p.min() >= 0 and p.max() <= sp.prob_one


def test_softmax_masks():
    rng = np.random.default_rng(SEED)
    q = rng.normal(0, 300, (64, 64)).round().astype(np.int64)
    mask = causal_mask(64)
    m = softmax_multiplier(0.01, SPEC)
    p = softmax(q, m, SPEC, mask)
    assert np.all(p[~mask] == 0)
    assert np.abs(p / SPEC.prob_one - _float_probs(q, 0.01, mask)).max() <= 1 / 256
    # a masked position does not move the others, even when it would be the largest
    q2 = q.copy()
    q2[~mask] = 1 << 30
    assert np.array_equal(softmax(q2, m, SPEC, mask), p)
    assert np.array_equal(softmax(q, m, SPEC, causal=True), p)  # the option is the mask
    # a row with nothing kept is all zeros
    assert np.all(softmax(q[:2], m, SPEC, np.zeros(64, dtype=bool)) == 0)
    # length 1: the one probability is 1
    assert softmax(np.array([[-5]]), m, SPEC).tolist() == [[SPEC.prob_one]]


def test_softmax_trace_is_consistent():
    q = np.array([[0, -100, -1000, -100000]])
    tr = softmax(q, softmax_multiplier(0.01, SPEC), SPEC, trace=True)
    assert tr.exp[0, 0] == 1 << (SPEC.exp_bits - 1)  # 2^0 at the maximum
    assert tr.exponent[0, 3] == SPEC.exp_floor and tr.exp[0, 3] == 0  # clamped, shifted out
    assert tr.total[0, 0] == tr.exp.sum()
    assert np.array_equal(tr.probs, softmax(q, softmax_multiplier(0.01, SPEC), SPEC))


# -- LayerNorm ----------------------------------------------------------------------------------


def _ln_case(rng, d=384, rows=300):
    h = rng.normal(0, 2000, (rows, d)).round().astype(np.int64)
    h[:, 7] *= 12  # an outlier channel, as in BERT's residual stream
    gamma = rng.normal(1, 0.3, d)
    beta = rng.normal(0, 0.2, d)
    ref = float_layer_norm(h.astype(np.float32), gamma.astype(np.float32),
                           beta.astype(np.float32), 1e-12).astype(np.float64)
    return h, gamma, beta, ref


def test_layer_norm_normalisation_bound():
    rng = np.random.default_rng(SEED)
    h, _, _, _ = _ln_case(rng)
    n = layer_norm(h, None, SPEC, normalised=True) / 2.0**SPEC.ln_frac_bits
    want = (h - h.mean(axis=1, keepdims=True)) / h.std(axis=1, keepdims=True)
    assert np.abs(n - want).max() <= 2.0**-SPEC.ln_frac_bits


@pytest.mark.parametrize("bits, bound", [(8, 0.6), (16, 2.5)])
def test_layer_norm_output_within_bound_of_float(bits, bound):
    rng = np.random.default_rng(SEED)
    h, gamma, beta, ref = _ln_case(rng)
    step = np.abs(ref).max() / ((1 << (bits - 1)) - 1)
    y = layer_norm(h, layer_norm_params(gamma, beta, step, SPEC), SPEC, bits)
    assert np.abs(y - ref / step).max() <= bound


def test_layer_norm_constant_row_gives_beta():
    beta = np.array([0.5, -0.25, 0.0, 1.0])
    params = layer_norm_params(np.ones(4), beta, 1 / 64, SPEC)
    y = layer_norm(np.full((2, 4), 77), params, SPEC)
    assert y.tolist() == [[32, -16, 0, 64]] * 2


# -- GELU and ReLU ------------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [8, 10])
def test_gelu_table_is_float_rounded(bits):
    sp = dataclasses.replace(SPEC, gelu_in_bits=bits)
    in_step, out_step = 12.0 / ((1 << (bits - 1)) - 1), 12.0 / 127
    q = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
    y = gelu_lut(q, gelu_table(in_step, out_step, sp), sp)
    want = gelu_erf((q * in_step).astype(np.float32)) / out_step
    assert np.abs(y - want).max() <= 0.5 + 1e-4


@pytest.mark.parametrize("peak", [4.0, 10.0, 25.0])
def test_gelu_poly_exhaustive_16_bit_bound(peak):
    # I-BERT's polynomial: |GELU error| <= 0.019 in real units, plus half an output step
    sp = dataclasses.replace(SPEC, gelu_method="poly", gelu_in_bits=16)
    in_step, out_step = peak / 32767, peak / 32767
    q = np.arange(-32768, 32768)
    y = gelu_poly(q, gelu_poly_params(in_step, out_step, sp), sp, 16) * out_step
    want = gelu_erf((q * in_step).astype(np.float32))
    assert np.abs(y - want).max() <= 0.019 + out_step


def test_relu():
    assert relu(np.array([-128, -1, 0, 1, 127])).tolist() == [0, 0, 0, 1, 127]


def test_gelu_poly_refuses_constants_too_wide():
    sp = dataclasses.replace(SPEC, gelu_method="poly", gelu_in_bits=16)
    with pytest.raises(ValueError, match="use fewer gelu_in_bits or a larger input range"):
        gelu_poly_params(1.0 / 32767, 1.0 / 32767, sp)


@pytest.mark.parametrize("mode", ["half_even", "half_up", "floor"])
def test_round_shift_var_is_round_shift_per_element(mode):
    from cimforge.golden.numerics import round_shift, round_shift_var

    rng = np.random.default_rng(SEED)
    x = rng.integers(-(1 << 40), 1 << 40, 5000)
    x[:8] = [0, 1, -1, 2, -2, 3, -3, 6]  # ties at shift 1 and 2
    for shift in (0, 1, 2, 7, 39, 62):
        assert np.array_equal(round_shift_var(x, np.full(x.shape, shift), mode),
                              round_shift(x, shift, mode))
    # beyond every bit: rounds as x / 2^63 does (0, or -1 by floor for negatives)
    want = np.where(x < 0, -1, 0) if mode == "floor" else np.zeros_like(x)
    assert np.array_equal(round_shift_var(x, np.full(x.shape, 63), mode), want)
