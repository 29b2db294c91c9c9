"""``cimforge sweep``: points, CSV and plot, progress, and every bad argument refused."""

import dataclasses
from pathlib import Path

import pytest

from cimforge.cli import main
from cimforge.commands import sweep
from cimforge.config import load_config
from cimforge.errors import CliError

DATA = Path(__file__).resolve().parent.parent / "data"


def test_sweep_writes_csv_and_plot(tmp_path, capsys):
    src = tmp_path / "in.txt"
    lines = (DATA / "minilm_sentences.txt").read_text(encoding="utf-8").splitlines()
    src.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    out = tmp_path / "sw.csv"
    argv = ["sweep", "--config", "minilm-pcm", "--adc-bits", "8", "--t-inference", "3600",
            "--seeds", "2", "--rows-per-read", "128", "--input", str(src),
            "--output", str(out)]
    assert main(argv) == 0
    rows = out.read_text().splitlines()
    assert rows[0] == sweep.CSV_HEADER and len(rows) == 3
    fields = [r.split(",") for r in rows[1:]]
    # the hardware point's cost columns are cimforge estimate's figures for it
    from cimforge.golden.estimate import estimate

    est = estimate(load_config("minilm-pcm").with_sections(tile={"rows_per_read": 128}))
    for f in fields:
        assert f[6:8] == ["2", "128"]
        assert float(f[8]) == pytest.approx(est.total_j, rel=1e-5)
        assert float(f[9]) == pytest.approx(est.latency_s, rel=1e-5)
        assert float(f[10]) == pytest.approx(sum(est.area_m2.values()) * 1e6, rel=1e-5)
        assert float(f[11]) == pytest.approx(est.tops_per_w, rel=1e-5)
    assert [f[:3] for f in fields] == [["8", "3600", "0"], ["8", "3600", "1"]]
    means = [float(f[3]) for f in fields]
    assert means[0] != means[1]  # another seed, other draws
    assert all(0.5 < m <= 1.0 and float(f[4]) <= m for m, f in zip(means, fields))
    # the point is what the model gives for that config, computed here independently
    from cimforge.golden.float_model import l2_normalize, load_minilm
    from cimforge.golden.quant import CimLinear

    enc = load_minilm()
    cfg = dataclasses.replace(
        load_config("minilm-pcm").with_sections(tile={"rows_per_read": 128}), seed=1)
    cos = (l2_normalize(enc.with_linear(CimLinear(cfg)).embed(lines[:2]))
           * enc.embed(lines[:2])).sum(axis=1)
    assert means[1] == pytest.approx(cos.mean(), abs=1e-6)
    for png in ("sw.png", "sw-pareto.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "sw-pareto.png", "sw.csv",
                                                           "sw.png"]
    err = capsys.readouterr().err
    assert "2/2 adc 8 bits, 2 b/cell, 128 rows, t 3600 s, seed 1" in err and "#" * 24 in err


def test_hardware_points_are_every_combination():
    cfg = load_config("minilm-pcm")
    pts = sweep.hardware_points(cfg, [6, 8], [1, 2], [64, 256])
    assert [(p.adc.bits, p.tile.bits_per_cell, p.tile.rows_per_read) for p in pts] == [
        (b, c, r) for b in (6, 8) for c in (1, 2) for r in (64, 256)]
    runs = sweep.sweep_points(cfg, [8], [1.0, 10.0], 2, [2], [64, 256])
    assert [(p.tile.rows_per_read, p.analog.t_inference, p.seed) for p in runs] == [
        (r, t, s) for r in (64, 256) for t in (1.0, 10.0) for s in (0, 1)]


def test_pareto_front():
    pts = [(1.0, 0.90), (2.0, 0.95), (1.5, 0.80), (3.0, 0.95), (0.5, 0.5), (2.5, 0.99)]
    # (1.5, .80) is beaten by (1, .90); (3, .95) by (2, .95)
    assert sweep.pareto_front(pts) == [4, 0, 1, 5]


def test_default_sentences_are_the_reference():
    want = [s.strip() for s in (DATA / "minilm_sentences.txt").read_text().splitlines()
            if s.strip()]
    assert sweep._sentences(None) == want and len(want) == 30


def test_parse_list():
    assert sweep.parse_list("--adc-bits", "4, 6,8", int, "integers") == [4, 6, 8]
    assert sweep.parse_list("--t", "1,3.6e3", float, "seconds") == [1.0, 3600.0]
    for bad in ("", "4,,8", "4,x", "4.5"):
        with pytest.raises(CliError, match=r"--adc-bits .*: must be a comma-separated list"):
            sweep.parse_list("--adc-bits", bad, int, "integers")


@pytest.mark.parametrize("args, message", [
    (["--adc-bits", "4,x"], "--adc-bits '4,x': must be a comma-separated list of integers"),
    (["--adc-bits", "1"], "--adc-bits 1: adc.bits: 1 cannot resolve the 4 levels"),
    (["--adc-bits", "17"], "--adc-bits 17: "),
    (["--t-inference", "3600,-1"], "--t-inference -1: "),
    (["--t-inference", "1,a"], "--t-inference '1,a': must be a comma-separated list"),
    (["--seeds", "0"], "--seeds 0: must be an integer in [1, 1000]"),
    (["--bits-per-cell", "3"], "--bits-per-cell 3: "),
    (["--rows-per-read", "100"], "--rows-per-read 100: "),
    (["--rows-per-read", "a"], "--rows-per-read 'a': must be a comma-separated list"),
    (["--batch-size", "0"], "--batch-size 0: must be a positive integer"),
    (["--config", "tiny"], "its [model] is 'tiny': the sweep runs MiniLM"),
    (["--config", "nope"], "nope"),
    (["--output", "x.txt"], "must end in .csv"),
    (["--output", "missing/x.csv"], "directory 'missing' does not exist"),
    (["--input", "missing.txt"], "--input 'missing.txt': file not found"),
])
def test_bad_arguments(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--config", "minilm-pcm", *args]
    if "--config" in args:
        argv = ["sweep", *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cimforge sweep: error: ") and message in err, err
    assert list(tmp_path.iterdir()) == []  # nothing written
