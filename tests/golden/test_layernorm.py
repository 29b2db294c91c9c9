"""The LayerNorm unit's spec and cycle model: the latency and throughput its docstrings state.
(That the RTL keeps to the model is what tests/hw/test_layernorm.py and the bench check.)"""

import dataclasses
import math

import numpy as np
import pytest

from cimforge.config import load_config
from cimforge.golden.layernorm import LayerNormSpec
from cimforge.golden.nonlinear import isqrt

TINY = load_config("tiny")


def rate(schedule) -> float:
    return (len(schedule.offered) - 1) / (schedule.offered[-1] - schedule.offered[0])


@pytest.mark.parametrize("in_bits, steps", [(8, 1), (16, 2)])
def test_layer_norm_latency_and_full_rate_length(in_bits, steps):
    base = dataclasses.replace(LayerNormSpec.from_config(TINY), in_bits=in_bits,
                               recip_steps=steps)
    for d in (base.d, 384):
        t = dataclasses.replace(base, d=d).timing
        s = t.schedule([0] + [None] * (d - 1))
        assert s.offered[0] - s.accepted[0] == t.first_result_latency()
    probe = dataclasses.replace(base, d=20).timing
    for d, full in ((probe.full_rate_length, True), (probe.full_rate_length - 1, False)):
        t = dataclasses.replace(base, d=d).timing
        s = t.schedule([0] + [None] * (d * 30 - 1))
        assert (rate(s) == 1.0) == full, (d, rate(s))


def test_layer_norm_refuses_no_slots():
    with pytest.raises(ValueError, match=r"^slots must be a positive integer, not 0$"):
        dataclasses.replace(LayerNormSpec.from_config(TINY), slots=0)


def test_full_rate_length_is_only_stated_for_the_default_slots():
    t = dataclasses.replace(LayerNormSpec.from_config(TINY), slots=4).timing
    with pytest.raises(ValueError, match=r"holds for 3 slots, not 4"):
        _ = t.full_rate_length


@pytest.mark.parametrize("d, in_bits", [(32, 16), (33, 16), (384, 16), (4, 8), (1, 8), (12, 24)])
def test_v_max_bounds_every_row(d, in_bits):
    """``V = d S2 - S1^2`` never exceeds ``v_max`` (rows split between the two extremes reach
    it for an even ``d``), and its root fits the ``sqrt_steps`` bits the RTL computes."""
    spec = dataclasses.replace(LayerNormSpec.from_config(TINY), d=d, in_bits=in_bits)
    lo, hi = -(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1
    rng = np.random.default_rng(7)
    rows = [np.array([lo] * k + [hi] * (d - k), dtype=np.int64) for k in range(d + 1)]
    rows += list(rng.integers(lo, hi + 1, (200, d)))
    rows += list(rng.choice([lo, hi], (200, d)))
    vs = [int(d * np.sum(r * r) - np.sum(r) ** 2) for r in rows]
    assert max(vs) <= spec.v_max
    assert (max(vs) == spec.v_max) == (d % 2 == 0)
    assert spec.v_max < 1 << (2 * spec.sqrt_steps) and spec.v_max < 1 << spec.v_bits
    assert isqrt(np.array([spec.v_max]))[0] == math.isqrt(spec.v_max) < 1 << spec.sqrt_steps
