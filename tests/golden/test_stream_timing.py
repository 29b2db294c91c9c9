"""The cycle-model steppers: a stall pipeline's latency and back-pressure."""

import pytest

from cimforge.golden.stream_timing import PipelineTiming


def test_pipeline_latency_and_back_pressure():
    t = PipelineTiming(3)
    s = t.schedule([0] + [None] * 9)
    assert s.accepted == list(range(10)) and s.offered == list(range(3, 13))
    # a sink that takes every other cycle halves the rate and stalls the input with it
    s = t.schedule([0] + [None] * 9, lambda c: c % 2 == 0)
    assert s.taken == [c for c in range(4, 100, 2)][:10]
    with pytest.raises(ValueError, match="not after item 0 was accepted"):
        t.schedule([5, 5])
