"""``cimforge profile``: JSON and table output, errors, and the installed console script."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cimforge.cli import main
from cimforge.commands.profile import human
from cimforge.config import KNOWN_MODELS
from cimforge.golden.workload import profile


def test_json_is_one_object_with_the_profile(capsys):
    assert main(["profile", "--model", "bert-base", "--seq", "128", "--json"]) == 0
    out = capsys.readouterr().out
    p = json.loads(out)
    assert p == profile(KNOWN_MODELS["bert-base"], 128)
    assert out.count("\n") == 1


@pytest.mark.parametrize("name", sorted(KNOWN_MODELS))
def test_seq_defaults_to_the_model_seq_len(capsys, name):
    assert main(["profile", "--model", name, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seq_len"] == KNOWN_MODELS[name].seq_len


def test_table_has_human_units(capsys):
    assert main(["profile", "--model", "bert-base"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["model", "bert-base", "(encoder)"]
    assert "84.9M" in out and "10.9 GMAC" in out and "97.3 : 2.7" in out
    # values start in one column
    assert len({len(line) - len(line.split("  ")[-1].lstrip()) for line in lines}) == 1


def test_human_units():
    assert human(84_934_656) == "84.9M"
    assert human(173_946_175_488) == "174B"
    assert human(10_871_635_968, "MAC") == "10.9 GMAC"
    assert human(2_359_296, "B") == "2.36 MB"
    assert human(512) == "512"
    assert human(512, "B") == "512 B"


def test_bad_model(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["profile", "--model", "llama", "--json"])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "argument --model: invalid choice: 'llama' (choose from " in captured.err
    assert "bert-base" in captured.err


@pytest.mark.parametrize("seq", ["0", "-3", "513"])
def test_bad_seq(capsys, seq):
    assert main(["profile", "--model", "bert-base", "--seq", seq, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert (
        f"cimforge profile: error: --seq {seq}: must be a positive integer <= 512 "
        "(max_seq of bert-base)" in captured.err
    )


def test_seq_not_an_integer(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["profile", "--model", "gpt2", "--seq", "many"])
    assert exc.value.code == 2
    assert "argument --seq: invalid int value: 'many'" in capsys.readouterr().err


def test_console_script():
    exe = Path(sys.executable).parent / "cimforge"
    script = str(exe) if exe.exists() else shutil.which("cimforge")
    assert script, "the cimforge console script is not installed (pip install -e .)"
    done = subprocess.run(
        [script, "profile", "--model", "gpt3", "--seq", "2048", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    p = json.loads(done.stdout)
    assert p["model"] == "gpt3" and p["static_mvm_fraction"] > 0.95
    bad = subprocess.run(
        [script, "profile", "--model", "gpt2", "--seq", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "--seq 0: must be a positive integer" in bad.stderr
