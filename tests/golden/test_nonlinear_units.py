"""The non-linear units' cycle models: the latency and throughput their docstrings state.
(That the RTL keeps to the models is what tests/hw/test_nonlinear.py and the benches check.)"""

import dataclasses

import pytest

from cimforge.config import load_config
from golden.nonlinear_units import LayerNormSpec, PipelineTiming, SoftmaxSpec

TINY = load_config("tiny")


def _rate(schedule) -> float:
    """Results per cycle from the first result to the last."""
    return (len(schedule.offered) - 1) / (schedule.offered[-1] - schedule.offered[0])


def test_pipeline_latency_and_back_pressure():
    t = PipelineTiming(3)
    s = t.schedule([0] + [None] * 9)
    assert s.accepted == list(range(10)) and s.offered == list(range(3, 13))
    # a sink that takes every other cycle halves the rate and stalls the input with it
    s = t.schedule([0] + [None] * 9, lambda c: c % 2 == 0)
    assert s.taken == [c for c in range(4, 100, 2)][:10]
    with pytest.raises(ValueError, match="not after item 0 was accepted"):
        t.schedule([5, 5])


@pytest.mark.parametrize("steps", [0, 1, 2, 3])
def test_softmax_latency_and_full_rate_length(steps):
    spec = dataclasses.replace(SoftmaxSpec.from_config(TINY), recip_steps=steps, max_len=16)
    t = spec.timing
    for n in (1, 5, 16):
        s = t.schedule([i == n - 1 for i in range(n)], [0] + [None] * (n - 1))
        assert s.offered[0] - s.accepted[0] == t.first_result_latency(n)
    for n, full in ((t.full_rate_beats, True), (t.full_rate_beats - 1, False)):
        s = t.schedule([i % n == n - 1 for i in range(n * 30)], [0] + [None] * (n * 30 - 1))
        assert (_rate(s) == 1.0) == full, (n, _rate(s))


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
        assert (_rate(s) == 1.0) == full, (d, _rate(s))


def test_token_quant_latency_and_rate():
    from golden.nonlinear_units import TokenQuantSpec

    t = TokenQuantSpec.from_config(TINY).timing
    d = t.spec.d
    s = t.schedule([0] + [None] * (d * 20 - 1))
    assert s.offered[0] - s.accepted[0] == t.first_result_latency()
    assert _rate(s) == 1.0
