"""What ``cimforge synth`` synthesizes: each block's synthesis top, and the accelerator's.

A block's synthesis top is the Verilog ``cimforge generate`` writes for it, except where the
generated top is a simulation top: the analog tile is synthesized as ``analog_tile`` (the
crossbar shell's pins as ports, the macro outside), not ``analog_tile_sim``; the accelerator
as :class:`~cimforge.hw.accelerator_axi.Accelerator` (AXI ports, and each tile unit's crossbar
and programming pins as ports), not ``accelerator_sim`` with its behavioural crossbar models.
"""

from __future__ import annotations

from cimforge.config import Config

__all__ = ["ACCELERATOR_TOP", "all_tops", "synth_blocks", "synth_verilog"]

ACCELERATOR_TOP = "accelerator"


def all_tops() -> list[str]:
    """Every synthesis top, the accelerator's last."""
    from cimforge.hw.generate import BLOCKS

    return [n for n in BLOCKS if not n.endswith("_sim")] + [ACCELERATOR_TOP]


def synth_blocks(cfg: Config) -> list[str]:
    """The tops synthesized for ``cfg`` by default: every block's, and the accelerator's when
    the config builds the accelerator's RTL (``accelerator.rtl``)."""
    return [n for n in all_tops() if n != ACCELERATOR_TOP or cfg.accelerator.rtl]


def synth_verilog(name: str, cfg: Config) -> str:
    """The Verilog text of synthesis top ``name`` (its module is named ``name``)."""
    from cimforge.hw.generate import convert_block, dedupe_modules

    if name == ACCELERATOR_TOP:
        from amaranth.back import verilog

        from cimforge.hw.accelerator_axi import Accelerator

        top = Accelerator(cfg, int(cfg.digest()[:8], 16))
        return dedupe_modules(verilog.convert(top, name=name, emit_src=False))
    if name not in all_tops():
        raise ValueError(f"no synthesis top named {name!r}; the tops are "
                         f"{', '.join(all_tops())}")
    return convert_block(name, cfg)[1]
