# amaranth: UnusedElaboratable=no
"""Shift-add unit in Amaranth's simulator against golden (fast; the cocotb bench covers the
generated Verilog)."""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import Fragment
from amaranth.sim import Simulator

from cimforge.golden.shift_add import (
    Beats,
    ShiftAddSpec,
    ShiftAddTiming,
    dot_product_beats,
    shift_add,
)
from cimforge.hw.shift_add import ShiftAdd


def small_spec(**kw):
    args = dict(lanes=3, adc_bits=4, input_bits=4, dac_bits=1, weight_slices=2,
                bits_per_cell=2, acc_bits=12, saturate=True)
    args.update(kw)
    return ShiftAddSpec(**args)


def test_rejects_non_spec():
    with pytest.raises(TypeError, match=r"spec must be a ShiftAddSpec, not 3"):
        ShiftAdd(3)


def test_signature_widths():
    spec = small_spec()
    dut = ShiftAdd(spec)
    assert len(dut.i_stream.payload.as_value()) == (
        spec.lanes * spec.adc_bits + spec.digit_bits + spec.slice_bits + 2  # + negative, last
    )
    assert len(dut.o_stream.payload.as_value()) == 3 * 12
    assert dut.latency == ShiftAddTiming().latency
    Fragment.get(dut, None)  # elaborates


def simulate(spec, beats, ready_pattern=None):
    """Drive beats at full rate; return (results, offered cycles, last-beat accept cycles,
    result transfer cycles)."""
    dut = ShiftAdd(spec)
    results, offered, accepts, taken = [], [], [], []
    n_results = int(beats.last.sum())

    async def bench(ctx):
        cycle = 0
        i = 0
        pending = False
        while len(results) < n_results:
            if i < len(beats):
                ctx.set(dut.i_stream.valid, 1)
                ctx.set(dut.i_stream.payload, {
                    "codes": beats.codes[i].tolist(), "digit": int(beats.digit[i]),
                    "slice": int(beats.slice[i]), "negative": int(beats.negative[i]),
                    "last": int(beats.last[i])})
            else:
                ctx.set(dut.i_stream.valid, 0)
            ready = 1 if ready_pattern is None else ready_pattern[cycle % len(ready_pattern)]
            ctx.set(dut.o_stream.ready, ready)
            out_valid = ctx.get(dut.o_stream.valid)
            if out_valid and not pending:
                offered.append(cycle)
                pending = True
            if out_valid and ready:
                results.append([int(v) for v in ctx.get(dut.o_stream.payload)])
                taken.append(cycle)
                pending = False
            if i < len(beats) and ctx.get(dut.i_stream.ready):
                if beats.last[i]:
                    accepts.append(cycle)
                i += 1
            await ctx.tick()
            cycle += 1
            assert cycle < 10 * len(beats) + 100, "timeout"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return np.array(results), offered, accepts, taken


@pytest.mark.parametrize("saturate", [True, False])
def test_random_against_golden(saturate):
    seed = 20261125
    rng = np.random.default_rng(seed)
    spec = small_spec(saturate=saturate)
    n = 300
    last = (rng.random(n) < 0.08).astype(np.int64)
    last[-1] = 1
    # mostly positive terms: running sums drift past the 12-bit accumulator's range
    beats = Beats(rng.integers(0, 16, (n, 3)), rng.integers(0, 4, n), rng.integers(0, 2, n),
                  (rng.random(n) < 0.2).astype(np.int64), last)
    got, offered, accepts, _ = simulate(spec, beats)
    want = shift_add(spec, beats)
    assert (got == want).all(), f"seed {seed}"
    unlimited = shift_add(dataclasses.replace(spec, acc_bits=40), beats)
    assert (want != unlimited).any(), "stimulus never reached the accumulator's limits"
    timing = ShiftAddTiming()
    assert offered == [a + timing.latency for a in accepts], f"seed {seed}"


def test_saturation_and_wrap_differ_from_exact():
    spec = small_spec(saturate=True)
    # 10 beats of +15 << 5 = 480 each: 4800 exceeds the 12-bit accumulator (max 2047)
    n = 12
    beats = Beats(np.full((n, 3), 15), np.full(n, 3), np.full(n, 1), np.r_[np.zeros(10), 1, 1],
                  np.r_[np.zeros(n - 1), 1].astype(np.int64))
    got, *_ = simulate(spec, beats)
    assert got.tolist() == shift_add(spec, beats).tolist() == [[2047 - 960] * 3]
    wrapped, *_ = simulate(small_spec(saturate=False), beats)
    exact = 10 * 480 - 2 * 480
    assert wrapped.tolist() == [[(exact + 2048) % 4096 - 2048] * 3]


def test_backpressure_timing():
    spec = small_spec()
    rng = np.random.default_rng(7)
    w = rng.integers(-8, 8, (9, 3))
    x = rng.integers(-8, 8, (6, 9))
    beats = dot_product_beats(spec, x, w, rows_per_read=3)
    got, offered, accepts, taken = simulate(spec, beats, ready_pattern=[1, 0, 0, 1, 0])
    assert (got == x @ w).all()
    timing = ShiftAddTiming()
    prev = [None, *taken[:-1]]
    assert offered == [timing.output_cycle(a, p) for a, p in zip(accepts, prev)]


@pytest.mark.parametrize("dac", [2, 3])
def test_multi_bit_dac_digits(dac):
    # digits of dac bits below the sign, then the sign bit weighing 2^(input_bits - 1)
    spec = small_spec(input_bits=8, dac_bits=dac, adc_bits=8, acc_bits=24)
    rng = np.random.default_rng(11 + dac)
    w = rng.integers(-8, 8, (9, 3))
    x = rng.integers(-128, 128, (6, 9))
    x[0] = -128
    beats = dot_product_beats(spec, x, w, rows_per_read=3)
    got, *_ = simulate(spec, beats)
    assert (got == x @ w).all()
