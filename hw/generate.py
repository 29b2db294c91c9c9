"""Generate the Verilog of every block for a config, with a manifest describing it.

Nothing is written when a component is constructed; :func:`generate` is the one explicit call
that writes files. The manifest is what the benches, the flow and users read:

``manifest.json``::

    {"generator": "cimforge 0.1.0", "config": {...}, "config_digest": "<sha256>",
     "config_source": "...",
     "blocks": {"shift_add": {"top": "shift_add", "file": "shift_add.v",
                              "verilog_sha256": "...", "parameters": {...}, "latency": 2,
                              "ports": [{"name": "i_stream__payload", "direction": "in",
                                         "width": 55, "fields": [...]}, ...]}}}

``fields`` lists the packed layout of a stream payload: ``name``, bit ``offset``, ``width``,
``signed``, and for arrays ``count`` and ``stride``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import data, wiring

from cimforge import __version__
from cimforge.config import Config, ConfigError
from cimforge.files import write_text_atomic
from cimforge.golden.activation import ActivationSpec
from cimforge.golden.analog_tile import AnalogTileSpec
from cimforge.golden.dcim import DcimSpec
from cimforge.golden.layernorm import LayerNormSpec
from cimforge.golden.requant import RequantSpec
from cimforge.golden.shift_add import ShiftAddSpec
from cimforge.golden.softmax import SoftmaxSpec
from cimforge.golden.token_quant import TokenQuantSpec
from cimforge.hw.activation import Activation
from cimforge.hw.analog_tile import AnalogTile
from cimforge.hw.analog_tile_sim import AnalogTileSim
from cimforge.hw.crossbar_shell import analog_source_verilog, blackbox_verilog
from cimforge.hw.dcim import DigitalCim
from cimforge.hw.layernorm import LayerNorm
from cimforge.hw.requant import Requantizer
from cimforge.hw.shift_add import ShiftAdd
from cimforge.hw.softmax import Softmax
from cimforge.hw.token_quant import TokenQuantizer

__all__ = ["BLOCKS", "ACCELERATOR_BLOCKS", "Block", "blocks_of", "convert_block", "generate",
           "port_table", "layout_fields"]


@dataclass(frozen=True)
class Block:
    """How to build one top-level block from a config. ``bench``: the cocotb test module that
    verifies this top (None: a top for synthesis, verified through its simulation top).
    ``extra_files``: further files written beside the Verilog (name -> text).
    ``extra_verilog``: modules appended to the block's Verilog (simulation-only helpers the
    design instantiates)."""

    name: str
    make: Callable[[Config], wiring.Component]
    parameters: Callable[[wiring.Component], dict[str, Any]]
    latency: Callable[[wiring.Component], int]
    bench: str | None = None
    extra_files: Callable[[wiring.Component], dict[str, str]] | None = None
    verilator_make_flags: str = ""
    verilator_args: tuple[str, ...] = ()  # more Verilator options for this block
    verilator_config: str | None = None  # a Verilator config file among the extra files
    flow_simulators: tuple[str, ...] | None = None  # None: every simulator
    extra_verilog: Callable[[], str] | None = None
    # the bench's tests the flow runs for a config (None: all of them)
    flow_tests: Callable[[Config], list[str] | None] | None = None


BLOCKS: dict[str, Block] = {
    "shift_add": Block(
        name="shift_add",
        make=lambda cfg: ShiftAdd(ShiftAddSpec.from_config(cfg)),
        parameters=lambda c: c.spec.as_dict(),
        latency=lambda c: c.latency,
        bench="cimforge.verif.benches.shift_add",
    ),
    # the analog tile unit: its synthesis top (the crossbar shell's pins as ports) and its
    # simulation top (the crossbar model in place of the hard macro)
    "analog_tile": Block(
        name="analog_tile",
        make=lambda cfg: AnalogTile(AnalogTileSpec.from_config(cfg)),
        parameters=lambda c: c.spec.as_dict(),
        latency=lambda c: c.timing.result_latency,
        extra_files=lambda c: {"crossbar_shell.v": blackbox_verilog(c.spec)},
    ),
    "dcim": Block(
        name="dcim",
        make=lambda cfg: DigitalCim(DcimSpec.from_config(cfg)),
        parameters=lambda c: c.spec.as_dict(),
        latency=lambda c: c.timing.latency,
        bench="cimforge.verif.benches.dcim",
    ),
    "analog_tile_sim": Block(
        name="analog_tile_sim",
        make=lambda cfg: AnalogTileSim(AnalogTileSpec.from_config(cfg)),
        parameters=lambda c: c.spec.as_dict(),
        latency=lambda c: c.timing.result_latency,
        bench="cimforge.verif.benches.analog_tile",
    ),
    # the CMOS non-linear units; latency: cycles from an item accepted to its result offered
    # (softmax and LayerNorm: from a full-length row's first value, into an idle unit)
    "requant": Block(
        name="requant",
        make=lambda cfg: Requantizer(RequantSpec.from_config(cfg)),
        parameters=lambda c: c.spec.as_dict(),
        latency=lambda c: c.timing.latency,
        bench="cimforge.verif.benches.requant",
    ),
    "activation": Block(
        name="activation",
        make=lambda cfg: Activation(ActivationSpec.from_config(cfg)),
        parameters=lambda c: c.spec.as_dict(),
        latency=lambda c: c.timing.latency,
        bench="cimforge.verif.benches.activation",
    ),
    "softmax": Block(
        name="softmax",
        make=lambda cfg: Softmax(SoftmaxSpec.from_config(cfg)),
        parameters=lambda c: c.spec.as_dict(),
        latency=lambda c: c.timing.first_result_latency(c.spec.beats_max),
        bench="cimforge.verif.benches.softmax",
    ),
    "layernorm": Block(
        name="layernorm",
        make=lambda cfg: LayerNorm(LayerNormSpec.from_config(cfg)),
        parameters=lambda c: c.spec.as_dict(),
        latency=lambda c: c.timing.first_result_latency(),
        bench="cimforge.verif.benches.layernorm",
    ),
    "token_quant": Block(
        name="token_quant",
        make=lambda cfg: TokenQuantizer(TokenQuantSpec.from_config(cfg)),
        parameters=lambda c: c.spec.as_dict(),
        latency=lambda c: c.timing.first_result_latency(),
        bench="cimforge.verif.benches.token_quant",
    ),
}


def layout_fields(layout: Any) -> list[dict[str, Any]]:
    """Flatten a payload layout into scalar fields and arrays of scalars."""
    if isinstance(layout, data.StructLayout):
        out = []
        for name, field in layout:
            shape = field.shape
            if isinstance(shape, data.ArrayLayout):
                elem = Shape.cast(shape.elem_shape)
                out.append(
                    {
                        "name": name,
                        "offset": field.offset,
                        "width": elem.width,
                        "signed": elem.signed,
                        "count": shape.length,
                        "stride": elem.width,
                    }
                )
            else:
                s = Shape.cast(shape)
                out.append(
                    {"name": name, "offset": field.offset, "width": s.width, "signed": s.signed}
                )
        return out
    if isinstance(layout, data.ArrayLayout):
        elem = Shape.cast(layout.elem_shape)
        return [
            {
                "name": "data",
                "offset": 0,
                "width": elem.width,
                "signed": elem.signed,
                "count": layout.length,
                "stride": elem.width,
            }
        ]
    s = Shape.cast(layout)
    return [{"name": "data", "offset": 0, "width": s.width, "signed": s.signed}]


def port_table(component: wiring.Component) -> list[dict[str, Any]]:
    """Ports of a component as they appear in its Verilog (plus ``clk`` and ``rst``)."""
    members = component.signature.members
    ports = [{"name": name, "direction": "in", "width": 1}
             for name in ("clk", "rst") if name not in members]
    for path, member, value in component.signature.flatten(component):
        entry = {
            "name": "__".join(str(p) for p in path),
            "direction": "in" if member.flow == wiring.In else "out",
            "width": len(value.as_value()) if hasattr(value, "as_value") else len(value),
        }
        shape = member.shape
        if isinstance(shape, data.Layout) or path[-1] == "payload":
            entry["fields"] = layout_fields(shape)  # a plain payload is one field, "data"
        ports.append(entry)
    return ports


def _accelerator_files(top) -> dict[str, str]:
    from cimforge.golden.accel_regmap import to_c_header, to_markdown, to_python

    cfg, regmap = top.core.cfg, top.regmap
    # Verilator: the top's ports public (the bench's handles), nothing else
    vlt = "`verilator_config\n" + "".join(
        f'public_flat_rw -module "accelerator_sim" -var "{p["name"]}"\n'
        for p in port_table(top))
    return {"accelerator_regmap.md": to_markdown(regmap, cfg),
            "accelerator_regs.h": to_c_header(regmap, cfg),
            "accelerator_regs.py": to_python(regmap, cfg),
            "accelerator_sim.vlt": vlt}


def _accelerator_sim(cfg: Config) -> wiring.Component:
    from cimforge.hw.accelerator_sim import AcceleratorSim

    return AcceleratorSim(cfg, axi=True, digest=int(cfg.digest()[:8], 16), vpi_analog=True,
                          registered_reset=True)


# the whole accelerator, with configs that ask for it (accelerator.rtl): its simulation top
# (AXI ports, a crossbar model on every tile unit), the register map beside it
ACCELERATOR_BLOCKS: dict[str, Block] = {
    "accelerator_sim": Block(
        name="accelerator_sim",
        make=_accelerator_sim,
        parameters=lambda c: {"mapping": c.mapping.as_dict(),
                              "regions": {r.name: [r.base, r.words] for r in c.regmap.regions}},
        latency=lambda c: 0,
        bench="cimforge.verif.benches.accelerator",
        extra_files=_accelerator_files,
        # its Verilator model is large (tiny: 6 MB of Verilog). Measured here (2 cores): the
        # default -Os compiles in over 12 minutes; -O0 in 2.5 but simulates at 210 cycles/s;
        # -O1 for the code run every cycle (-O0 for the initialisation) in 5 minutes, and
        # simulates 5.5 times faster
        verilator_make_flags="OPT_FAST=-O1 OPT_SLOW=-O0",
        # cocotb builds with every signal public; then Verilator must assume any signal may
        # change under VPI and re-evaluates all combinational logic at every eval -- three
        # quarters of a MiniLM layer's simulation time. The bench needs the ports and the
        # crossbar models' analog registers, which are public by themselves.
        verilator_args=("--no-public-flat-rw",),
        verilator_config="accelerator_sim.vlt",
        # Icarus takes over ten minutes for one tiny sequence: `pytest -m full` runs it
        flow_simulators=("verilator",),
        extra_verilog=analog_source_verilog,
        # a real MiniLM layer: ideal and every effect under each flow pattern (about 20
        # minutes); the bad-input and wrong-weight tests are the same logic as on tiny
        flow_tests=lambda cfg: (["ideal_equals_integer_model", "all_effects"]
                                if cfg.model.name == "minilm" else None),
    ),
}


def blocks_of(cfg: Config) -> dict[str, Block]:
    """The blocks ``cfg`` generates: every block, and the accelerator's when
    ``accelerator.rtl``."""
    return {**BLOCKS, **(ACCELERATOR_BLOCKS if cfg.accelerator.rtl else {})}


_HEADER = re.compile(r"^module (\S+)", re.M)
_YOSYS_LOCAL = re.compile(r"\$auto\$[^ ]*\$\d+")  # names Yosys numbers across the whole file


def dedupe_modules(text: str) -> str:
    """Generated Verilog with one module for every set of modules whose text differs only in
    their names (and in the names Yosys numbers file-wide): Amaranth emits a module per
    instance, so the 24 K and V macros of a MiniLM layer were 24 copies of one module, each
    compiled again by Verilator. Instances of a dropped copy name the kept one; instance
    names, and so every hierarchical path, stay as they were."""
    *chunks, tail = text.split("endmodule\n")
    mods = [[_HEADER.search(c).group(1), c + "endmodule\n"] for c in chunks]
    while True:
        seen: dict[str, str] = {}
        renames: dict[str, str] = {}
        kept = []
        for mod_name, body in mods:
            key = _YOSYS_LOCAL.sub("$", body.replace(f"module {mod_name} ", "module $ ", 1))
            if mod_name.startswith("\\") and key in seen:  # never the (unescaped) top
                renames[mod_name] = seen[key]
            else:
                seen.setdefault(key, mod_name)
                kept.append([mod_name, body])
        if not renames:
            return "".join(body for _, body in mods) + tail
        # an escaped identifier ends at white space: "\\a.tile1 " is not "\\a.tile10 "
        pattern = re.compile("|".join(re.escape(n + " ") for n in renames))

        def rename(match: re.Match, renames: dict[str, str] = renames) -> str:
            return renames[match.group(0)[:-1]] + " "

        mods = [[n, pattern.sub(rename, body)] for n, body in kept]


def convert_block(name: str, cfg: Config) -> tuple[wiring.Component, str]:
    """The component and its Verilog text for block ``name``."""
    block = blocks_of(cfg)[name]
    component = block.make(cfg)
    text = dedupe_modules(verilog.convert(component, name=name, emit_src=False))
    if block.extra_verilog:
        text += block.extra_verilog()
    return component, text


def generate(cfg: Config, out_dir: Path, *, source: str = "", blocks=None,
             progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write ``<block>.v`` for each block and ``manifest.json`` into ``out_dir``.

    Everything is elaborated and converted first; files are written only once all blocks
    converted, each atomically, the manifest last. A block whose parameters the config cannot
    give raises :class:`~cimforge.config.ConfigError` naming the block, before anything is
    written. ``progress``, if given, is called with a line before each block is elaborated.
    """
    available = blocks_of(cfg)
    names = list(available) if blocks is None else list(blocks)
    converted = {}
    for i, name in enumerate(names, 1):
        if progress is not None:
            progress(f"elaborating {name} ({i}/{len(names)})")
        try:
            component, text = convert_block(name, cfg)
        except ValueError as e:  # a block's parameter check: the config cannot be built
            raise ConfigError(None, f"cannot generate block {name!r}: {e}",
                              source or cfg.name) from None
        block = available[name]
        extra = block.extra_files(component) if block.extra_files else {}
        converted[name] = (
            text,
            extra,
            {
                "top": name,
                "file": f"{name}.v",
                "verilog_sha256": hashlib.sha256(text.encode()).hexdigest(),
                "parameters": block.parameters(component),
                "latency": block.latency(component),
                "bench": block.bench,
                "extra_files": sorted(extra),
                **({"verilator_make_flags": block.verilator_make_flags}
                   if block.verilator_make_flags else {}),
                **({"verilator_args": list(block.verilator_args)}
                   if block.verilator_args else {}),
                **({"verilator_config": block.verilator_config}
                   if block.verilator_config else {}),
                **({"flow_simulators": list(block.flow_simulators)}
                   if block.flow_simulators else {}),
                **({"flow_tests": block.flow_tests(cfg)}
                   if block.flow_tests and block.flow_tests(cfg) else {}),
                "ports": port_table(component),
            },
        )
    manifest = {
        "generator": f"cimforge {__version__}",
        "config_name": cfg.name,
        "config_source": source,
        "config_digest": cfg.digest(),
        "config": cfg.to_dict(),
        "blocks": {name: entry for name, (_, _, entry) in converted.items()},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for text, extra, entry in converted.values():
        write_text_atomic(out_dir / entry["file"], text)
        for file, content in extra.items():
            write_text_atomic(out_dir / file, content)
    write_text_atomic(out_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest
