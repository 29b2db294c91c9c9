"""``cimforge map``: where a config's model lives on the accelerator (``golden/mapping.py``)."""

from __future__ import annotations

import json

from cimforge.commands.generate import add_config_argument
from cimforge.config import load_config
from cimforge.errors import CliError

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser(
        "map", help="print the placement of the model's weights and K/V on the accelerator",
        description="Place every weight matrix of every layer on analog tile units (row and "
        "column tiling) and K and V of every head on digital-CIM macros, and print the "
        "placement; refuse a model that does not fit what [accelerator] declares.",
    )
    add_config_argument(p)
    p.add_argument("--json", action="store_true", help="print the placement as JSON")
    return p


def run(args) -> int:
    from cimforge.golden.mapping import MappingError, map_model

    cfg = load_config(args.config)
    try:
        mapping = map_model(cfg)
    except MappingError as e:
        raise CliError(str(e)) from None
    print(json.dumps(mapping.as_dict(), indent=1) if args.json else mapping.table(), end="")
    return 0
