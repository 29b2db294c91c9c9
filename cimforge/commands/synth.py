"""``cimforge synth``: synthesis, place and route of each block and of the accelerator top
(Yosys and nextpnr from the YoWASP packages): cells, fmax over seeds, the critical path."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from cimforge.commands.generate import add_config_argument
from cimforge.commands.paths import check_out_dir, path_arg
from cimforge.config import load_config
from cimforge.errors import CliError

__all__ = ["add_parser", "run", "SYNTH_CACHE"]

SYNTH_CACHE = Path("build") / "synth-cache"


# nextpnr's options for the accelerator top (docs/ppa.md, "The accelerator top"): its default
# placer (HeAP) reported no iteration of its main loop in 27 minutes at 88 % of the 85k part's
# logic cells, where the electrostatic placer converges in about 10 and legalises at 76 %; its
# default router (router1) stalled in the top's congestion, where router2 gets further (it has
# not finished the top yet either)
TOP_PNR_OPTIONS = ("--placer", "static", "--router", "router2")


def add_parser(sub):
    from cimforge.synth.flow import TARGETS

    p = sub.add_parser(
        "synth", help="area, fmax and critical path of each block (Yosys + nextpnr)",
        description="Generate each block's synthesis top for a config, synthesize it with "
        "Yosys and place and route it with nextpnr (ECP5 by default; a block on the 25k part, "
        "the accelerator top on the 85k) inside an out-of-context wrapper, over several "
        "seeds. Writes synth.md and synth.json into --out. Runs are cached by content.",
    )
    add_config_argument(p)
    p.add_argument("--target", choices=sorted(TARGETS), default="ecp5",
                   help="ecp5 and ice40: FPGA synthesis, place and route; generic: "
                   "technology-independent gates and a transistor estimate (default: ecp5)")
    p.add_argument("--blocks", default=None, metavar="A,B,...",
                   help="the tops to synthesize (default: every block, and the accelerator "
                   "top when the config has accelerator.rtl)")
    p.add_argument("--device", default=None,
                   help="the device of every top (ecp5: 25k, 45k, 85k; ice40: hx8k, up5k; "
                   "default: ecp5 25k for a block and 85k for the accelerator, ice40 hx8k)")
    p.add_argument("--seeds", type=int, default=3, help="place-and-route seeds (default 3)")
    p.add_argument("--freq", type=float, default=100.0, help="target clock in MHz (default 100)")
    p.add_argument("--jobs", type=int, default=2, help="tool runs at once (default 2)")
    p.add_argument("--out", default="build/synth", type=path_arg, help="output directory")
    p.add_argument("--cache", type=Path, default=None,
                   help=f"where runs are kept and reused (default: {SYNTH_CACHE})")
    p.add_argument("--timeout", type=float, default=None, metavar="MINUTES",
                   help="stop a tool run (Yosys, or one seed's place and route) after this "
                   "many minutes and report it (default: no limit)")
    p.add_argument("--check", action="store_true",
                   help="exit with status 1 when a top misses --freq or fails to place")
    return p


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(args) -> int:
    from cimforge.files import write_text_atomic
    from cimforge.synth.blocks import ACCELERATOR_TOP, all_tops, synth_blocks, synth_verilog
    from cimforge.synth.flow import TARGETS, synth_block
    from cimforge.synth.report import meets, render_markdown
    from cimforge.synth.tools import ToolError, ToolMissing, tool_versions

    cfg = load_config(args.config)
    target = TARGETS[args.target]
    if args.blocks is None:
        names = synth_blocks(cfg)
    else:
        names = [b.strip() for b in args.blocks.split(",") if b.strip()]
        unknown = [b for b in names if b not in all_tops()]
        if unknown or not names:
            raise CliError(f"--blocks {args.blocks!r}: {', '.join(unknown) or 'empty'}; the "
                           f"tops are {', '.join(all_tops())}")
    if args.device is not None and args.device not in target.devices:
        raise CliError(f"--device {args.device!r} is not a {args.target} device: "
                       f"{', '.join(target.devices)}")
    if not 1 <= args.seeds <= 20:
        raise CliError(f"--seeds must be in [1, 20], not {args.seeds}")
    if not 1 <= args.freq <= 1000:
        raise CliError(f"--freq must be in [1, 1000] MHz, not {args.freq:g}")
    if not 1 <= args.jobs <= 64:
        raise CliError(f"--jobs must be in [1, 64], not {args.jobs}")
    if args.timeout is not None and not 0 < args.timeout <= 10000:
        raise CliError(f"--timeout must be in (0, 10000] minutes, not {args.timeout:g}")
    out: Path = check_out_dir(args.out)
    try:
        versions = tool_versions(("yosys",) + ((target.pnr,) if target.pnr else ()))
    except ToolMissing as e:
        raise CliError(str(e)) from None
    cache = args.cache or SYNTH_CACHE
    seeds = tuple(range(1, args.seeds + 1))
    rows = []
    t0 = time.monotonic()
    for i, name in enumerate(names, 1):
        _progress(f"[{i}/{len(names)}] {name}: generating ...")
        verilog = synth_verilog(name, cfg)
        device = args.device or (target.top_device if name == ACCELERATOR_TOP
                                 else target.default_device)
        start = time.monotonic()
        try:
            row = synth_block(name, verilog, target=args.target, device=device, seeds=seeds,
                              freq_mhz=args.freq, cache_root=cache, jobs=args.jobs,
                              timeout=None if args.timeout is None else 60 * args.timeout,
                              fold_outputs=name == ACCELERATOR_TOP,
                              global_reset=name == ACCELERATOR_TOP,
                              pnr_options=TOP_PNR_OPTIONS if name == ACCELERATOR_TOP else (),
                              progress=_progress)
        except ToolError as e:
            raise CliError(f"synthesis of {name} failed: {e}") from None
        rows.append(row)
        f = row.get("fmax_mhz")
        result = (f"fmax {f['median']:.1f} MHz (seeds {f['min']:.1f}-{f['max']:.1f})" if f
                  else row.get("error", f"{row.get('transistors', 0):,} transistors"))
        _progress(f"[{i}/{len(names)}] {name}: {result} "
                  f"[{time.monotonic() - start:.0f} s]")
    report = {"config": cfg.name, "config_digest": cfg.digest(), "target": args.target,
              "tools": versions, "seeds": list(seeds), "freq_mhz": args.freq, "blocks": rows}
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / "synth.json", json.dumps(report, indent=1) + "\n")
    text = render_markdown(report)
    write_text_atomic(out / "synth.md", text)
    print(text, end="")
    print(f"{out / 'synth.md'}, {out / 'synth.json'} [{time.monotonic() - t0:.0f} s]")
    missed = [r["block"] for r in rows if meets(r) is False or "error" in r]
    if args.check and missed:
        print(f"below {args.freq:g} MHz or not placed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0
