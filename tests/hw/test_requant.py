# amaranth: UnusedElaboratable=no
"""The requantiser in Amaranth's simulator against golden, bit- and cycle-exact (fast; the
cocotb bench covers the generated Verilog)."""

import dataclasses

import numpy as np
import pytest

from cimforge.config import load_config
from cimforge.golden.requant import RequantSpec
from cimforge.hw.requant import Requantizer
from cimforge.verif.amaranth_stream import run_stream
from cimforge.verif.nonlinear_case import expected_requant, requant_corners, requant_items

SEED = 5
TINY = load_config("tiny")


@pytest.mark.parametrize("rounding", ["half_even", "half_up", "floor"])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_requantizer(rounding, idle, stall):
    cfg = dataclasses.replace(TINY, numerics=dataclasses.replace(TINY.numerics,
                                                                  rounding=rounding))
    spec = RequantSpec.from_config(cfg)
    items = requant_items(spec, np.random.default_rng(SEED), 300)
    run = run_stream(Requantizer(spec), items, len(items), idle=idle, stall=stall, seed=SEED)
    assert run.results == expected_requant(spec, items)
    run.assert_schedule(spec.timing.schedule(run.offered_in, run.sink_ready))


def test_requantizer_corners():
    spec = RequantSpec.from_config(TINY)
    items = requant_corners(spec)
    assert max(it["exp"] for it in items) == spec.exp_field_max > spec.max_exp
    run = run_stream(Requantizer(spec), items, len(items))
    assert run.results == expected_requant(spec, items)


def test_requantizer_exponent_beyond_max_saturates():
    """The field carries exponents past ``max_exp``: the shifted sum saturates to
    ``full_bits`` there (it used to wrap: acc = 2^30, exp = 12 gave 0)."""
    spec = RequantSpec.from_config(TINY)
    top = (1 << (spec.residual_bits - 1)) - 1
    items = [{"acc": sign << 30, "exp": exp, "bias": 0, "mult": 1, "shift": 0, "residual": 0,
              "narrow": 0} for exp in range(spec.exp_field_max + 1) for sign in (1, -1)]
    run = run_stream(Requantizer(spec), items, len(items))
    assert run.results == expected_requant(spec, items)
    assert run.results[-2:] == [top, -top - 1]
