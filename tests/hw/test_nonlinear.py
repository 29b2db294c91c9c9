# amaranth: UnusedElaboratable=no
"""Non-linear units in Amaranth's simulator against golden, bit- and cycle-exact (fast; the
cocotb benches cover the generated Verilog)."""

import dataclasses

import numpy as np
import pytest

from cimforge.config import load_config
from golden.nonlinear import multiplier, requantize, residual_add, softmax_multiplier
from golden.nonlinear_units import RequantSpec, SoftmaxSpec, requant_item, softmax_rows
from hw.nonlinear import Requantizer, Softmax
from verif.amaranth_stream import run_stream

SEED = 5
TINY = load_config("tiny")


def _check_timing(run, timing):
    """Acceptance, offer and take cycles of every item as the cycle model predicts them."""
    model = timing.schedule(run.offered_in, run.sink_ready)
    assert model.accepted == run.accepted
    assert model.offered == run.offered
    assert model.taken == run.taken


def requant_items(spec: RequantSpec, rng, n):
    lo, hi = -(1 << (spec.acc_bits - 1)), 1 << (spec.acc_bits - 1)
    items = []
    for k in range(n):
        narrow = int(rng.integers(2))
        exp = int(rng.integers(spec.max_exp + 1))
        acc = int(rng.choice([lo, hi - 1, 0, -1])) if k % 7 == 0 else int(rng.integers(lo, hi))
        acc >>= int(rng.integers(0, spec.acc_bits))
        scale = float(rng.uniform(0.5, 2.0)) * 2.0 ** -float(rng.integers(-2, 40))
        try:
            m = multiplier(scale, spec.mult_bits)
        except ValueError:
            m = multiplier(1.0, spec.mult_bits)
        rb = spec.residual_bits if not narrow else spec.act_bits
        items.append({
            "acc": acc, "exp": exp,
            "bias": int(rng.integers(-(1 << (spec.bias_bits - 1)), 1 << (spec.bias_bits - 1)))
            >> int(rng.integers(0, spec.bias_bits)),
            "mult": m.mult, "shift": min(m.shift, 63),
            "residual": int(rng.integers(-(1 << (rb - 1)), 1 << (rb - 1))) * int(k % 3 != 0),
            "narrow": narrow,
        })
    return items


def expected_requant(spec, items):
    cols = {k: np.array([it[k] for it in items]) for k in items[0]}
    return requant_item(spec, **cols).tolist()


@pytest.mark.parametrize("rounding", ["half_even", "half_up", "floor"])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_requantizer(rounding, idle, stall):
    cfg = dataclasses.replace(TINY, numerics=dataclasses.replace(TINY.numerics,
                                                                  rounding=rounding))
    spec = RequantSpec.from_config(cfg)
    items = requant_items(spec, np.random.default_rng(SEED), 300)
    run = run_stream(Requantizer(spec), items, len(items), idle=idle, stall=stall, seed=SEED)
    assert run.results == expected_requant(spec, items)
    _check_timing(run, spec.timing)


def test_requant_item_is_the_int_models_requantiser_and_residual_add():
    spec = RequantSpec.from_config(TINY)
    rng = np.random.default_rng(SEED)
    acc = rng.integers(-(1 << 31), 1 << 31, 1000)
    res = rng.integers(-(1 << 15), 1 << 15, 1000)
    m = multiplier(3e-6, spec.mult_bits)
    got = requant_item(spec, acc, 2, 17, m.mult, m.shift, res, 0)
    want = residual_add(requantize((acc << 2) + 17, m, 16, spec.rounding), res, 16)
    assert np.array_equal(got, want)


# -- softmax -----------------------------------------------------------------------------------


def softmax_case(spec, rng, rows):
    """Rows of random lengths (1 .. max_len) with corners among them; returns the beats
    (payload dicts), the rows' scores and keep masks."""
    hi = 1 << (spec.score_bits - 1)
    scores, keeps = [], []
    for k in range(rows):
        n = int(rng.integers(1, spec.max_len + 1)) if k % 5 else spec.max_len
        kind = k % 6
        if kind == 0:
            s = rng.normal(0, 400, n).round()
        elif kind == 1:
            s = np.full(n, int(rng.integers(-hi, hi)))
        elif kind == 2:
            s = rng.normal(0, 30, n).round()
            s[rng.integers(n)] += 3000
        elif kind == 3:
            s = rng.choice([-hi, hi - 1, 0], n)
        else:
            s = rng.integers(-hi, hi, n) >> int(rng.integers(0, spec.score_bits))
        keep = rng.random(n) < (0.7 if kind == 4 else 1.0)
        if kind == 5:
            keep = np.arange(n) <= int(rng.integers(n))  # causal: a prefix kept
        scores.append(np.asarray(s, dtype=np.int64))
        keeps.append(keep)
    return scores, keeps


def softmax_beats(spec, scores, keeps):
    beats = []
    for s, k in zip(scores, keeps, strict=True):
        n = len(s)
        nb = -(-n // spec.lanes)
        for b in range(nb):
            lanes = range(b * spec.lanes, (b + 1) * spec.lanes)
            beats.append({
                "scores": [int(s[i]) if i < n else 0 for i in lanes],
                "keep": sum(int(k[i]) << j for j, i in enumerate(lanes) if i < n),
                "last": int(b == nb - 1),
            })
    return beats


def expected_softmax_beats(spec, mult, shift, scores, keeps):
    probs = softmax_rows(spec, mult, shift, scores, keeps)
    out = []
    for p in probs:
        nb = -(-len(p) // spec.lanes)
        padded = np.zeros(nb * spec.lanes, dtype=np.int64)
        padded[:len(p)] = p
        for b in range(nb):
            out.append({"probs": padded[b * spec.lanes:(b + 1) * spec.lanes].tolist(),
                        "last": int(b == nb - 1)})
    return out


def _softmax_spec(lanes=1, max_len=8, **nl):
    cfg = load_config("tiny")
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, seq_len=max_len),
        nonlinear=dataclasses.replace(cfg.nonlinear, softmax_lanes=lanes, **nl))
    return SoftmaxSpec.from_config(cfg)


@pytest.mark.parametrize("lanes, max_len, nl", [
    (1, 8, {}),
    (2, 7, {"exp_method": "poly"}),
    (4, 16, {"recip_steps": 1}),
])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_softmax(lanes, max_len, nl, idle, stall):
    spec = _softmax_spec(lanes, max_len, **nl)
    rng = np.random.default_rng(SEED)
    scores, keeps = softmax_case(spec, rng, 40)
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
    model = spec.timing.schedule(lasts, run.offered_in, run.sink_ready)
    assert model.accepted == run.accepted
    assert model.offered == run.offered
    assert model.taken == run.taken
