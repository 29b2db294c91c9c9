"""``cimforge regress``: every bench of a design over many seeds, in parallel, with JUnit XML,
merged coverage and one reproducing command per failure (docs/verification.md,
"Regressions")."""

from __future__ import annotations

import json
import random
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from cimforge.commands.generate import add_config_argument
from cimforge.commands.paths import check_out_dir, path_arg
from cimforge.config import load_config
from cimforge.errors import CliError
from cimforge.files import write_text_atomic

__all__ = ["add_parser", "run", "job_list", "seed_list", "read_junit"]

MAX_SEEDS = 10_000


def add_parser(sub):
    p = sub.add_parser(
        "regress", help="every bench over many seeds, in parallel, with JUnit XML",
        description="Run every bench of a config's design (the ones `cimforge flow` runs, "
        "the accelerator's included) once per seed and simulator, spread over --jobs local "
        "workers (pytest-xdist) or over other machines (--tx); write OUT/junit.xml and "
        "OUT/report.md, each failure with the one command that reproduces it. Exits 1 if "
        "any run fails.",
    )
    add_config_argument(p)
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=None, metavar="N",
                       help="N random seeds, drawn from --first-seed (default: 5)")
    seeds.add_argument("--seed", default=None, metavar="S,S,..",
                       help="these seeds (e.g. to reproduce a failure)")
    p.add_argument("--first-seed", type=int, default=None, metavar="S",
                   help="seed of the draw of --seeds (default: the config's seed)")
    p.add_argument("--jobs", type=int, default=2, metavar="J",
                   help="local worker processes (default 2; 1: no worker, in this process)")
    p.add_argument("--tx", action="append", default=[], metavar="SPEC",
                   help="an execnet worker instead of local ones (repeatable), e.g. "
                   "'ssh=user@host//python=/opt/venv/bin/python//chdir=/scratch/cimforge' "
                   "(pytest-xdist's --tx; each machine needs cimforge installed)")
    p.add_argument("--sim", choices=("verilator", "icarus", "all"), default="verilator",
                   help="simulators (default: verilator)")
    p.add_argument("--blocks", default=None, metavar="A,B,..",
                   help="only these benches (default: every one the flow runs)")
    p.add_argument("--test", default=None, metavar="NAME",
                   help="only this cocotb test of each bench (e.g. random_items)")
    p.add_argument("--coverage", action="store_true",
                   help="coverage builds; the runs' coverage merged into OUT/coverage/")
    p.add_argument("--rtl", type=path_arg, default=None, metavar="DIR",
                   help="regress this design, generated earlier (DIR/manifest.json), instead "
                   "of generating --config's")
    p.add_argument("--out", type=path_arg, default=Path("build/regress"),
                   help="output directory (default: build/regress)")
    p.add_argument("--build-cache", type=path_arg, default=None, metavar="DIR",
                   help="simulator build cache (default: build/sim-cache, the flow's)")
    return p


def seed_list(count: int, first: int) -> list[int]:
    """``count`` distinct seeds in [1, 2**31), drawn from ``first`` (the same list every time)."""
    return random.Random(first).sample(range(1, 2**31), count)


def job_list(manifest: dict, blocks: list[str] | None, sims: list[str],
             seeds: list[int]) -> list[tuple[str, str, int]]:
    """Every (block, simulator, seed) to run, seed by seed: the blocks with a bench (only
    ``blocks`` if given), in the simulators the flow runs each one in."""
    benches = [name for name, e in manifest["blocks"].items() if e.get("bench")]
    if blocks is not None:
        unknown = [b for b in blocks if b not in benches]
        if unknown:
            raise CliError(f"--blocks {','.join(unknown)}: not a bench of this design: must "
                           f"be among {', '.join(benches)}")
        benches = [b for b in benches if b in blocks]
    jobs = []
    for seed in seeds:
        for block in benches:
            only = manifest["blocks"][block].get("flow_simulators")
            jobs += [(block, sim, seed) for sim in sims if not only or sim in only]
    return jobs


