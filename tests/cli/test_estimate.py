"""cimforge estimate: the report, its JSON, the validation table and bad arguments."""

from __future__ import annotations

import json

import pytest

from cimforge.cli import main


def test_estimate_json(capsys):
    assert main(["estimate", "--config", "minilm", "--model", "bert-base", "--seq", "128",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model"] == "bert-base" and d["seq"] == 128 and d["kind"] == "encoder"
    assert d["total_j"] == pytest.approx(sum(d["energy_j"].values()))
    assert d["area_total_m2"] == pytest.approx(sum(d["area_m2"].values()))
    assert d["latency_s"] == pytest.approx(d["cycles"] / 100e6)
    assert {r["batch"] for r in d["gpu"]["baselines"]} == {1, 32}
    assert d["writes_bits"]["crossbars"] == 0 and d["programming"]["time_s"] > 0


def test_estimate_text_for_a_decoder(capsys):
    assert main(["estimate", "--config", "minilm", "--model", "gpt2", "--seq", "1024"]) == 0
    out = capsys.readouterr().out
    assert "per generated token, with 1024 tokens of context" in out
    assert "vs GPU      batch 1" in out and "ADCs" in out


def test_estimate_plot(tmp_path, capsys):
    png = tmp_path / "b.png"
    assert main(["estimate", "--model", "bert-base", "--seq", "128", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["estimate", "--plot", str(tmp_path / "x.jpg")]) == 2
    assert "--plot" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.png"]


def test_validate_lists_every_chip(capsys):
    assert main(["estimate", "--validate", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["chip"].split(" (")[0] for r in rows} == {"IBM 64-core PCM", "ISAAC", "NeuRRAM"}
    for r in rows:
        assert r["ratio"] == pytest.approx(r["model"] / r["published"])
        assert 0.5 <= r["ratio"] <= 2.0, r  # the target (docs/ppa.md, "Validation")


@pytest.mark.parametrize("args, message", [
    (["--seq", "0"], "--seq must be in [1, 512] for minilm, not 0"),
    (["--model", "gpt2", "--seq", "4096"], "--seq must be in [1, 1024] for gpt2, not 4096"),
    (["--config", "tiny", "--model", "bert-large"], "needs"),
])
def test_bad_arguments(args, message, capsys):
    assert main(["estimate", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
