"""Verilator waivers, in one place, each with its reason; and the ``-Wall`` lint of a
generated top.

Every other Verilator warning stays fatal, in the builds of the benches and in the lint.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from cimforge.verif.simulators import Simulator

__all__ = ["BUILD_WAIVERS", "LINT_WAIVERS", "build_args", "lint"]

# Waived when Verilator builds a bench (its default warnings).
BUILD_WAIVERS = {
    "WIDTHEXPAND": "Amaranth's Verilog back end sizes intermediate expressions by its own rules "
                   "and leaves the implicit extension to Verilog semantics, on almost every "
                   "arithmetic line; widths are checked at the Amaranth level and bit-exactness "
                   "by the benches.",
    "WIDTHTRUNC": "the same, for implicit truncation to the declared width of a wire.",
}

# Waived in addition for ``--lint-only -Wall``.
LINT_WAIVERS = {
    **BUILD_WAIVERS,
    "UNUSEDSIGNAL": "generated code keeps every named Amaranth signal and a wire per element of "
                    "an array port (for waveforms), and Yosys's intermediate wires carry the "
                    "unused upper bits of widened expressions; none of it is logic that was "
                    "meant to be used and is not.",
    "PROCASSINIT": "a register's init (reset) value is emitted as its declaration's initial "
                   "value, and the register is then assigned in its clocked process: that is how "
                   "Amaranth gives registers a defined power-up value.",
    "DECLFILENAME": "a generated file holds its top and every submodule, named hierarchically "
                    "(``analog_tile_sim.tile``), so only the top matches the file name.",
}


def build_args() -> list[str]:
    """Verilator arguments of a bench build: the build waivers."""
    return [f"-Wno-{w}" for w in BUILD_WAIVERS]


def lint(sim: Simulator, verilog: Path, top: str) -> list[str]:
    """Warnings and errors of ``verilator --lint-only -Wall`` (less :data:`LINT_WAIVERS`) on
    module ``top`` of ``verilog``; empty when clean."""
    if sim.name != "verilator":
        raise ValueError(f"lint needs Verilator, not {sim.name}")
    args = [str(sim.executable), "--lint-only", "-Wall",
            *(f"-Wno-{w}" for w in LINT_WAIVERS), "--top-module", top, str(verilog)]
    with sim.environment():
        proc = subprocess.run(args, capture_output=True, text=True)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("%")]
    if proc.returncode and not lines:
        lines = [f"verilator exited with {proc.returncode}: {proc.stderr.strip()}"]
    return lines
