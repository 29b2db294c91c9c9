"""``cimforge`` command line: one sub-command per module in :mod:`cimforge.commands`.

Each command module has ``add_parser(subparsers)`` and ``run(args) -> int``. User errors
(:class:`~cimforge.errors.CliError`, :class:`~cimforge.config.ConfigError`) become one line on
stderr and exit status 2; a failing regression exits with status 1.
"""

from __future__ import annotations

import argparse
import sys

from cimforge.config import ConfigError
from cimforge.errors import CliError

__all__ = ["main", "build_parser"]

COMMANDS = ("generate", "map", "flow", "synth", "estimate", "embed", "decode", "latency",
            "endurance", "sweep", "profile")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="cimforge",
        description="Generate and verify compute-in-memory transformer accelerators.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"cimforge.commands.{name}")
        p = module.add_parser(sub)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args._run(args)
    except (CliError, ConfigError) as e:
        print(f"cimforge {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
