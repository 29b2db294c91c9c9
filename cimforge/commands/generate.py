"""``cimforge generate``: Verilog of every block plus ``manifest.json``."""

from __future__ import annotations

import sys

from cimforge.commands.paths import check_out_dir, path_arg
from cimforge.config import load_config, preset_names

__all__ = ["add_parser", "run"]


def add_config_argument(parser) -> None:
    parser.add_argument(
        "--config", default="tiny", metavar="PRESET|FILE",
        help=f"preset name ({', '.join(preset_names())}) or TOML file (default: tiny)",
    )


def add_parser(sub):
    p = sub.add_parser(
        "generate", help="write the Verilog of every block and a manifest",
        description="Elaborate every hardware block for a config and write <block>.v and "
        "manifest.json (top modules, ports, parameters, config hash) into --out.",
    )
    add_config_argument(p)
    p.add_argument("--out", default="build/rtl", type=path_arg, help="output directory")
    return p


def run(args) -> int:
    from cimforge.hw.generate import generate

    check_out_dir(args.out)
    cfg = load_config(args.config)
    manifest = generate(cfg, args.out, source=str(args.config), progress=lambda line: print(
        f"[generate] {line}", file=sys.stderr, flush=True))
    for block in manifest["blocks"].values():
        print(f"{args.out / block['file']}: module {block['top']} "
              f"(latency {block['latency']} cycles)")
    digest = manifest["config_digest"][:16]
    print(f"{args.out / 'manifest.json'}: config {cfg.name} sha256 {digest}")
    return 0
