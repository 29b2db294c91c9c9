"""``verilator --lint-only -Wall`` on every generated top, with only the waivers of
verif/lint.py."""

from pathlib import Path

import pytest

from cimforge.config import load_config
from hw.generate import BLOCKS, generate
from verif.lint import BUILD_WAIVERS, LINT_WAIVERS, lint
from verif.simulators import find_verilator

DESIGNS = Path(__file__).resolve().parents[1] / "data" / "configs"


@pytest.fixture(scope="module")
def designs(tmp_path_factory):
    out = {}
    for name in ("tiny", DESIGNS / "tile-flash-2x2.toml", DESIGNS / "tile-sar8-bpc4.toml"):
        cfg = load_config(name)
        d = tmp_path_factory.mktemp(cfg.name)
        generate(cfg, d)
        out[cfg.name] = d
    return out


@pytest.mark.parametrize("design", ["tiny", "tile-flash-2x2", "tile-sar8-bpc4"])
@pytest.mark.parametrize("block", list(BLOCKS))
def test_generated_top_is_lint_clean(designs, design, block):
    messages = lint(find_verilator(), designs[design] / f"{block}.v", block)
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
