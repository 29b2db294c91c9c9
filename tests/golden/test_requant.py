"""The requantiser unit's item function: the integer model's requantiser and residual add,
and the exponent field beyond ``max_exp``."""

import dataclasses

import numpy as np
import pytest

from cimforge.config import load_config
from cimforge.golden.nonlinear import multiplier, requantize, residual_add
from cimforge.golden.numerics import saturate
from cimforge.golden.requant import RequantSpec, requant_item

SEED = 5
TINY = load_config("tiny")


def test_requant_item_is_the_int_models_requantiser_and_residual_add():
    spec = RequantSpec.from_config(TINY)
    rng = np.random.default_rng(SEED)
    acc = rng.integers(-(1 << 31), 1 << 31, 1000)
    res = rng.integers(-(1 << 15), 1 << 15, 1000)
    m = multiplier(3e-6, spec.mult_bits)
    got = requant_item(spec, acc, 2, 17, m.mult, m.shift, res, 0)
    want = residual_add(requantize((acc << 2) + 17, m, 16, spec.rounding), res, 16)
    assert np.array_equal(got, want)


def test_exponent_field_and_full_width():
    spec = RequantSpec.from_config(TINY)  # 16-bit residual, int8: exponents 0 .. 9
    assert (spec.max_exp, spec.exp_field_bits, spec.exp_field_max) == (9, 4, 15)
    # (acc << max_exp) + bias always fits full_bits: the saturation only acts beyond max_exp
    lim = (1 << (spec.acc_bits - 1)) << spec.max_exp
    assert lim + (1 << (spec.bias_bits - 1)) <= 1 << (spec.full_bits - 1)


def test_exponent_beyond_max_saturates_the_shifted_sum():
    spec = RequantSpec.from_config(TINY)
    acc = np.array([1 << 30, -(1 << 30), (1 << 31) - 1, 1])
    for exp in range(spec.max_exp + 1, spec.exp_field_max + 1):
        full = saturate((acc << exp) + 5, spec.full_bits)
        want = saturate(full >> 3, spec.residual_bits)  # mult 1, shift 3, floor below
        got = requant_item(dataclasses.replace(spec, rounding="floor"), acc, exp, 5, 1, 3, 0, 0)
        assert np.array_equal(got, want), exp
    # the case that used to wrap at full_bits: 2^30 << 12 is 0 modulo 2^42
    assert requant_item(spec, 1 << 30, 12, 0, 1, 0, 0, 0) == (1 << 15) - 1


def test_exponent_outside_the_field_is_refused():
    spec = RequantSpec.from_config(TINY)
    with pytest.raises(ValueError, match=r"^exp must be in 0\.\.15 \(the 4-bit field\)$"):
        requant_item(spec, 1, 16, 0, 1, 0, 0, 0)
