"""Analog tile unit: the cocotb bench on the generated Verilog, in Verilator and Icarus, for
designs that differ in their hardware (ADC kind, bits per cell, columns per ADC, DAC, tiles);
each test runs ideal and with every analog effect on.

The other designs run in Icarus only under ``-m full``: the flash design's bench takes over
five minutes there (the analog adapter's Python per read dominates), against under a minute
in Verilator, which runs every design by default."""

import pytest

from cimforge.verif.runner import run_bench

DESIGNS = ["tiny", "tile-flash-2x2", "tile-sar8-bpc4"]
CASES = [pytest.param(sim, design, marks=[pytest.mark.full] if sim == "icarus" and
                      design != "tiny" else [])
         for design in DESIGNS for sim in ("verilator", "icarus")]


@pytest.mark.parametrize("simulator, design", CASES, indirect=["simulator"])
def test_analog_tile_bench(design, design_manifest, simulator, work_dir, cache_root):
    manifest = design_manifest(design)
    result = run_bench(manifest, "analog_tile_sim", simulator, work_dir=work_dir,
                       cache_root=cache_root)
    names = {t.name for t in result.tests}
    assert len(result.tests) >= 7, names
    assert all(r["errors"] == 0 for r in result.records) and result.records
    full_rate = [r for r in result.records if r["pattern"] == "full_rate"
                 and r["utilisation"] is not None]
    assert full_rate and min(r["utilisation"] for r in full_rate) >= 0.95
