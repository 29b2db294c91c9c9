"""The softmax unit's spec and cycle model: the latency and throughput its docstrings state.
(That the RTL keeps to the model is what tests/hw/test_softmax.py and the bench check.)"""

import dataclasses

import pytest

from cimforge.config import load_config
from cimforge.golden.softmax import SoftmaxSpec

TINY = load_config("tiny")


def rate(schedule) -> float:
    """Results per cycle from the first result to the last."""
    return (len(schedule.offered) - 1) / (schedule.offered[-1] - schedule.offered[0])


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
def test_softmax_latency_and_full_rate_length(steps):
    spec = dataclasses.replace(SoftmaxSpec.from_config(TINY), recip_steps=steps, max_len=16)
    t = spec.timing
    for n in (1, 5, 16):
        s = t.schedule([i == n - 1 for i in range(n)], [0] + [None] * (n - 1))
        assert s.offered[0] - s.accepted[0] == t.first_result_latency(n)
    for n, full in ((t.full_rate_beats, True), (t.full_rate_beats - 1, False)):
        s = t.schedule([i % n == n - 1 for i in range(n * 30)], [0] + [None] * (n * 30 - 1))
        assert (rate(s) == 1.0) == full, (n, rate(s))


@pytest.mark.parametrize("field", ["score_slots", "exp_slots"])
def test_softmax_refuses_no_slots(field):
    with pytest.raises(ValueError, match=rf"^{field} must be a positive integer, not 0$"):
        dataclasses.replace(SoftmaxSpec.from_config(TINY), **{field: 0})


def test_softmax_refuses_a_normalising_shift_beyond_the_shift_field():
    """Rows long enough that the row sum's exponent plus recip_bits passes 63: the RTL's
    6-bit shift would wrap, so the spec refuses them."""
    spec = dataclasses.replace(SoftmaxSpec.from_config(TINY), exp_bits=24, recip_bits=24,
                               prob_bits=8)
    dataclasses.replace(spec, max_len=1 << 16)  # sum 40 bits: 39 + 24 = 63, allowed
    with pytest.raises(ValueError, match=r"^softmax's normalising shift \(row-sum exponent up "
                                         r"to 40 \+ recip_bits 24\) would exceed the 6-bit "
                                         r"shift \(63\)"):
        dataclasses.replace(spec, max_len=(1 << 16) + 1)


def test_full_rate_length_is_only_stated_for_the_default_slots():
    t = dataclasses.replace(SoftmaxSpec.from_config(TINY), exp_slots=3).timing
    with pytest.raises(ValueError, match=r"holds for 2 score and 4 exp slots, not 2 and 3"):
        _ = t.full_rate_beats
