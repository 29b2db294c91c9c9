# amaranth: UnusedElaboratable=no
"""The pipelined forms of hw/numerics.py against the functions they cut (golden
:mod:`cimforge.golden.numerics`), in Amaranth's simulator: every value at small widths, random
ones at wide widths, and the widths where an operand has no bits above the result's."""

import itertools

import numpy as np
import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from cimforge.golden.numerics import round_shift_var as golden_round_shift_var
from cimforge.golden.numerics import saturate
from cimforge.hw.numerics import (
    carry_save_sum,
    clamp_shift,
    partial_products,
    round_shift_var_staged,
    saturate_add,
    saturate_sum,
    saturate_sum_unsigned,
)


def _check(m: Module, inputs: list[Signal], out, cases, expect) -> None:
    """Drive ``inputs`` with each tuple of ``cases`` and compare ``out`` with ``expect(*case)``
    (combinational logic: a testbench sees settled values)."""
    sim = Simulator(m)
    bad = []

    async def bench(ctx):
        for case in cases:
            for sig, v in zip(inputs, case, strict=True):
                ctx.set(sig, v)
            got, want = ctx.get(out), int(expect(*case))
            if got != want:
                bad.append((case, got, want))

    sim.add_testbench(bench)
    sim.run()
    assert bad == [], bad[:10]


def _range(bits: int, is_signed: bool = True) -> range:
    return range(-(1 << (bits - 1)), 1 << (bits - 1)) if is_signed else range(1 << bits)


def _random(rng, bits: int, n: int, is_signed: bool = True) -> list[int]:
    r = _range(bits, is_signed)
    return [int(v) >> int(s) for v, s in zip(rng.integers(r.start, r.stop, n),
                                             rng.integers(0, bits, n), strict=True)]


@pytest.mark.parametrize("wa, wb, bits", [(5, 5, 4), (5, 3, 4), (3, 5, 4), (3, 3, 5),
                                          (6, 4, 2), (4, 4, 4), (2, 6, 3)])
def test_saturate_add_every_value(wa, wb, bits):
    m = Module()
    a, b = Signal(signed(wa)), Signal(signed(wb))
    out = saturate_add(m, a, b, bits, "out")
    _check(m, [a, b], out, itertools.product(_range(wa), _range(wb)),
           lambda x, y: saturate(x + y, bits))


@pytest.mark.parametrize("wa, wb, bits", [(47, 41, 42), (16, 16, 8), (16, 16, 16),
                                          (30, 12, 20)])
def test_saturate_add_wide(wa, wb, bits):
    rng = np.random.default_rng(1)
    m = Module()
    a, b = Signal(signed(wa)), Signal(signed(wb))
    out = saturate_add(m, a, b, bits, "out")
    cases = list(zip(_random(rng, wa, 3000), _random(rng, wb, 3000), strict=True))
    cases += [(x, y) for x in (-(1 << (wa - 1)), (1 << (wa - 1)) - 1, 0, -1)
              for y in (-(1 << (wb - 1)), (1 << (wb - 1)) - 1, 0, -1)]
    _check(m, [a, b], out, cases, lambda x, y: saturate(x + y, bits))


@pytest.mark.parametrize("wq, bits", [(6, 3), (6, 5), (5, 2), (4, 4), (4, 6)])
def test_saturate_sum_every_value(wq, bits):
    m = Module()
    q, up = Signal(signed(wq)), Signal()
    out = saturate_sum(m, q, up, bits, "out")
    _check(m, [q, up], out, itertools.product(_range(wq), (0, 1)),
           lambda x, u: saturate(x + u, bits))


@pytest.mark.parametrize("wa, wb, b_signed", [(42, 16, False), (9, 5, False), (20, 7, True),
                                              (17, 16, False), (35, 3, True)])
def test_partial_products_carry_save_sum(wa, wb, b_signed):
    rng = np.random.default_rng(2)
    m = Module()
    a, b = Signal(signed(wa)), Signal(signed(wb) if b_signed else unsigned(wb))
    bits = wa + wb
    out = carry_save_sum(m, [p << off for off, p in partial_products(a, b, 4)], bits, "out")
    cases = list(zip(_random(rng, wa, 2000), _random(rng, wb, 2000, b_signed), strict=True))
    cases += list(itertools.product((-(1 << (wa - 1)), (1 << (wa - 1)) - 1, 0, -1, 1),
                                    ((1 << (wb - 1)) - 1, 0, 1,
                                     -(1 << (wb - 1)) if b_signed else (1 << wb) - 1)))
    _check(m, [a, b], out, cases, lambda x, y: x * y)


