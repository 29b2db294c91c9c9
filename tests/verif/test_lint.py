"""``verilator --lint-only -Wall`` on every generated top, with only the waivers of
verif/lint.py."""

import pytest

from cimforge.hw.generate import ACCELERATOR_BLOCKS, BLOCKS
from cimforge.verif.lint import BUILD_WAIVERS, LINT_WAIVERS, lint
from cimforge.verif.simulators import find_verilator


@pytest.mark.parametrize("design, block", [
    *((design, block) for design in ("tiny", "tile-flash-2x2", "tile-sar8-bpc4")
      for block in BLOCKS),
    *(("tiny", block) for block in ACCELERATOR_BLOCKS),
])
def test_generated_top_is_lint_clean(design_manifest, design, block):
    messages = lint(find_verilator(), design_manifest(design).parent / f"{block}.v", block)
    assert messages == [], "\n".join(messages[:20])


def test_lint_reports_what_it_does_not_waive(tmp_path):
    v = tmp_path / "bad.v"
    v.write_text("module bad(input [1:0] s, output reg y);\n"
                 "  always @* case (s) 2'd0: y = 1'b0; 2'd1: y = 1'b1; endcase\n"
                 "endmodule\n")
    messages = lint(find_verilator(), v, "bad")
    assert any("CASEINCOMPLETE" in m for m in messages), messages
    assert any("LATCH" in m for m in messages), messages


def test_every_waiver_has_a_reason():
    assert set(BUILD_WAIVERS) <= set(LINT_WAIVERS)
    assert all(len(reason) > 40 for reason in LINT_WAIVERS.values())


@pytest.mark.parametrize("design", ["tiny", "tile-flash-2x2"])
def test_shell_black_box_matches_the_tile_pins(design_manifest, design):
    # every pin of the macro's black box but the programming port's is an xbar__ port of the
    # tile, same width, opposite direction; the black box parses (its outputs are undriven: it
    # has no body)
    import json
    import re

    d = design_manifest(design).parent
    manifest = json.loads((d / "manifest.json").read_text())
    assert manifest["blocks"]["analog_tile"]["extra_files"] == ["crossbar_shell.v"]
    stub = (d / "crossbar_shell.v").read_text()
    pins = {name: (direction, int(hi) + 1 if hi else 1) for direction, hi, name in
            re.findall(r"(input|output) (?:\[(\d+):0\] )?(\w+)", stub)}
    tile = {p["name"][len("xbar__"):]: ("input" if p["direction"] == "out" else "output",
                                        p["width"])
            for p in manifest["blocks"]["analog_tile"]["ports"] if p["name"].startswith("xbar__")}
    assert pins.pop("clk") == ("input", 1)
    # the programming pins: the weight programmer's port (prog_signature), not the tile's
    from amaranth import Shape
    from amaranth.lib.wiring import Out

    from cimforge.config import config_from_dict
    from cimforge.golden.analog_tile import AnalogTileSpec
    from cimforge.hw.crossbar_shell import prog_signature

    spec = AnalogTileSpec.from_config(config_from_dict(manifest["config"], source="manifest"))
    prog = {f"prog_{pin}": ("input" if m.flow == Out else "output", Shape.cast(m.shape).width)
            for pin, m in prog_signature(spec).members.items()}
    assert {k: pins.pop(k) for k in list(pins) if k.startswith("prog_")} == prog
    assert pins == tile
    messages = lint(find_verilator(), d / "crossbar_shell.v", "crossbar_shell")
    other = [m for m in messages
             if not any(k in m for k in ("UNDRIVEN", "UNUSED", "Exiting due to"))]
    assert other == [], messages
