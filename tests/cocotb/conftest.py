"""Shared fixtures for the cocotb benches: one generated design per config, one build per
(design, simulator) -- shared by pytest-xdist workers through a lock in
cimforge.verif.runner -- and one private work directory per test id."""

from __future__ import annotations

from pathlib import Path

import pytest

from cimforge.config import load_config
from cimforge.files import locked
from cimforge.hw.generate import generate
from cimforge.verif.simulators import SimulatorNotFound, find_simulator

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "pytest-sim"


def generated(config: str) -> Path:
    """Generate ``config`` once (per digest) and return its manifest path."""
    cfg = load_config(config)
    out = CACHE / "designs" / f"{cfg.name}-{cfg.digest()[:12]}"
    out.mkdir(parents=True, exist_ok=True)
    with locked(out / ".lock"):
        manifest = out / "manifest.json"
        # always regenerate: it is cheap, and keeps the design current with hw/ edits; the
        # simulator build is cached by the Verilog's content hash, so it still builds once
        generate(cfg, out, source=config)
    return manifest


@pytest.fixture(scope="session")
def tiny_manifest() -> Path:
    return generated("tiny")


DESIGNS = Path(__file__).resolve().parents[1] / "data" / "configs"


@pytest.fixture(scope="session")
def design_manifest():
    """Generated design of a preset or of ``tests/data/configs/<name>.toml``."""

    def get(name: str) -> Path:
        path = DESIGNS / f"{name}.toml"
        return generated(str(path) if path.exists() else name)

    return get


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
    d = CACHE / "runs" / safe
    d.mkdir(parents=True, exist_ok=True)
    return d


@pytest.fixture(scope="session")
def cache_root() -> Path:
    return CACHE / "builds"


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
