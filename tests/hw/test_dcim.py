# amaranth: UnusedElaboratable=no
"""Digital-CIM macro in Amaranth's simulator against golden (fast; the cocotb bench covers the
generated Verilog)."""


import numpy as np
import pytest

from cimforge.config import load_config
from cimforge.golden.dcim import SCORES, WEIGHTED, DcimCommand, DcimSpec, DcimTiming, bit_serial
from cimforge.hw.dcim import DigitalCim
from cimforge.verif.amaranth_stream import run_stream
from cimforge.verif.dcim_case import attention_commands, expected_results, random_commands

TINY = DcimSpec.from_config(load_config("tiny"))


def simulate(spec, commands, *, idle=0.0, stall=0.0, seed=0, computes=(SCORES, WEIGHTED)):
    """Drive ``commands``; the run's results and every transfer's cycle."""
    items = [{"op": c.op, "addr": c.addr, "data": c.wire_data(spec.bits)} for c in commands]
    return run_stream(DigitalCim(spec, computes), items, sum(c.computes for c in commands),
                      idle=idle, stall=stall, seed=seed,
                      unpack=lambda p: {"data": [int(v) for v in p.data],
                                        "weighted": int(p.weighted), "tokens": int(p.tokens)})


def check(spec, commands, computes=(SCORES, WEIGHTED), **kw):
    """Results and every transfer's cycle against golden; a compute op the macro is built
    without (``computes``) returns zeros."""
    got = simulate(spec, commands, computes=computes, **kw)
    expected = expected_results(spec, commands)
    for r in expected:
        if (WEIGHTED if r["weighted"] else SCORES) not in computes:
            r["data"] = [0] * len(r["data"])
    assert got.results == expected
    model = DcimTiming(spec).schedule(commands, got.offered_in, got.sink_ready)
    assert got.accepted == model.accepted
    assert got.offered == model.offered
    assert got.taken == model.taken
    return got


def test_spec_refuses_inexact_outputs():
    with pytest.raises(ValueError, match=r"acc_bits must be at least 22 to hold every exact "
                                         r"result of 64 products"):
        DcimSpec(rows=64, cols=8, bits=8, acc_bits=20)
    with pytest.raises(TypeError, match=r"spec must be a DcimSpec, not 3"):
        DigitalCim(3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bit_serial_is_the_integer_product(seed):
    rng = np.random.default_rng(seed)
    m = rng.integers(-128, 128, (5, 7))
    m[0] = -128
    q = rng.integers(-128, 128, 7)
    a = rng.integers(-128, 128, 5)
    q[0] = a[0] = -128
    assert (bit_serial(m, q, 8, axis=1) == m @ q).all()
    assert (bit_serial(m, a, 8, axis=0) == a @ m).all()
    p = rng.integers(0, 256, 5)  # unsigned (WEIGHTED's probabilities)
    p[0] = 255
    assert (bit_serial(m, p, 8, axis=0, signed_input=False) == p @ m).all()


def test_attention_uses_and_kv_append():
    rng = np.random.default_rng(7)
    cmds = attention_commands(TINY, rng, tokens=TINY.rows + 3)  # the cache wraps
    got = check(TINY, cmds)
    tokens = [r["tokens"] for r in got.results if not r["weighted"]]
    assert tokens[:3] == [1, 2, 3] and tokens[-1] == TINY.rows


@pytest.mark.parametrize("idle, stall", [(0.0, 0.0), (0.4, 0.0), (0.0, 0.7), (0.3, 0.9)])
def test_random_commands_under_flow_control(idle, stall):
    rng = np.random.default_rng(11)
    check(TINY, random_commands(TINY, rng, 60), idle=idle, stall=stall, seed=3)


@pytest.mark.parametrize("computes", [(SCORES,), (WEIGHTED,)])
def test_one_compute_op_macro(computes):
    """The accelerator's K and V macros: one op's adder trees; the other op returns zeros, in
    the same cycles."""
    rng = np.random.default_rng(13)
    cmds = random_commands(TINY, rng, 60)
    got = check(TINY, cmds, computes, idle=0.2, stall=0.3, seed=4)
    ops = [bool(r["weighted"]) for r in got.results]
    assert set(ops) == {False, True}  # both ops ran: SCORES and WEIGHTED results
    assert any(any(r["data"]) for r in got.results)  # the supported one computed
    with pytest.raises(ValueError, match=r"computes must be SCORES \(2\), WEIGHTED \(3\) or "
                                         r"both, not \(\)"):
        DigitalCim(TINY, ())


def test_back_to_back_computes_at_full_rate():
    spec = DcimSpec(rows=4, cols=6, bits=8, acc_bits=32)
    rng = np.random.default_rng(5)
    cmds = [DcimCommand(SCORES, tuple(int(v) for v in rng.integers(-128, 128, 6)))
            for _ in range(8)]
    got = check(spec, cmds)
    assert [b - a for a, b in zip(got.accepted, got.accepted[1:])] == [spec.bits] * 7
    assert got.offered[0] - got.accepted[0] == DcimTiming(spec).latency