def read_junit(path: Path) -> list[dict]:
    """The test cases of a JUnit XML file: name, outcome and failure message."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        bad = next((c for c in case if c.tag in ("failure", "error")), None)
        skipped = case.find("skipped") is not None
        cases.append({"name": case.get("name", "?"), "time": float(case.get("time", 0)),
                      "outcome": ("failed" if bad is not None else
                                  "skipped" if skipped else "passed"),
                      "message": "" if bad is None else (bad.text or bad.get("message", ""))})
    return cases


def _design(rtl: Path):
    """The manifest and config of a design generated earlier."""
    from cimforge.config import ConfigError, config_from_dict

    path = rtl / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
        cfg = config_from_dict(manifest["config"], str(path), manifest["config_name"])
    except FileNotFoundError:
        raise CliError(f"--rtl {str(rtl)!r}: no manifest.json: must be a folder `cimforge "
                       "generate` wrote") from None
    except (OSError, ValueError, KeyError, TypeError, ConfigError) as e:
        raise CliError(f"--rtl {str(rtl)!r}: unreadable manifest.json ({e})") from None
    return manifest, cfg


def _seeds(args, cfg) -> list[int]:
    if args.seed is not None:
        try:
            seeds = [int(s) for s in args.seed.split(",")]
        except ValueError:
            raise CliError(f"--seed {args.seed!r}: must be a comma-separated list of "
                           "integers") from None
        if any(not 0 <= s < 2**32 for s in seeds):
            raise CliError(f"--seed {args.seed!r}: each must be in [0, 2**32)")
        return seeds
    count = 5 if args.seeds is None else args.seeds
    if not 1 <= count <= MAX_SEEDS:
        raise CliError(f"--seeds {count}: must be an integer in [1, {MAX_SEEDS}]")
    return seed_list(count, cfg.seed if args.first_seed is None else args.first_seed)


def run(args) -> int:
    import pytest

    from cimforge.commands.flow import BUILD_CACHE, _simulators
    from cimforge.hw.generate import generate

    out = check_out_dir(args.out)
    if not 1 <= args.jobs <= 256:
        raise CliError(f"--jobs {args.jobs}: must be an integer in [1, 256]")
    if args.rtl is not None:
        rtl, design = args.rtl, ["--rtl", str(args.rtl)]
        manifest, cfg = _design(args.rtl)
    else:
        cfg = load_config(args.config)
        rtl, design = out / "rtl", ["--config", str(args.config)]
    seeds = _seeds(args, cfg)
    sims = [s.name for s in _simulators(args.sim)]
    blocks = args.blocks.split(",") if args.blocks else None
    t0 = time.monotonic()
    if args.rtl is None:
        print(f"[regress] generating {cfg.name} -> {rtl}", file=sys.stderr, flush=True)
        manifest = generate(cfg, rtl, source=str(args.config))
    jobs = job_list(manifest, blocks, sims, seeds)
    runs = out / "runs"
    build_cache = args.build_cache or BUILD_CACHE
    print(f"[regress] {len(jobs)} run(s): {len(seeds)} seed(s) x "
          f"{len(jobs) // len(seeds)} bench run(s); seeds {', '.join(map(str, seeds))}",
          file=sys.stderr, flush=True)
    out.mkdir(parents=True, exist_ok=True)
    ini = out / "pytest.ini"  # an ini of its own: the caller's pytest settings do not apply
    write_text_atomic(ini, "[pytest]\n")
    junit = out / "junit.xml"
    config_json = json.dumps({"name": cfg.name, "source": str(args.config),
                              "values": cfg.to_dict(), "design": design})
    # --pyargs: each worker finds the test module in its own install, on any machine
    argv = ["--pyargs", "cimforge.verif.regress_test", "-c", str(ini), "--rootdir", str(out),
            "--import-mode=importlib", "-p", "cimforge.verif.regress", "-p",
            "no:cacheprovider", "-q", "-rf",
            f"--junitxml={junit}", "-o", "junit_family=xunit2",
            "--regress-config", config_json,
            "--regress-manifest", str((rtl / "manifest.json").resolve()),
            "--regress-jobs", json.dumps(jobs), "--regress-runs", str(runs.resolve()),
            "--regress-build-cache", str(Path(build_cache).resolve())]
    if args.test:
        argv += ["--regress-test", args.test]
    if args.coverage:
        argv += ["--regress-coverage"]
    if args.tx:
        argv += ["--dist", "load", *(a for tx in args.tx for a in ("--tx", tx))]
    elif args.jobs > 1:
        argv += ["-n", str(args.jobs), "--dist", "load"]
    status = pytest.main(argv)
    if status == pytest.ExitCode.INTERRUPTED:  # pytest reports Ctrl-C and returns
        raise KeyboardInterrupt
    if not junit.exists():
        raise CliError(f"pytest wrote no {junit} (status {int(status)})")
    cases = read_junit(junit)
    failed = [c for c in cases if c["outcome"] != "passed"]
    lines = [f"# cimforge regress: {cfg.name}", "",
             f"{len(cases) - len(failed)} of {len(cases)} run(s) passed in "
             f"{time.monotonic() - t0:.0f} s; seeds {', '.join(map(str, seeds))}; "
             f"JUnit XML: `{junit}`", ""]
    if failed:
        lines += ["## Failures", ""]
        for c in failed:
            lines += [f"### {c['name']}", "", "```", c["message"].strip(), "```", ""]
    if args.coverage:
        from cimforge.verif.coverage import collect

        rows = collect(sorted(p for p in runs.glob("*") if p.is_dir()), out / "coverage")
        lines += [f"Coverage of {len(rows)} block(s) merged over the runs: "
                  f"`{out / 'coverage' / 'report.md'}`.", ""]
    write_text_atomic(out / "report.md", "\n".join(lines))
    print("\n".join(lines[2:3] + [ln for c in failed for ln in c["message"].splitlines()
                                  if "reproduce:" in ln]))
    return 0 if not failed and int(status) == 0 else 1
