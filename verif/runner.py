"""Build a generated block once per simulator and run its cocotb bench through
``cocotb_tools.runner``.

* Builds are cached by content: the build directory name carries a hash of the Verilog, the
  simulator and the build arguments, so one generated design is compiled once and every test
  runs against it; a file lock makes concurrent ``pytest -n 2`` workers wait for one build.
* Every run gets its own test directory (one per test id), so runs never share files.
* A failing bench raises :class:`BenchFailure` whose message holds the failing tests, the seed
  and the tail of the simulator log -- not just cocotb's bare ``SystemExit: 1``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cimforge.files import locked
from cimforge.verif.coverage import COVERAGE_BUILD_ARGS
from cimforge.verif.lint import build_args
from cimforge.verif.simulators import Simulator

__all__ = [
    "VERILATOR_BUILD_ARGS",
    "BenchFailure",
    "BenchResult",
    "TestOutcome",
    "build_block",
    "run_bench",
]

# Verilator's waivers and their reasons live in verif/lint.py; every other warning is fatal.
VERILATOR_BUILD_ARGS = tuple(build_args())

LOG_TAIL_LINES = 60


class BenchFailure(AssertionError):
    """A bench build or run failed; the message carries the evidence."""


@dataclass(frozen=True)
class TestOutcome:
    name: str
    passed: bool
    sim_time_ns: float
    message: str = ""


@dataclass
class BenchResult:
    """What one bench run produced."""

    block: str
    simulator: str
    seed: int | None
    tests: list[TestOutcome]
    records: list[dict[str, Any]]
    log: Path
    build_seconds: float
    run_seconds: float
    build_dir: Path
    cached_build: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.tests) and all(t.passed for t in self.tests)

    @property
    def failed(self) -> list[TestOutcome]:
        return [t for t in self.tests if not t.passed]


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text[-lines:])


def _build_key(sim: Simulator, verilog: Path, args: tuple[str, ...], waves: bool) -> str:
    h = hashlib.sha256()
    h.update(verilog.read_bytes())
    h.update(f"{sim.name} {sim.version} {sim.executable} {args} {waves}".encode())
    return h.hexdigest()[:16]


def _waves() -> bool:
    return os.environ.get("WAVES", "0") not in ("", "0")


def coverage_requested() -> bool:
    """Whether the environment asks for coverage builds (``CIMFORGE_COVERAGE=1``): the test
    suite's switch (docs/verification.md, "Code coverage")."""
    return os.environ.get("CIMFORGE_COVERAGE", "0") not in ("", "0")


def build_block(
    manifest_path: Path, block: str, sim: Simulator, cache_root: Path,
    coverage: bool | None = None,
) -> tuple[Path, float, bool]:
    """Build ``block`` of a generated design for ``sim``; returns (build dir, seconds, cached).

    ``coverage`` (Verilator only; default: :func:`coverage_requested`) builds with line, branch
    and toggle coverage (:data:`cimforge.verif.coverage.COVERAGE_BUILD_ARGS`), a build of its
    own."""
    if coverage is None:
        coverage = coverage_requested()
    from cocotb_tools.runner import get_runner

    manifest = json.loads(manifest_path.read_text())
    entry = manifest["blocks"][block]
    verilog = (manifest_path.parent / entry["file"]).resolve()
    args: tuple[str, ...] = ()
    keyed: tuple[str, ...] = ()  # what besides the Verilog makes the build (paths by content)
    if sim.name == "verilator":
        args = (*VERILATOR_BUILD_ARGS, *entry.get("verilator_args", ()),
                *(COVERAGE_BUILD_ARGS if coverage else ()))
        keyed = args
        if entry.get("verilator_config"):  # a config file beside the Verilog
            vlt = (manifest_path.parent / entry["verilator_config"]).resolve()
            args += (str(vlt),)
            keyed += (vlt.read_text(),)
    # a design may ask for other C++ optimisation of its Verilator model (make variables)
    make_flags = entry.get("verilator_make_flags", "") if sim.name == "verilator" else ""
    waves = _waves()
    key = _build_key(sim, verilog, (*keyed, make_flags), waves)
    build_dir = cache_root / sim.name / f"{block}-{key}"
    stamp = build_dir / "cimforge.built"
    with locked(build_dir.with_suffix(".lock")):
        if stamp.exists():
            return build_dir, 0.0, True
        t0 = time.monotonic()
        log = build_dir.with_suffix(".build.log")
        with sim.environment({"MAKEFLAGS": make_flags} if make_flags else None):
            runner = get_runner(sim.name)
            try:
                runner.build(
                    sources=[verilog],
                    hdl_toplevel=entry["top"],
                    build_dir=build_dir,
                    build_args=list(args),
                    timescale=("1ns", "1ps"),
                    waves=waves,
                    log_file=log,
                    always=True,
                )
            except (RuntimeError, SystemExit) as e:
                raise BenchFailure(
                    f"{sim.describe()} failed to build {block} ({verilog}): {e}\n"
                    f"--- {log} (tail) ---\n{_tail(log)}"
                ) from None
        stamp.write_text(f"{sim.describe()}\n")
        return build_dir, time.monotonic() - t0, False


