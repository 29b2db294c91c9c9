# amaranth: UnusedElaboratable=no
"""The streaming softmax in Amaranth's simulator against golden, bit- and cycle-exact (fast;
the cocotb bench covers the generated Verilog)."""

import dataclasses

import numpy as np
import pytest

from cimforge.config import load_config
from cimforge.golden.nonlinear import softmax_multiplier
from cimforge.golden.softmax import SoftmaxSpec
from cimforge.hw.softmax import Softmax
from cimforge.verif.amaranth_stream import run_stream
from cimforge.verif.nonlinear_case import expected_softmax_beats, softmax_beats, softmax_case

SEED = 5


def _softmax_spec(lanes=1, max_len=8, rounding="half_even", **nl):
    cfg = load_config("tiny")
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, seq_len=max_len),
        numerics=dataclasses.replace(cfg.numerics, rounding=rounding),
        nonlinear=dataclasses.replace(cfg.nonlinear, softmax_lanes=lanes, **nl))
    return SoftmaxSpec.from_config(cfg)


def _run(spec, idle, stall, rows=40):
    rng = np.random.default_rng(SEED)
    scores, keeps = softmax_case(spec, rng, rows)
    m = softmax_multiplier(0.01, spec.nonlinear)
    beats = softmax_beats(spec, scores, keeps)
    dut = Softmax(spec)

    async def setup(ctx):
        ctx.set(dut.mult, m.mult)
        ctx.set(dut.shift, m.shift)

    run = run_stream(dut, beats, len(beats), idle=idle, stall=stall, seed=SEED, setup=setup,
                     unpack=lambda p: {"probs": [int(v) for v in p.probs], "last": int(p.last)})
    want = expected_softmax_beats(spec, m.mult, m.shift, scores, keeps)
    for j, (g, w) in enumerate(zip(run.results, want, strict=True)):
        assert g == w, f"beat {j}"
    lasts = [b["last"] == 1 for b in beats]
    run.assert_schedule(spec.timing.schedule(lasts, run.offered_in, run.sink_ready))


@pytest.mark.parametrize("lanes, max_len, nl", [
    (1, 8, {}),
    (2, 7, {"exp_method": "poly", "rounding": "floor"}),
    (4, 16, {"recip_steps": 1, "rounding": "half_up"}),
    # other formats: narrow exp values with a wide reciprocal, a short exp fraction
    (1, 8, {"exp_bits": 8, "recip_bits": 24, "exp_frac_bits": 4}),
    (3, 9, {"exp_bits": 24, "recip_bits": 8, "ln_frac_bits": 8, "recip_seed_bits": 2,
            "prob_bits": 12}),
])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_softmax(lanes, max_len, nl, idle, stall):
    _run(_softmax_spec(lanes, max_len, **nl), idle, stall)


@pytest.mark.parametrize("score_slots, exp_slots", [(1, 1), (3, 4), (2, 5)])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_softmax_other_slot_counts(score_slots, exp_slots, idle, stall):
    """Both row rings step modulo their slot count (no two-slot assumption in RTL or model)."""
    spec = dataclasses.replace(_softmax_spec(2, 8), score_slots=score_slots,
                               exp_slots=exp_slots)
    _run(spec, idle, stall, rows=25)
