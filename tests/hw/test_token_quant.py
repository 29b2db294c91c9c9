# amaranth: UnusedElaboratable=no
"""The per-token scaling unit in Amaranth's simulator against golden, bit- and cycle-exact
(fast; the cocotb bench covers the generated Verilog)."""

import numpy as np
import pytest

from cimforge.golden.token_quant import TokenQuantSpec, token_quant_rows
from cimforge.hw.token_quant import TokenQuantizer
from cimforge.verif.amaranth_stream import run_stream
from cimforge.verif.nonlinear_case import token_rows

SEED = 5


@pytest.mark.parametrize("d, in_bits, out_bits, rounding", [
    (32, 16, 8, "half_even"), (7, 12, 4, "half_up"), (16, 20, 8, "floor")])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_token_quantizer(d, in_bits, out_bits, rounding, idle, stall):
    _run(TokenQuantSpec(d=d, in_bits=in_bits, out_bits=out_bits, rounding=rounding), idle,
         stall)


@pytest.mark.parametrize("slots", [1, 3, 4])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_token_quantizer_other_slot_counts(slots, idle, stall):
    """The row ring steps modulo its slot count (no two-slot assumption in RTL or model)."""
    _run(TokenQuantSpec(d=9, in_bits=16, out_bits=8, rounding="half_even", slots=slots), idle,
         stall)


def _run(spec, idle, stall):
    d = spec.d
    rows = token_rows(spec, np.random.default_rng(SEED), 15)
    items = [int(v) for v in rows.reshape(-1)]
    run = run_stream(TokenQuantizer(spec), items, len(items), idle=idle, stall=stall, seed=SEED,
                     unpack=lambda p: (int(p.q), int(p.exp), int(p.last)))
    q, e = token_quant_rows(spec, rows)
    want = [(int(v), int(e[i // d, 0]), int(i % d == d - 1))
            for i, v in enumerate(q.reshape(-1))]
    assert run.results == want
    assert len(set(e[:, 0])) > 2  # several exponents met
    run.assert_schedule(spec.timing.schedule(run.offered_in, run.sink_ready))