def _parse_results(xml_path: Path) -> list[TestOutcome]:
    if not xml_path.exists():
        return []
    tests = []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        failure = case.find("failure")
        error = case.find("error")
        bad = failure if failure is not None else error
        message = ""
        if bad is not None:
            message = (bad.get("message") or "") + ("\n" + bad.text if bad.text else "")
        tests.append(
            TestOutcome(
                name=case.get("name", "?"),
                passed=bad is None and case.find("skipped") is None,
                sim_time_ns=float(case.get("sim_time_ns", 0) or 0),
                message=message.strip(),
            )
        )
    return tests


def _test_filter(testcase: str | list[str] | None) -> str | None:
    """cocotb's test filter for tests named ``testcase`` (a name or a list), each with all of
    its parametrisations (cocotb names them ``<test>/<param>=<index>``)."""
    if testcase is None:
        return None
    names = [testcase] if isinstance(testcase, str) else list(testcase)
    return r"\.(" + "|".join(re.escape(n) for n in names) + r")(/.*)?$"


def run_bench(
    manifest_path: Path,
    block: str,
    sim: Simulator,
    *,
    work_dir: Path,
    cache_root: Path,
    testcase: str | list[str] | None = None,
    seed: int | None = None,
    extra_env: dict[str, str] | None = None,
    check: bool = True,
    coverage: bool | None = None,
) -> BenchResult:
    """Build (once) and run the cocotb bench ``cimforge.verif.benches.<block>`` on a generated
    design.

    ``seed`` defaults to the config's seed; a ``COCOTB_RANDOM_SEED`` in the environment
    overrides both, and the result reports the seed cocotb actually used.

    ``work_dir`` must be private to this run (e.g. one per pytest test id). With ``check`` a
    failing run raises :class:`BenchFailure`; otherwise the result tells.

    With ``coverage`` (see :func:`build_block`) a Verilator run leaves ``coverage.dat`` in
    ``work_dir`` and, beside it, ``coverage.json`` naming the design and block it covers.
    """
    from cocotb_tools.runner import get_runner

    manifest_path = manifest_path.resolve()
    manifest = json.loads(manifest_path.read_text())
    if block not in manifest["blocks"]:
        raise ValueError(
            f"block must be one of {', '.join(manifest['blocks'])} (from {manifest_path}), "
            f"not {block!r}"
        )
    if coverage is None:
        coverage = coverage_requested()
    coverage = coverage and sim.name == "verilator"
    build_dir, build_seconds, cached = build_block(manifest_path, block, sim, cache_root,
                                                   coverage)
    if seed is None:
        seed = manifest["config"]["seed"]  # reproducible by default; COCOTB_RANDOM_SEED wins

    work_dir = work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    records_path = work_dir / "records.jsonl"
    results_xml = work_dir / "results.xml"
    log = work_dir / "sim.log"
    coverage_dat = work_dir / "coverage.dat"
    coverage_meta = work_dir / "coverage.json"
    for p in (records_path, results_xml, log, coverage_dat, coverage_meta):
        p.unlink(missing_ok=True)
    env = {
        "CIMFORGE_MANIFEST": str(manifest_path),
        "CIMFORGE_BLOCK": block,
        "CIMFORGE_RECORDS": str(records_path),
        **(extra_env or {}),
    }
    t0 = time.monotonic()
    exit_error = None
    bench = manifest["blocks"][block].get("bench") or f"cimforge.verif.benches.{block}"
    with sim.environment(env):
        runner = get_runner(sim.name)
        try:
            runner.test(
                test_module=bench,
                hdl_toplevel=manifest["blocks"][block]["top"],
                hdl_toplevel_lang="verilog",
                build_dir=build_dir,
                test_dir=work_dir,
                test_filter=_test_filter(testcase),
                seed=seed,
                results_xml=str(results_xml),
                log_file=log,
                timescale=("1ns", "1ps") if sim.name == "icarus" else None,
            )
        except SystemExit as e:  # cocotb's runner exits on failure under pytest
            exit_error = e
    run_seconds = time.monotonic() - t0
    if coverage and coverage_dat.exists():
        coverage_meta.write_text(json.dumps({"manifest": str(manifest_path), "block": block}))

    records = []
    if records_path.exists():
        records = [json.loads(line) for line in records_path.read_text().splitlines() if line]
    result = BenchResult(
        block=block,
        simulator=sim.name,
        seed=_seed_from_log(log),
        tests=_parse_results(results_xml),
        records=records,
        log=log,
        build_seconds=build_seconds,
        run_seconds=run_seconds,
        build_dir=build_dir,
        cached_build=cached,
    )
    if check and (not result.passed or exit_error is not None):
        failed = result.failed
        summary = (
            "; ".join(f"{t.name}: {t.message.splitlines()[0] if t.message else 'failed'}"
                      for t in failed)
            or (f"simulator exited with {exit_error.code}" if exit_error else "no test ran")
        )
        raise BenchFailure(
            f"{block} bench in {sim.describe()} failed (seed {result.seed}; rerun with "
            f"COCOTB_RANDOM_SEED={result.seed}): {summary}\n"
            f"--- {log} (tail) ---\n{_tail(log)}"
        )
    return result


def _seed_from_log(log: Path) -> int | None:
    import re

    try:
        text = log.read_text(errors="replace")
        m = re.search(r"[Ss]eeding Python random module with (\d+)", text)
    except OSError:
        return None
    return int(m[1]) if m else None
