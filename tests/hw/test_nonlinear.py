# amaranth: UnusedElaboratable=no
"""Non-linear units in Amaranth's simulator against golden, bit- and cycle-exact (fast; the
cocotb benches cover the generated Verilog)."""

import dataclasses

import numpy as np
import pytest

from cimforge.config import load_config
from golden.nonlinear import (
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
    TokenQuantSpec,
    activation_items,
    layer_norm_rows,
    requant_item,
    token_quant_rows,
)
from hw.nonlinear import Activation, LayerNorm, Requantizer, Softmax, TokenQuantizer
from verif.amaranth_stream import run_stream
from verif.nonlinear_case import (
    activation_program,
    expected_requant,
    expected_softmax_beats,
    ln_case,
    requant_corners,
    requant_items,
    softmax_beats,
    softmax_case,
    token_rows,
)

SEED = 5
TINY = load_config("tiny")


def _check_timing(run, timing):
    """Acceptance, offer and take cycles of every item as the cycle model predicts them."""
    model = timing.schedule(run.offered_in, run.sink_ready)
    assert model.accepted == run.accepted
    assert model.offered == run.offered
    assert model.taken == run.taken


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


def _softmax_spec(lanes=1, max_len=8, rounding="half_even", **nl):
    cfg = load_config("tiny")
    cfg = dataclasses.replace(
        cfg, model=dataclasses.replace(cfg.model, seq_len=max_len),
        numerics=dataclasses.replace(cfg.numerics, rounding=rounding),
        nonlinear=dataclasses.replace(cfg.nonlinear, softmax_lanes=lanes, **nl))
    return SoftmaxSpec.from_config(cfg)


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


def activation_setup(dut, program: dict):
    """Program the unit in the simulator (the table, or the polynomial's constants)."""
    async def setup(ctx):
        if "table" in program:
            ctx.set(dut.table_we, 1)
            for addr, value in enumerate(program["table"]):
                ctx.set(dut.table_addr, addr)
                ctx.set(dut.table_data, int(value))
                await ctx.tick()
            ctx.set(dut.table_we, 0)
        if "poly" in program:
            poly = program["poly"]
            for name in ("b", "c", "one"):
                ctx.set(getattr(dut, name), getattr(poly, name))
            ctx.set(dut.mult, poly.out.mult)
            ctx.set(dut.shift, poly.out.shift)
    return setup


@pytest.mark.parametrize("function, in_bits, out_bits", [
    ("lut", 8, 16), ("lut", 10, 8), ("poly", 8, 16), ("poly", 12, 8), ("relu", 8, 16)])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_activation_exhaustive(function, in_bits, out_bits, idle, stall):
    spec = ActivationSpec(function, in_bits, out_bits, 16, "half_even")
    dut = Activation(spec)
    peak = 6.0
    in_step = peak / ((1 << (in_bits - 1)) - 1)
    out_step = peak / ((1 << (out_bits - 1)) - 1)
    program = activation_program(spec, in_step, out_step)
    setup = activation_setup(dut, program)
    codes = np.arange(-(1 << (in_bits - 1)), 1 << (in_bits - 1))
    codes = np.random.default_rng(SEED).permutation(codes)
    run = run_stream(dut, [int(c) for c in codes], len(codes), idle=idle, stall=stall,
                     seed=SEED, setup=setup, unpack=int)
    assert run.results == activation_items(spec, codes, **program).tolist()
    _check_timing(run, spec.timing)


# -- LayerNorm ---------------------------------------------------------------------------------


@pytest.mark.parametrize("d, out_bits, nl", [
    (32, 16, {}), (12, 8, {"recip_steps": 1}), (40, 16, {"rounding": "half_up"}),
    (20, 8, {"rounding": "floor"}),
    # other formats: a narrow residual with wide fractions, a 4-element row
    (64, 16, {"in_bits": 8, "recip_bits": 24, "ln_frac_bits": 20}),
    (4, 16, {"recip_bits": 20, "ln_frac_bits": 16, "mult_bits": 12}),
])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_layer_norm(d, out_bits, nl, idle, stall):
    fields = {"in_bits": 16, "mult_bits": 16, "ln_frac_bits": 10, "recip_bits": 16,
              "recip_seed_bits": 4, "recip_steps": 2, "rounding": "half_even", **nl}
    spec = LayerNormSpec(d=d, out_bits=out_bits, **fields)
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


def test_requantizer_corners():
    spec = RequantSpec.from_config(TINY)
    items = requant_corners(spec)
    run = run_stream(Requantizer(spec), items, len(items))
    assert run.results == expected_requant(spec, items)



# -- per-token scaling ------------------------------------------------------------------------


@pytest.mark.parametrize("d, in_bits, out_bits, rounding", [
    (32, 16, 8, "half_even"), (7, 12, 4, "half_up"), (16, 20, 8, "floor")])
@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.3, 0.6)])
def test_token_quantizer(d, in_bits, out_bits, rounding, idle, stall):
    spec = TokenQuantSpec(d=d, in_bits=in_bits, out_bits=out_bits, rounding=rounding)
    rows = token_rows(spec, np.random.default_rng(SEED), 15)
    items = [int(v) for v in rows.reshape(-1)]
    run = run_stream(TokenQuantizer(spec), items, len(items), idle=idle, stall=stall, seed=SEED,
                     unpack=lambda p: (int(p.q), int(p.exp), int(p.last)))
    q, e = token_quant_rows(spec, rows)
    want = [(int(v), int(e[i // d, 0]), int(i % d == d - 1))
            for i, v in enumerate(q.reshape(-1))]
    assert run.results == want
    assert len(set(e[:, 0])) > 2  # several exponents met
    _check_timing(run, spec.timing)
