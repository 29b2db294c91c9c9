# amaranth: UnusedElaboratable=no
"""Non-linear units in Amaranth's simulator against golden, bit- and cycle-exact (fast; the
cocotb benches cover the generated Verilog)."""

import dataclasses

import numpy as np
import pytest

from cimforge.config import load_config
from golden.nonlinear import (
    gelu_poly_params,
    gelu_table,
    layer_norm_params,
    multiplier,
    requantize,
    residual_add,
    softmax_multiplier,
)
from golden.nonlinear_units import (
    ActivationSpec,
    LayerNormSpec,
    RequantSpec,
    SoftmaxSpec,
    activation_items,
    layer_norm_rows,
    requant_item,
    softmax_rows,
)
from hw.nonlinear import Activation, LayerNorm, Requantizer, Softmax
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


# -- GELU / ReLU ----------------------------------------------------------------------------------


def activation_setup(dut, spec, in_step, out_step):
    """Program the unit for the scales; returns (setup coroutine, golden table/constants)."""
    sp = spec.nonlinear()
    if spec.function == "lut":
        table = gelu_table(in_step, out_step, sp, spec.out_bits)

        async def setup(ctx):
            ctx.set(dut.table_we, 1)
            for addr, value in enumerate(table):
                ctx.set(dut.table_addr, addr)
                ctx.set(dut.table_data, int(value))
                await ctx.tick()
            ctx.set(dut.table_we, 0)
        return setup, {"table": table}
    if spec.function == "poly":
        poly = gelu_poly_params(in_step, out_step, sp)

        async def setup(ctx):
            for name in ("b", "c", "one"):
                ctx.set(getattr(dut, name), getattr(poly, name))
            ctx.set(dut.mult, poly.out.mult)
            ctx.set(dut.shift, poly.out.shift)
        return setup, {"poly": poly}
    return None, {}


@pytest.mark.parametrize("function, in_bits, out_bits", [
    ("lut", 8, 16), ("lut", 10, 8), ("poly", 8, 16), ("poly", 12, 8), ("relu", 8, 16)])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_activation_exhaustive(function, in_bits, out_bits, idle, stall):
    spec = ActivationSpec(function, in_bits, out_bits, 16, "half_even")
    dut = Activation(spec)
    peak = 6.0
    in_step = peak / ((1 << (in_bits - 1)) - 1)
    out_step = peak / ((1 << (out_bits - 1)) - 1)
    setup, program = activation_setup(dut, spec, in_step, out_step)
    codes = np.arange(-(1 << (in_bits - 1)), 1 << (in_bits - 1))
    codes = np.random.default_rng(SEED).permutation(codes)
    run = run_stream(dut, [int(c) for c in codes], len(codes), idle=idle, stall=stall,
                     seed=SEED, setup=setup, unpack=int)
    assert run.results == activation_items(spec, codes, **program).tolist()
    _check_timing(run, spec.timing)


# -- LayerNorm ---------------------------------------------------------------------------------


def ln_case(spec, rng, rows):
    """Rows with corners among them (constant, extremes, one outlier channel), and fixed-point
    gamma/beta for an output step that fits the rows."""
    hi = 1 << (spec.in_bits - 1)
    data = []
    for k in range(rows):
        kind = k % 5
        if kind == 0:
            r = np.full(spec.d, int(rng.integers(-hi, hi)))
        elif kind == 1:
            r = rng.choice([-hi, hi - 1], spec.d)
        elif kind == 2:
            r = rng.normal(0, 50, spec.d).round()
            r[int(rng.integers(spec.d))] = hi - 1
        else:
            r = rng.integers(-hi, hi, spec.d) >> int(rng.integers(0, spec.in_bits))
        data.append(np.asarray(r, dtype=np.int64))
    gamma = rng.normal(1, 0.5, spec.d)
    beta = rng.normal(0, 0.5, spec.d)
    out_step = 8.0 / ((1 << (spec.out_bits - 1)) - 1)
    params = layer_norm_params(gamma, beta, out_step, spec.nonlinear)
    return np.stack(data), params


@pytest.mark.parametrize("d, out_bits, nl", [(32, 16, {}), (12, 8, {"recip_steps": 1}),
                                             (40, 16, {"rounding": "half_up"})])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_layer_norm(d, out_bits, nl, idle, stall):
    rounding = nl.pop("rounding", "half_even")
    spec = LayerNormSpec(d=d, in_bits=16, out_bits=out_bits, mult_bits=16, ln_frac_bits=10,
                         recip_bits=16, recip_seed_bits=4, recip_steps=nl.get("recip_steps", 2),
                         rounding=rounding)
    rows, params = ln_case(spec, np.random.default_rng(SEED), 12)
    dut = LayerNorm(spec)

    async def setup(ctx):
        ctx.set(dut.shift, params.shift)
        ctx.set(dut.param_we, 1)
        for i in range(d):
            ctx.set(dut.param_addr, i)
            ctx.set(dut.param_gamma, int(params.gamma[i]))
            ctx.set(dut.param_beta, int(params.beta[i]))
            await ctx.tick()
        ctx.set(dut.param_we, 0)

    items = [int(v) for v in rows.reshape(-1)]
    run = run_stream(dut, items, len(items), idle=idle, stall=stall, seed=SEED, setup=setup,
                     unpack=lambda p: (int(p.y), int(p.last)))
    want = layer_norm_rows(spec, rows, params.gamma, params.beta, params.shift).reshape(-1)
    got = np.array([y for y, _ in run.results])
    assert np.array_equal(got, want), np.nonzero(got != want)[0][:10]
    assert [last for _, last in run.results] == [int(i % d == d - 1) for i in range(len(items))]
    _check_timing(run, spec.timing)
