"""The benches must fail, loudly and with their seed, on a wrong design."""


import pytest

from cimforge.verif.runner import BenchFailure, run_bench
from cimforge.verif.simulators import SimulatorNotFound, find_icarus, find_verilator


def quick_simulator():
    """Icarus builds instantly; Verilator when Icarus is not installed."""
    try:
        return find_icarus()
    except SimulatorNotFound:
        return find_verilator()


@pytest.mark.parametrize(
    "pattern, new, occurrence, testcase, symptom",
    [
        # positive saturation of lane 0 one below the limit: only the saturation test sees it
        (r"\? 33'h07fffffff :", "? 33'h07ffffffe :", 0, "saturation",
         r"saturation\[full_rate\]: \d+ mismatch.*result 0: expected \[2147483647"),
        # accumulator of lane 1 not cleared after a result: every multi-vector test sees it
        (r"s1_last \? 32'd0 : (\\\$\d+ \[31:0\])", r"\1", 1, "random_vectors/pattern=0",
         r"random_vectors"),
        # the pipeline ignores the sink's ready: a result is offered again and again
        (r"(assign i_stream__ready = \\\$\d+ ) \| o_stream__ready;", r"\1;", 0,
         "random_vectors/pattern=0",
         r"random_vectors\[full_rate\]: \d+ mismatch.*results received: expected 40, got \d+"),
    ],
    ids=["saturation", "no_clear", "ready_ignores_sink"],
)
def test_mutant_fails_with_seed_and_log(tiny_manifest, tmp_path, cache_root, mutated_design,
                                        pattern, new, occurrence, testcase, symptom):
    """Only the test the symptom names runs: a mutant that loses results makes a test wait
    for its whole timeout, and one timeout is enough."""
    manifest = mutated_design(tiny_manifest, tmp_path / "rtl", pattern, new, occurrence)
    with pytest.raises(BenchFailure, match=symptom) as info:
        run_bench(manifest, "shift_add", quick_simulator(), work_dir=tmp_path / "run",
                  cache_root=cache_root, testcase=testcase)
    message = str(info.value)
    assert "rerun with COCOTB_RANDOM_SEED=" in message
    assert "sim.log (tail)" in message


@pytest.mark.parametrize(
    "block, pattern, new, testcase, symptom",
    [
        # int8 saturation after the residual add one short: the corners see it
        ("requant", r"rq_out_a_k\[9\] \? 8'h80 : 8'h7f;", "rq_out_a_k[9] ? 8'h80 : 8'h7e;",
         "corners",
         r"corners\[full_rate\]: \d+ mismatch"),
        # one entry of the 2^fraction table off by 2 (its LSB never shows: every exponent
        # with a fraction is also shifted right at least once): too small to move a
        # probability reliably, the exp probe of the exhaustive test sees it
        ("softmax", r"exp_rom\[77\] = 16'h9dac;", "exp_rom[77] = 16'h9dae;", "exp_exhaustive",
         r"exp_exhaustive\[full_rate\]: 1 mismatch.*exp beat \d+: expected"),
        # the square root's compare starting 22 bits too low (it takes V's bit pairs from 22
        # bits below their place): wrong roots
        ("layernorm", r"\{ rem, vsh\[39:38\] \} - \{ root, 2'h1 \}",
         "{ rem, vsh[17:16] } - { root, 2'h1 }", "rows/pattern=0",
         r"rows\[full_rate\]: \d+ mismatch"),
    ],
    ids=["requant_saturation", "softmax_exp_entry", "layernorm_sqrt"],
)
def test_nonlinear_mutant_fails(tiny_manifest, tmp_path, cache_root, mutated_design, block,
                                pattern, new, testcase, symptom):
    manifest = mutated_design(tiny_manifest, tmp_path / "rtl", pattern, new, 0, block)
    with pytest.raises(BenchFailure, match=symptom) as info:
        run_bench(manifest, block, quick_simulator(), work_dir=tmp_path / "run",
                  cache_root=cache_root, testcase=testcase)
    assert "rerun with COCOTB_RANDOM_SEED=" in str(info.value)
