"""Non-linear units: the cocotb benches on the generated Verilog, in Verilator and Icarus.

``tiny`` has the default units (GELU table, exp table); ``nonlinear-poly`` the other choices
(exp and GELU polynomials, 2 softmax lanes, one Newton-Raphson step, static per-tensor
scales: int8 LayerNorm output, half-up rounding)."""

import pytest

from verif.runner import run_bench

MIN_TESTS = {"requant": 6, "activation": 6, "softmax": 7, "layernorm": 6, "token_quant": 6}


def _check(result, block):
    names = {t.name for t in result.tests}
    assert len(result.tests) >= MIN_TESTS[block], names
    assert result.records and all(r["errors"] == 0 for r in result.records)
    full = [r for r in result.records if r["predicted_cycles"] is not None]
    assert full and all(r["cycles"] == r["predicted_cycles"] for r in full)
    return full


@pytest.mark.parametrize("block", list(MIN_TESTS))
def test_nonlinear_bench(tiny_manifest, block, simulator, work_dir, cache_root):
    result = run_bench(tiny_manifest, block, simulator, work_dir=work_dir, cache_root=cache_root)
    full = _check(result, block)
    # one result per cycle once streaming (softmax and LayerNorm: rows of the maximum length)
    rates = [r["utilisation"] for r in full if r["utilisation"] is not None]
    assert rates and all(r == 1.0 for r in rates)


@pytest.mark.parametrize("block", ["activation", "softmax", "layernorm"])
def test_nonlinear_bench_other_methods(design_manifest, block, simulator, work_dir,
                                       cache_root):
    result = run_bench(design_manifest("nonlinear-poly"), block, simulator, work_dir=work_dir,
                       cache_root=cache_root)
    _check(result, block)
