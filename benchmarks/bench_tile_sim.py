"""Simulated cycles per second of the analog tile bench: Verilator, Icarus and Amaranth's own
simulator on the same stimulus.

Run from the repository root::

    python benchmarks/bench_tile_sim.py [--config tiny] [--vectors 100] [--seed 0]
                                        [--sims verilator,icarus,amaranth]

The stimulus is :func:`cimforge.verif.tile_case.throughput_case`: every analog effect on, full rate,
``--vectors`` random vectors. Verilator and Icarus run the cocotb bench's ``throughput`` test
on the generated Verilog (the build is done first and not timed); Amaranth's simulator runs
:func:`cimforge.verif.amaranth_tile.run_tile` on the same case. Timed: the register writes, the
streaming of the vectors and the drain after the last result, with the bench's Python (analog
adapter, source, sink) -- the same work in every simulator; the golden model's preparation is not.
Every run is checked bit- and cycle-exact; a failure stops the benchmark.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cimforge.config import load_config  # noqa: E402
from cimforge.hw.generate import generate  # noqa: E402
from cimforge.verif.amaranth_tile import run_tile  # noqa: E402
from cimforge.verif.runner import build_block, run_bench  # noqa: E402
from cimforge.verif.simulators import find_simulator  # noqa: E402
from cimforge.verif.tile_case import throughput_case  # noqa: E402

SIMS = ("verilator", "icarus", "amaranth")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="tiny", help="preset or TOML (default: tiny)")
    parser.add_argument("--vectors", type=int, default=100, help="input vectors (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="stimulus seed (default: 0)")
    parser.add_argument("--sims", default=",".join(SIMS), help="default: " + ",".join(SIMS))
    args = parser.parse_args(argv)
    sims = args.sims.split(",")
    for s in sims:
        if s not in SIMS:
            parser.error(f"--sims {args.sims!r}: {s!r} is not one of {', '.join(SIMS)}")
    if args.vectors < 1:
        parser.error(f"--vectors must be a positive integer, not {args.vectors}")
    cfg = load_config(args.config)
    case = throughput_case(cfg, args.vectors, args.seed)
    cycles = case.timing.stream_cycles(args.vectors)
    print(f"config {cfg.name}: {args.vectors} vectors, {case.spec.reads_per_vector} reads of "
          f"{case.spec.read_cycles} cycles each, {cycles:,} cycles at full rate")
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(cfg, tmp / "rtl", blocks=["analog_tile_sim"])
        manifest = tmp / "rtl" / "manifest.json"
        for name in sims:
            if name == "amaranth":
                start = time.perf_counter()
                run = run_tile(case)
                seconds = time.perf_counter() - start
                errors = run.check(case)
                if errors:
                    raise SystemExit(f"amaranth: {len(errors)} mismatches: {errors[:3]}")
                simulated = run.cycles
            else:
                sim = find_simulator(name)
                build_block(manifest, "analog_tile_sim", sim, tmp / "builds")
                env = {"CIMFORGE_TILE_VECTORS": str(args.vectors),
                       "CIMFORGE_TILE_SEED": str(args.seed)}
                res = run_bench(manifest, "analog_tile_sim", sim, work_dir=tmp / name,
                                cache_root=tmp / "builds", testcase="throughput",
                                extra_env=env)
                rec = res.records[0]
                seconds, simulated = rec["wall_seconds"], rec["timed_cycles"]
            rates[name] = simulated / seconds
            print(f"{name:10s}: {simulated:,} cycles in {seconds:7.2f} s = "
                  f"{rates[name]:10,.0f} cycles/s")
    if "verilator" in rates:
        for other in ("icarus", "amaranth"):
            if other in rates:
                print(f"verilator / {other}: {rates['verilator'] / rates[other]:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
