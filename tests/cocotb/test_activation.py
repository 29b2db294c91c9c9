"""The activation unit: the cocotb bench on the generated Verilog, in Verilator and
Icarus, on ``tiny`` and on ``nonlinear-poly`` (tests/data/configs: the other methods)."""

import pytest

from cimforge.verif.runner import run_bench


def test_activation_bench(tiny_manifest, simulator, work_dir, cache_root, check_unit_bench):
    result = run_bench(tiny_manifest, "activation", simulator, work_dir=work_dir,
                       cache_root=cache_root)
    # one result per cycle once streaming (softmax and LayerNorm: rows of the maximum length)
    check_unit_bench(result, 6, full_rate=True)


# the other methods in Icarus only under -m full (Verilator covers them by default)
@pytest.mark.parametrize("simulator", ["verilator", pytest.param("icarus", marks=pytest.mark.full)],
                         indirect=True)
def test_activation_bench_other_methods(design_manifest, simulator, work_dir, cache_root,
                                 check_unit_bench):
    result = run_bench(design_manifest("nonlinear-poly"), "activation", simulator,
                       work_dir=work_dir, cache_root=cache_root)
    check_unit_bench(result, 6)
