"""Fixtures of the cocotb benches: the simulators, one private work directory per test id, the
checks of a non-linear unit's run. (Designs and the build cache: tests/conftest.py; one build
per design and simulator, shared by pytest-xdist workers through a lock in
cimforge.verif.runner.)"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cimforge.verif.runner import coverage_requested
from cimforge.verif.simulators import SimulatorNotFound, find_simulator

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "build" / "runs"  # the work_dir fixture's parent
COVERAGE_REPORT = ROOT / "build" / "coverage"
_SESSION_START = time.time()


def pytest_sessionfinish(session, exitstatus):
    """With ``CIMFORGE_COVERAGE=1`` every Verilator bench of the session ran a coverage build:
    merge their counts per design and block into ``build/coverage/report.md`` (docs/
    verification.md, "Code coverage"). Once, in the controlling process under pytest-xdist."""
    if not coverage_requested() or hasattr(session.config, "workerinput"):
        return
    from cimforge.verif.coverage import collect

    runs = [d for d in RUNS.glob("*") if (d / "coverage.json").exists()
            and (d / "coverage.json").stat().st_mtime >= _SESSION_START]
    rows = collect(runs, COVERAGE_REPORT)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"coverage of {len(rows)} block run(s) of {len(runs)} bench run(s): "
                            f"{COVERAGE_REPORT / 'report.md'}")


@pytest.fixture(params=["verilator", "icarus"])
def simulator(request):
    try:
        return find_simulator(request.param)
    except SimulatorNotFound as e:
        if request.param == "verilator":
            raise  # a dependency of cimforge: its absence is an install error, not a skip
        pytest.skip(f"optional simulator missing: {e}")


@pytest.fixture
def work_dir(request, simulator) -> Path:
    safe = request.node.name.replace("/", "_").replace("[", "-").replace("]", "")
    d = RUNS / safe
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="session")
def check_unit_bench():
    """The checks of a non-linear unit's bench run: at least ``min_tests`` tests, every record
    clean, full-rate cycles as predicted (returns the full-rate records); with
    ``full_rate=True`` also one result per cycle once streaming."""

    def check(result, min_tests: int, full_rate: bool = False) -> list[dict]:
        names = {t.name for t in result.tests}
        assert len(result.tests) >= min_tests, names
        assert result.records and all(r["errors"] == 0 for r in result.records)
        full = [r for r in result.records if r["predicted_cycles"] is not None]
        assert full and all(r["cycles"] == r["predicted_cycles"] for r in full)
        if full_rate:
            rates = [r["utilisation"] for r in full if r["utilisation"] is not None]
            assert rates and all(r == 1.0 for r in rates)
        return full

    return check
