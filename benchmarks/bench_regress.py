"""Wall time of one ``cimforge regress`` with one worker and with more.

Run from the repository root::

    python benchmarks/bench_regress.py [--config tests/data/configs/tiny-blocks.toml]
                                       [--blocks requant,softmax,layernorm,token_quant]
                                       [--seeds 4] [--jobs 1,2] [--out build/bench-regress]

Runs the same regression (same design, benches and seeds) once per ``--jobs`` value, after a
first run that builds what it needs (the builds are shared, so the timed runs only simulate),
and prints each run's wall time and its speed-up over the first.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cimforge.cli import main  # noqa: E402


def _regress(argv: list[str]) -> float:
    t0 = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):
        status = main(["regress", *argv])
    if status != 0:
        raise SystemExit(f"the regression failed ({argv})")
    return time.monotonic() - t0


def run(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="tests/data/configs/tiny-blocks.toml")
    p.add_argument("--blocks", default="requant,softmax,layernorm,token_quant")
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--jobs", default="1,2")
    p.add_argument("--out", type=Path, default=Path("build/bench-regress"))
    args = p.parse_args(argv)
    common = ["--config", args.config, "--blocks", args.blocks, "--seeds", str(args.seeds),
              "--build-cache", str(args.out / "sim-cache")]
    _regress([*common, "--seeds", "1", "--jobs", "1", "--out", str(args.out / "warm")])
    times = {}
    for jobs in (int(j) for j in args.jobs.split(",")):
        times[jobs] = _regress([*common, "--jobs", str(jobs), "--out",
                                str(args.out / f"jobs{jobs}")])
        first = next(iter(times.values()))
        print(f"--jobs {jobs}: {times[jobs]:.1f} s wall ({first / times[jobs]:.2f}x the "
              f"first), {len(args.blocks.split(','))} benches x {args.seeds} seeds")


if __name__ == "__main__":
    run()
