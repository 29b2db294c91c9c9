"""``cimforge endurance``: what generation writes per token into each memory, and how long
each would last in each device (``golden/endurance.py``)."""

from __future__ import annotations

import json

from cimforge.commands.generate import add_config_argument
from cimforge.config import KNOWN_DEVICES, load_config
from cimforge.errors import CliError

__all__ = ["add_parser", "run"]


def add_parser(sub):
    p = sub.add_parser(
        "endurance", help="writes per generated token and each memory's lifetime by device",
        description="For a decoder config: the bits one generated token writes into the K and "
        "V cache, the activation buffers and the crossbars, the token rate from the cycle "
        "model, and how long the cache and the buffers would last if they were built of each "
        "device preset (their endurance) instead of SRAM.",
    )
    add_config_argument(p)
    p.set_defaults(config="tiny-decoder")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    return p


def run(args) -> int:
    from cimforge.golden.endurance import duration, endurance
    from cimforge.golden.mapping import MappingError

    cfg = load_config(args.config)
    if cfg.model.kind != "decoder":
        raise CliError(f"--config {args.config} is an {cfg.model.kind} model: endurance needs "
                       "model.kind = 'decoder'")
    try:
        e = endurance(cfg)
    except (MappingError, ValueError) as err:
        raise CliError(str(err)) from None
    if args.json:
        print(json.dumps(e.as_dict(), indent=1))
        return 0
    print(f"{e.config}: a decode step {e.step_cycles:,} cycles at "
          f"{cfg.accelerator.clock_mhz:g} MHz = {e.tokens_per_s:,.0f} tokens/s; "
          f"sequences of {e.seq_len} tokens")
    print(f"writes per generated token: K and V cache {e.kv_bits:,} bits ({e.kv_rows} macro "
          f"rows), activation buffers {e.buffer_bits:,} bits, crossbars {e.crossbar_bits}")
    print(f"{'device':8} {'endurance':>10} {'K and V cache':>16} {'activation buffers':>19}")
    for name, life in e.lifetime_s.items():
        print(f"{name:8} {KNOWN_DEVICES[name].endurance:>10.0e} "
              f"{duration(life['K and V cache']):>16} {duration(life['activation buffers']):>19}")
    return 0
