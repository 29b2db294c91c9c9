"""Simulated cycles per second of the whole accelerator's bench (``verif/benches/accelerator.py``).

Run from the repository root::

    python benchmarks/bench_accel_sim.py [--config minilm-layer] [--sim verilator]
                                         [--seed 0] [--out build/bench-accel]

Generates the config's accelerator, builds it (timed, reported apart: a build cache in
``--out`` makes a second run skip it) and runs the bench's ideal test: the weights programmed
through the stream, every parameter and tile register written over AXI4-Lite, one sequence
(``minilm-layer``: the shortest reference sentence of at least ``model.seq_len`` tokens)
streamed through and checked bit- and cycle-exact against golden. Prints, for the programming
and for the sequence, the cycles simulated, the wall time and their ratio -- with the bench's
Python (analog adapters, AXI drivers, monitors), which is part of what a user waits for. A
failing bench stops the benchmark.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cimforge.config import load_config  # noqa: E402
from cimforge.hw.generate import generate  # noqa: E402
from cimforge.verif.runner import build_block, run_bench  # noqa: E402
from cimforge.verif.simulators import find_simulator  # noqa: E402

BLOCK = "accelerator_sim"
TEST = "ideal_equals_integer_model"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="minilm-layer",
                        help="preset or TOML with [accelerator] rtl = true "
                             "(default: minilm-layer)")
    parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("build/bench-accel"))
    args = parser.parse_args(argv)

    cfg = load_config(args.config)
    if not cfg.accelerator.rtl:
        parser.error(f"--config {args.config}: [accelerator] rtl is off: no accelerator RTL")
    sim = find_simulator(args.sim)
    rtl = args.out / cfg.name / "rtl"
    t0 = time.perf_counter()
    generate(cfg, rtl, source=str(args.config), blocks=[BLOCK])
    generated = time.perf_counter() - t0
    print(f"{cfg.name}: Verilog generated in {generated:.0f} s "
          f"({(rtl / f'{BLOCK}.v').stat().st_size / 1e6:.1f} MB)")
    cache = args.out / "sim-build"
    _, seconds, cached = build_block(rtl / "manifest.json", BLOCK, sim, cache)
    print(f"{sim.describe()}: " + ("build up to date" if cached else f"built in {seconds:.0f} s"))
    t0 = time.perf_counter()
    res = run_bench(rtl / "manifest.json", BLOCK, sim, work_dir=args.out / cfg.name / "run",
                    cache_root=cache, testcase=TEST, seed=args.seed)
    total = time.perf_counter() - t0
    print("\n| phase | cycles simulated | wall (s) | simulated cycles / s |\n|---|---|---|---|")
    for r in res.records:
        if r.get("phase") == "program":
            what = f"programming ({r['image_beats']:,} image beats)"
        else:
            what = (f"{r['register_writes']:,} register writes + {r['tokens']} tokens "
                    f"({r['cycles']:,} cycles for the sequence)")
        print(f"| {what} | {r['timed_cycles']:,} | {r['wall_seconds']:.1f} | "
              f"{r['timed_cycles'] / r['wall_seconds']:,.0f} |")
    print(f"\nthe whole test (simulator start, golden model, programming, sequence): "
          f"{total:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
