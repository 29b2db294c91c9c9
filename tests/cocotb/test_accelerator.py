"""The whole accelerator: the cocotb bench on the generated Verilog, driven through its AXI
ports (``tiny``: every layer of its encoder; ``tiny-decoder``: a prefill and decode steps).

Verilator runs every test by default; Icarus runs ``tiny``'s ideal test by default (weights
programmed, one 8-token sequence: about 2.5 minutes) and every test, ``tiny-decoder``'s too,
under ``-m full`` (docs/hw-accelerator.md, "Simulation speed")."""

import pytest

from cimforge.verif.runner import run_bench

ALL = None
IDEAL = "ideal_equals_integer_model"
CASES = [
    pytest.param("tiny", "verilator", ALL, id="tiny-verilator"),
    pytest.param("tiny", "icarus", IDEAL, id="tiny-icarus-ideal"),
    pytest.param("tiny", "icarus", ALL, id="tiny-icarus", marks=pytest.mark.full),
    # generation: a prompt, then token by token on the K and V cache
    pytest.param("tiny-decoder", "verilator", ALL, id="tiny-decoder-verilator"),
    # (Icarus: about 3 minutes for the ideal test's 9 runs, 10 for all five tests)
    pytest.param("tiny-decoder", "icarus", ALL, id="tiny-decoder-icarus",
                 marks=pytest.mark.full),
    # two layers chaining (a 4.7 MB design)
    pytest.param("tiny-2layer", "verilator", ALL, id="tiny-2layer-verilator",
                 marks=pytest.mark.full),
    pytest.param("tiny-2layer", "icarus", IDEAL, id="tiny-2layer-icarus-ideal",
                 marks=pytest.mark.full),
    # the real layer 0 of all-MiniLM-L6-v2 on a reference sentence: programmed once, ideal
    # then every effect under each flow pattern (docs/hw-accelerator.md, "minilm-layer")
    pytest.param("minilm-layer", "verilator", [IDEAL, "all_effects"],
                 id="minilm-layer-verilator", marks=pytest.mark.full),
]


@pytest.mark.parametrize("design, simulator, testcase", CASES, indirect=["simulator"])
def test_accelerator_bench(design_manifest, design, simulator, testcase, work_dir, cache_root):
    result = run_bench(design_manifest(design), "accelerator_sim", simulator,
                       work_dir=work_dir, cache_root=cache_root, testcase=testcase)
    names = {t.name for t in result.tests}
    assert len(result.tests) >= (1 if testcase else 4), names
    assert result.records and all(r["errors"] == 0 for r in result.records)
    runs = [r for r in result.records if r.get("phase") != "program"]
    assert runs and all(r["cycles"] == r["predicted_cycles"] for r in runs)
