"""``cimforge latency`` and ``cimforge endurance``: a decoder's prefill and decode-step
cycles from the cycle model, and what generation writes into each memory."""

import json

import pytest

from cimforge.cli import main
from cimforge.config import load_config
from cimforge.golden.accel_timing import AcceleratorTiming


def test_json_matches_the_cycle_model(capsys, tmp_path):
    png = tmp_path / "decode.png"
    assert main(["latency", "--max-cache", "20", "--prompt", "3", "--plot", str(png),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    tm = AcceleratorTiming(load_config("tiny-decoder"))
    assert report["prefill"]["cycles"] == tm.schedule(3).latency
    steps = report["decode"]
    assert [s["cached"] for s in steps] == list(range(20))
    assert steps[5]["cycles"] == tm.schedule(1, base=5).latency
    assert all(sum(s["split"].values()) == s["cycles"] for s in steps)
    # beyond the capacity (16): taller macros, the same per-key growth
    assert steps[19]["cycles"] - steps[18]["cycles"] == steps[5]["cycles"] - steps[4]["cycles"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_table(capsys):
    assert main(["latency"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny-decoder (KV capacity 16): prefill of 4 tokens")
    assert "tile reads" in out and "\n    15 " in out


@pytest.mark.parametrize("argv, message", [
    (["--config", "tiny"], "--config tiny is an encoder model: latency needs model.kind = "
                           "'decoder'"),
    (["--max-cache", "0"], "--max-cache must be in [1, 4096], not 0"),
    (["--prompt", "17"], "--prompt must be in [1, 16] (the KV capacity), not 17"),
])
def test_refusals(capsys, tmp_path, argv, message):
    png = tmp_path / "p.png"
    assert main(["latency", *argv, "--plot", str(png)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and not captured.out and not png.exists()


def test_endurance_arithmetic(capsys):
    from cimforge.config import KNOWN_DEVICES
    from cimforge.golden.endurance import endurance

    cfg = load_config("tiny-decoder")
    e = endurance(cfg)
    m = cfg.model
    assert e.kv_bits == 2 * m.n_layers * m.d_model * cfg.numerics.act_bits
    assert e.step_cycles == AcceleratorTiming(cfg).schedule(1, base=m.seq_len // 2).latency
    assert e.tokens_per_s == cfg.accelerator.clock_mhz * 1e6 / e.step_cycles
    pcm = e.lifetime_s["pcm"]
    assert pcm["K and V cache"] == KNOWN_DEVICES["pcm"].endurance * m.seq_len / e.tokens_per_s
    assert pcm["activation buffers"] == KNOWN_DEVICES["pcm"].endurance / e.tokens_per_s
    assert e.crossbar_bits == 0
    assert main(["endurance"]) == 0
    out = capsys.readouterr().out
    assert "K and V cache 512 bits (4 macro rows)" in out and "\nreram " in out
    assert main(["endurance", "--config", "tiny"]) == 2
    assert "endurance needs model.kind = 'decoder'" in capsys.readouterr().err
