"""Shift-add unit: the cocotb bench on the generated Verilog, in Verilator and Icarus."""

from cimforge.verif.runner import run_bench


def test_shift_add_bench(tiny_manifest, simulator, work_dir, cache_root):
    result = run_bench(tiny_manifest, "shift_add", simulator, work_dir=work_dir,
                       cache_root=cache_root)
    # run_bench raises with the log on any failure; make sure the bench really ran its tests
    names = {t.name for t in result.tests}
    assert len(result.tests) >= 8, names
    assert all(t.passed for t in result.tests)
    assert all(r["errors"] == 0 for r in result.records) and result.records