@pytest.mark.parametrize("mode", ["half_even", "half_up", "floor"])
@pytest.mark.parametrize("width, shift_bits, fine_bits", [
    (6, 3, None), (5, 3, None), (7, 4, None), (4, 1, None),
    # the shift's low bits after the stage: one, all of them, and fewer than half
    (6, 3, 1), (6, 3, 3), (9, 4, 4), (9, 4, 1)])
def test_round_shift_var_staged_every_value(mode, width, shift_bits, fine_bits):
    m = Module()
    value, shift = Signal(signed(width)), Signal(unsigned(shift_bits))
    sc = clamp_shift(m, shift, width, "sc")
    q, up, _ = round_shift_var_staged(m, lambda d: d, value, sc, mode, "r", {},
                                      fine_bits=fine_bits)
    out = Signal(signed(width + 1))
    m.d.comb += out.eq(q + up)
    _check(m, [value, shift], out, itertools.product(_range(width), range(1 << shift_bits)),
           lambda v, s: golden_round_shift_var(v, s, mode))


@pytest.mark.parametrize("mode", ["half_even", "half_up", "floor"])
@pytest.mark.parametrize("fine_bits", [None, 2])
def test_round_shift_var_staged_wide(mode, fine_bits):
    rng = np.random.default_rng(3)
    width = 58
    m = Module()
    value, shift = Signal(signed(width)), Signal(unsigned(6))
    sc = clamp_shift(m, shift, width, "sc")
    q, up, _ = round_shift_var_staged(m, lambda d: d, value, sc, mode, "r", {},
                                      fine_bits=fine_bits)
    out = Signal(signed(width + 1))
    m.d.comb += out.eq(q + up)
    cases = list(zip(_random(rng, width, 3000), (int(s) for s in rng.integers(0, 64, 3000)),
                     strict=True))
    # exact halves, just above and below, at every shift
    for s in range(1, 64):
        for base in (-3, -2, -1, 0, 1, 2):
            for d in (-1, 0, 1):
                v = (base << s) + (1 << (s - 1)) + d
                if -(1 << (width - 1)) <= v < (1 << (width - 1)):
                    cases.append((v, s))
    cases += [(v, s) for v in (-(1 << (width - 1)), (1 << (width - 1)) - 1) for s in range(64)]
    _check(m, [value, shift], out, cases, lambda v, s: golden_round_shift_var(v, s, mode))


@pytest.mark.parametrize("wq, bits, q_signed", [(6, 3, True), (6, 5, True), (4, 4, True),
                                                (4, 6, True), (3, 2, True), (5, 3, False),
                                                (3, 3, False), (2, 4, False)])
def test_saturate_sum_unsigned_every_value(wq, bits, q_signed):
    m = Module()
    q, up = Signal(signed(wq) if q_signed else unsigned(wq)), Signal()
    out = saturate_sum_unsigned(m, q, up, bits, "out")
    _check(m, [q, up], out, itertools.product(_range(wq, q_signed), (0, 1)),
           lambda x, u: min(max(x + u, 0), (1 << bits) - 1))


def test_saturate_sum_unsigned_wide():
    rng = np.random.default_rng(4)
    wq, bits = 42, 8
    m = Module()
    q, up = Signal(signed(wq)), Signal()
    out = saturate_sum_unsigned(m, q, up, bits, "out")
    cases = list(zip(_random(rng, wq, 3000), (int(u) for u in rng.integers(0, 2, 3000)),
                     strict=True))
    cases += [(v, u) for v in (-(1 << (wq - 1)), (1 << (wq - 1)) - 1, -1, 0, 1, 254, 255, 256,
                               511, 512) for u in (0, 1)]
    _check(m, [q, up], out, cases, lambda x, u: min(max(x + u, 0), (1 << bits) - 1))


@pytest.mark.parametrize("fine_bits", [0, 4])
def test_round_shift_var_staged_refuses_fine_bits_outside_the_shift(fine_bits):
    m = Module()
    value, shift = Signal(signed(8)), Signal(unsigned(3))
    with pytest.raises(ValueError, match=rf"^fine_bits must be in 1\.\.3 \(the shift's bits\), "
                                         rf"not {fine_bits}$"):
        round_shift_var_staged(m, lambda d: d, value, shift, "half_even", "r", {},
                               fine_bits=fine_bits)
