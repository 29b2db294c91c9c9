"""The per-token scaling unit's spec and cycle model."""

import dataclasses

import pytest

from cimforge.config import load_config
from cimforge.golden.token_quant import TokenQuantSpec

TINY = load_config("tiny")


def test_token_quant_latency_and_rate():
    t = TokenQuantSpec.from_config(TINY).timing
    d = t.spec.d
    s = t.schedule([0] + [None] * (d * 20 - 1))
    assert s.offered[0] - s.accepted[0] == t.first_result_latency()
    assert (len(s.offered) - 1) / (s.offered[-1] - s.offered[0]) == 1.0


def test_token_quant_refuses_no_slots():
    with pytest.raises(ValueError, match=r"^slots must be a positive integer, not 0$"):
        dataclasses.replace(TokenQuantSpec.from_config(TINY), slots=0)
