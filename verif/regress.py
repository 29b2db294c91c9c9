"""``cimforge regress``'s engine: a pytest plugin that makes one test item per (block,
simulator, seed) of a design and runs each bench through :func:`~cimforge.verif.runner.run_bench`.

Why pytest: pytest-xdist spreads the items over workers, on this machine (``-n J``) or on
others over execnet (``--tx ssh=host//python=...``), and pytest writes the JUnit XML CI
systems read; cimforge schedules nothing itself. Every option reaches the workers through
pytest's own configuration (xdist sends it to each worker), the config as JSON, so a worker
on another machine needs only cimforge installed: it generates the design itself when the
manifest's path does not exist there (generation is byte-for-byte reproducible).

The test module the command collects is :mod:`cimforge.verif.regress_test`.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

__all__ = ["reproduce_command", "run_job"]


def pytest_addoption(parser):
    g = parser.getgroup("cimforge regress")
    g.addoption("--regress-config",
                help="the config as JSON: {name, source, values, design (its CLI arguments)}")
    g.addoption("--regress-manifest", help="the generated design's manifest.json")
    g.addoption("--regress-jobs", help="JSON list of [block, simulator, seed]")
    g.addoption("--regress-test", default=None, help="one cocotb test of each bench")
    g.addoption("--regress-runs", help="folder of the runs (one per job)")
    g.addoption("--regress-build-cache", help="simulator build cache")
    g.addoption("--regress-coverage", action="store_true", help="coverage builds")


def pytest_generate_tests(metafunc):
    if "job" in metafunc.fixturenames:
        jobs = json.loads(metafunc.config.getoption("regress_jobs") or "[]")
        metafunc.parametrize("job", [tuple(j) for j in jobs],
                             ids=[f"{b}-{s}-seed{seed}" for b, s, seed in jobs])


def reproduce_command(design: list[str], block: str, simulator: str, seed: int,
                      test: str | None = None) -> str:
    """The one command that runs ``block``'s bench (or one of its tests) again, alone;
    ``design`` names the design as the regression was given it (``["--config", X]`` or
    ``["--rtl", DIR]``)."""
    argv = ["cimforge", "regress", *design, "--blocks", block, "--sim", simulator,
            "--seed", str(seed), "--jobs", "1"]
    if test:
        argv += ["--test", test]
    return shlex.join(argv)


def _manifest(config) -> Path:
    from cimforge.config import config_from_dict
    from cimforge.files import locked
    from cimforge.hw.generate import generate

    manifest = Path(config.getoption("regress_manifest"))
    if not manifest.exists():  # a worker on another machine: generate it here
        spec = json.loads(config.getoption("regress_config"))
        cfg = config_from_dict(spec["values"], spec["source"], spec["name"])
        with locked(manifest.parent.with_suffix(".lock")):
            if not manifest.exists():
                generate(cfg, manifest.parent, source=spec["source"])
    return manifest


def run_job(job: tuple[str, str, int], config) -> None:
    """Run one job's bench; a failure fails the item with each failing test and the command
    that reproduces it."""
    from cimforge.verif.runner import run_bench
    from cimforge.verif.simulators import find_simulator

    block, simulator, seed = job
    spec = json.loads(config.getoption("regress_config"))
    manifest = _manifest(config)
    entry = json.loads(manifest.read_text())["blocks"][block]
    test = config.getoption("regress_test") or entry.get("flow_tests")
    result = run_bench(
        manifest, block, find_simulator(simulator),
        work_dir=Path(config.getoption("regress_runs")) / f"{block}-{simulator}-seed{seed}",
        cache_root=Path(config.getoption("regress_build_cache")), seed=seed, testcase=test,
        check=False, coverage=config.getoption("regress_coverage"))
    if result.passed:
        return
    lines = [f"{block} in {simulator}, seed {seed}: {len(result.failed)} of "
             f"{len(result.tests)} test(s) failed (log: {result.log})"]
    for t in result.failed:
        again = reproduce_command(spec["design"], block, simulator, seed,
                                  t.name.split("/")[0])
        lines += [f"  {t.name}: {t.message.splitlines()[0] if t.message else 'failed'}",
                  f"    reproduce: {again}"]
    if not result.tests:
        lines += ["  no test ran (the simulator stopped: see the log)",
                  f"    reproduce: {reproduce_command(spec['design'], block, simulator, seed)}"]
    pytest.fail("\n".join(lines), pytrace=False)
