"""``cimforge regress``: runs per (block, simulator, seed) on pytest-xdist workers, JUnit XML a
standard parser reads, one reproducing command per failure."""

import re
import shlex
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cimforge.cli import main
from cimforge.commands.regress import job_list, read_junit, seed_list

TINY_BLOCKS = str(Path(__file__).parents[1] / "data" / "configs" / "tiny-blocks.toml")


def _suite(junit: Path) -> ET.Element:
    root = ET.parse(junit).getroot()  # the standard library's XML parser
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    assert len(suites) == 1
    return suites[0]


@pytest.mark.parametrize("workers", [["--jobs", "1"], ["--jobs", "2"],
                                     ["--tx", "popen", "--tx", "popen"]],
                         ids=["in-process", "2-local", "2-execnet"])
def test_regress_passes_and_writes_junit(workers, tmp_path, capsys, cache_root):
    """In this process, on two pytest-xdist workers, and on two execnet gateways named as
    remote machines are (``popen`` here, ``ssh=host//python=...`` across machines)."""
    out = tmp_path / "reg"
    assert main(["regress", "--config", TINY_BLOCKS, "--blocks", "requant,activation",
                 "--seeds", "2", "--first-seed", "9", *workers, "--out", str(out),
                 "--build-cache", str(cache_root)]) == 0
    suite = _suite(out / "junit.xml")
    seeds = seed_list(2, 9)
    assert int(suite.get("tests")) == 4 and int(suite.get("failures")) == 0
    assert int(suite.get("errors")) == 0 and int(suite.get("skipped", 0)) == 0
    names = sorted(c.get("name") for c in suite.iter("testcase"))
    assert names == sorted(f"test_bench[{b}-verilator-seed{s}]" for s in seeds
                           for b in ("requant", "activation"))
    # each run used its seed: cocotb's log in the run's folder says so
    for s in seeds:
        log = (out / "runs" / f"requant-verilator-seed{s}" / "sim.log").read_text()
        assert re.search(rf"[Ss]eeding Python random module with {s}\b", log)
    assert "4 of 4 run(s) passed" in (out / "report.md").read_text()
    assert "4 of 4 run(s) passed" in capsys.readouterr().out


def test_regress_failure_names_the_command_that_reproduces_it(tiny_manifest, tmp_path, capsys,
                                                              cache_root, mutated_design):
    # lane 0's positive saturation one below the limit: only the saturation test sees it
    bad = mutated_design(tiny_manifest, tmp_path / "rtl", r"\? 33'h07fffffff :",
                         "? 33'h07ffffffe :").parent
    out = tmp_path / "reg"
    assert main(["regress", "--rtl", str(bad), "--blocks", "shift_add", "--seed", "5",
                 "--jobs", "1", "--out", str(out), "--build-cache", str(cache_root)]) == 1
    suite = _suite(out / "junit.xml")
    assert int(suite.get("tests")) == 1 and int(suite.get("failures")) == 1
    message = read_junit(out / "junit.xml")[0]["message"]
    again = (f"cimforge regress --rtl {bad} --blocks shift_add --sim verilator --seed 5 "
             "--jobs 1 --test saturation")
    assert f"reproduce: {again}" in message, message
    assert f"reproduce: {again}" in capsys.readouterr().out
    report = (out / "report.md").read_text()
    assert "0 of 1 run(s) passed" in report and again in report
    # the command does reproduce it, alone
    out2 = tmp_path / "again"
    assert main([*shlex.split(again)[1:], "--out", str(out2),
                 "--build-cache", str(cache_root)]) == 1
    (case,) = read_junit(out2 / "junit.xml")
    assert case["outcome"] == "failed" and "1 of 1 test(s) failed" in case["message"]
    assert "saturation" in case["message"]


def test_seeds_and_jobs():
    assert seed_list(3, 1) == seed_list(3, 1) and len(set(seed_list(50, 1))) == 50
    assert seed_list(3, 1) != seed_list(3, 2)
    manifest = {"blocks": {"a": {"bench": "x"}, "b": {"bench": None},
                           "acc": {"bench": "y", "flow_simulators": ["verilator"]}}}
    assert job_list(manifest, None, ["verilator", "icarus"], [5]) == [
        ("a", "verilator", 5), ("a", "icarus", 5), ("acc", "verilator", 5)]
    assert job_list(manifest, ["acc"], ["icarus"], [5, 6]) == []


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "--seeds 0: must be an integer in [1, 10000]"),
    (["--seed", "1,x"], "--seed '1,x': must be a comma-separated list of integers"),
    (["--jobs", "0"], "--jobs 0: must be an integer in [1, 256]"),
    (["--rtl", "nowhere"], "--rtl 'nowhere': no manifest.json"),
])
def test_bad_arguments(argv, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["regress", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cimforge regress: error: ") and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_read_junit(tmp_path):
    path = tmp_path / "j.xml"
    path.write_text('<testsuites><testsuite tests="2"><testcase name="a" time="1.5"/>'
                    '<testcase name="b"><failure message="m">boom\n  reproduce: x</failure>'
                    "</testcase></testsuite></testsuites>")
    assert read_junit(path) == [
        {"name": "a", "time": 1.5, "outcome": "passed", "message": ""},
        {"name": "b", "time": 0.0, "outcome": "failed", "message": "boom\n  reproduce: x"}]
