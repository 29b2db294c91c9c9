"""The requantiser: the cocotb bench on the generated Verilog, in Verilator and
Icarus."""

from cimforge.verif.runner import run_bench


def test_requant_bench(tiny_manifest, simulator, work_dir, cache_root, check_unit_bench):
    result = run_bench(tiny_manifest, "requant", simulator, work_dir=work_dir,
                       cache_root=cache_root)
    # one result per cycle once streaming (softmax and LayerNorm: rows of the maximum length)
    check_unit_bench(result, 6, full_rate=True)
