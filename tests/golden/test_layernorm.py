"""The LayerNorm unit's spec and cycle model: the latency and throughput its docstrings state.
(That the RTL keeps to the model is what tests/hw/test_layernorm.py and the bench check.)"""

import dataclasses

import pytest

from cimforge.config import load_config
from cimforge.golden.layernorm import LayerNormSpec

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
