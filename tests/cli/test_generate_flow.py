"""cimforge generate and cimforge flow, end to end through the CLI."""

import json
from pathlib import Path

import pytest

from cimforge.cli import main
from cimforge.config import load_config

ROOT_CONFIG = "configs/tiny.toml"


def test_generate_writes_verilog_and_manifest(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the README runs from the root
    out = tmp_path / "rtl"
    assert main(["generate", "--config", ROOT_CONFIG, "--out", str(out)]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config_digest"] == load_config("tiny").digest()
    block = manifest["blocks"]["shift_add"]
    text = (out / block["file"]).read_text()
    assert "module shift_add(" in text
    ports = {p["name"]: p for p in block["ports"]}
    assert {"clk", "rst", "i_stream__payload", "i_stream__valid", "i_stream__ready",
            "o_stream__payload", "o_stream__valid", "o_stream__ready"} == set(ports)
    for name, p in ports.items():
        width = f"[{p['width'] - 1}:0] " if p["width"] > 1 else ""
        assert f"{'input' if p['direction'] == 'in' else 'output'} {width}{name};" in text
    assert block["parameters"]["lanes"] == 8 and block["latency"] == 2
    assert "shift_add.v" in capsys.readouterr().out


@pytest.mark.parametrize("text, message", [
    ('[adc]\ncols_per_adc = 5\n', "adc.cols_per_adc: 5 does not divide tile.cols (32)"),
    ('[adc]\nbits = 17\n', "adc.bits: 17 is out of range: must be an integer in [1, 16]"),
    ('[adc]\nkind = "flash"\nbits = 9\n', "adc.bits: 9 is too wide for a flash ADC"),
    ('[tile]\ncols = 36\n', "tile.cols: 36 is not a multiple of the 8 columns one output"),
    ('[tile]\nrow_tiles = 17\n', "tile.row_tiles: 17 is out of range: must be an integer in "
     "[1, 16]"),
    ('[numerics]\nacc_bits = 48\n', "cannot generate block 'requant': the requantiser's "
     "product would be 74 bits wide"),
])
def test_generate_refuses_bad_hardware_and_leaves_nothing(tmp_path, capsys, text, message):
    bad = tmp_path / "bad.toml"
    bad.write_text('base = "tiny"\n' + text)
    out = tmp_path / "rtl"
    assert main(["generate", "--config", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: {message}" in err
    assert not out.exists()


BLOCKS = {"shift_add", "analog_tile_sim", "dcim", "requant", "activation", "softmax",
          "layernorm", "token_quant"}


@pytest.mark.parametrize("config, accelerator", [
    # the eight blocks: the default run (the accelerator's bench runs in tests/cocotb)
    (str(Path(__file__).parents[1] / "data" / "configs" / "tiny-blocks.toml"), False),
    # the whole flow CI runs, the accelerator's row included (15 minutes here)
    pytest.param("tiny", True, marks=pytest.mark.full),
], ids=["tiny-blocks", "tiny"])
def test_flow_passes_and_reports(tmp_path, capsys, cache_root, config, accelerator):
    out = tmp_path / "flow"
    # the cocotb tests' build cache: the same design builds once (CI's `cimforge flow` and
    # those tests build from scratch)
    # Verilator only: the blocks' Icarus benches run in tests/cocotb (CI's flow runs both)
    assert main(["flow", "--config", config, "--out", str(out), "--sim", "verilator",
                 "--build-cache", str(cache_root)]) == 0
    captured = capsys.readouterr()
    assert "PASS" in captured.out and "[shift_add / verilator]" in captured.err
    report = json.loads((out / "report.json").read_text())
    assert report["passed"] is True
    assert {r["simulator"] for r in report["rows"]} == {"verilator"}
    assert {r["block"] for r in report["rows"]} == BLOCKS | (
        {"accelerator_sim"} if accelerator else set())
    # the accelerator runs in Verilator only in the flow (Icarus in tests/cocotb)
    assert {r["simulator"] for r in report["rows"] if r["block"] == "accelerator_sim"} == (
        {"verilator"} if accelerator else set())
    for row in report["rows"]:
        least = 4 if row["block"] == "accelerator_sim" else 6
        assert row["result"] == "PASS" and row["passed"] == row["tests"] >= least
        assert row["cycles"] == row["predicted_cycles"] > 0
        if row["block"] == "analog_tile_sim":
            assert row["utilisation"] >= 0.95
        if row["block"] in ("requant", "activation", "softmax", "layernorm", "token_quant"):
            assert row["utilisation"] == 1.0  # one result per cycle once streaming
    md = (out / "report.md").read_text()
    assert "| shift_add       | verilator" in md and "**PASS**" in md
    assert ("## Accelerator" in md and "tight bound" in md) == accelerator


def test_flow_bad_sim_choice(capsys):
    with pytest.raises(SystemExit) as info:
        main(["flow", "--sim", "modelsim"])
    assert info.value.code == 2
    assert "invalid choice: 'modelsim'" in capsys.readouterr().err
