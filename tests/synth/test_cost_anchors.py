"""The cost model's digital energy anchor: the NAND2 equivalents golden/cost.py divides
Horowitz's adder and multiplier energies by are what the generic synthesis flow gives those
circuits."""

from __future__ import annotations

import pytest

from cimforge.golden.cost import _HOROWITZ_45NM
from cimforge.synth.flow import synth_block

CIRCUITS = {
    "add8": "module add8(input [7:0] a, input [7:0] b, output [7:0] y); assign y = a + b; "
            "endmodule\n",
    "add32": "module add32(input [31:0] a, input [31:0] b, output [31:0] y); assign y = a + b; "
             "endmodule\n",
    "mul8": "module mul8(input [7:0] a, input [7:0] b, output [15:0] y); assign y = a * b; "
            "endmodule\n",
}


@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_anchor_gate_counts(name, tmp_path):
    row = synth_block(name, CIRCUITS[name], target="generic", cache_root=tmp_path)
    assert row["cells"]["nand2_eq"] == pytest.approx(_HOROWITZ_45NM[name][1])
