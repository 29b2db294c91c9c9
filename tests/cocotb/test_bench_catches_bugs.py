"""The shift-add bench must fail, loudly and with its seed, on a wrong design."""

import json
import shutil

import pytest

from verif.runner import BenchFailure, run_bench
from verif.simulators import SimulatorNotFound, find_icarus, find_verilator


def quick_simulator():
    """Icarus builds instantly; Verilator when Icarus is not installed."""
    try:
        return find_icarus()
    except SimulatorNotFound:
        return find_verilator()


def mutated_design(tiny_manifest, tmp_path, old, new):
    out = tmp_path / "rtl"
    shutil.copytree(tiny_manifest.parent, out, ignore=shutil.ignore_patterns(".lock"))
    manifest = json.loads((out / "manifest.json").read_text())
    v = out / manifest["blocks"]["shift_add"]["file"]
    text = v.read_text()
    assert text.count(old) == 1, "mutation site not found: has the generated Verilog changed?"
    v.write_text(text.replace(old, new))
    return out / "manifest.json"


@pytest.mark.parametrize(
    "old, new, symptom",
    [
        # positive saturation of lane 0 one below the limit: only the saturation test sees it
        ("\\$5  ? 33'h07fffffff : \\$7 ;", "\\$5  ? 33'h07ffffffe : \\$7 ;",
         r"saturation\[full_rate\]: \d+ mismatch.*result 0: expected \[2147483647"),
        # accumulator of lane 1 not cleared after a result: every multi-vector test sees it
        ("s1_last ? 32'd0 : \\$12 [31:0]", "\\$12 [31:0]", r"random_vectors"),
        # the pipeline ignores the sink's ready: a result is offered again and again
        ("assign i_stream__ready = \\$1  | o_stream__ready;", "assign i_stream__ready = \\$1 ;",
         r"random_vectors\[full_rate\]: \d+ mismatch.*results received: expected 40, got \d+"),
    ],
    ids=["saturation", "no_clear", "ready_ignores_sink"],
)
def test_mutant_fails_with_seed_and_log(tiny_manifest, tmp_path, cache_root, old, new, symptom):
    manifest = mutated_design(tiny_manifest, tmp_path, old, new)
    with pytest.raises(BenchFailure, match=symptom) as info:
        run_bench(manifest, "shift_add", quick_simulator(), work_dir=tmp_path / "run",
                  cache_root=cache_root)
    message = str(info.value)
    assert "rerun with COCOTB_RANDOM_SEED=" in message
    assert "sim.log (tail)" in message
