"""Digital-CIM macro: the cocotb bench on the generated Verilog, in Verilator and Icarus."""

from cimforge.verif.runner import run_bench


def test_dcim_bench(tiny_manifest, simulator, work_dir, cache_root):
    result = run_bench(tiny_manifest, "dcim", simulator, work_dir=work_dir,
                       cache_root=cache_root)
    names = {t.name for t in result.tests}
    assert len(result.tests) >= 6, names
    assert all(r["errors"] == 0 for r in result.records) and result.records
    assert any(r["predicted_cycles"] for r in result.records)
