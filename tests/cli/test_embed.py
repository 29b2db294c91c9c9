"""``cimforge embed``: output against the MiniLM reference, errors, nothing half-written."""

import os
from pathlib import Path

import numpy as np
import pytest

from cimforge.cli import main
from cimforge.commands import embed
from cimforge.errors import CliError

DATA = Path(__file__).resolve().parent.parent / "data"
SENTENCES = DATA / "minilm_sentences.txt"


@pytest.fixture(scope="module")
def reference():
    with np.load(DATA / "minilm_reference.npz") as z:
        return {k: z[k] for k in z.files}


def _assert_matches(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float32 and got.shape == want.shape
    cos = np.einsum("nd,nd->n", got, want) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1)
    )
    assert cos.min() >= 0.99999
    assert np.abs(got - want).max() <= 1e-4


def test_embed_float_matches_reference(tmp_path, capsys, reference):
    out = tmp_path / "emb.npy"
    argv = ["embed", "--model", "minilm", "--mode", "float"]
    assert main([*argv, "--input", str(SENTENCES), "--output", str(out)]) == 0
    _assert_matches(np.load(out), reference["embeddings"])
    assert [p.name for p in tmp_path.iterdir()] == ["emb.npy"]  # no temporary left behind
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "embedded 30 sentences with minilm (float) in " in captured.err


def test_embed_int_only_keeps_cosine(tmp_path, capsys, reference):
    out = tmp_path / "emb.npy"
    argv = ["embed", "--mode", "int-only", "--input", str(SENTENCES), "--output", str(out)]
    assert main(argv) == 0
    got = np.load(out)
    assert got.dtype == np.float32 and got.shape == reference["embeddings"].shape
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    cos = np.einsum("nd,nd->n", got, reference["embeddings"])
    assert cos.mean() >= 0.99, cos.mean()
    assert "embedded 30 sentences with minilm (int-only) in " in capsys.readouterr().err


def test_blank_lines_skipped_and_whitespace_stripped(tmp_path, reference):
    src = tmp_path / "in.txt"
    lines = reference["sentences"]
    src.write_text(f"\n  {lines[3]}  \r\n\n\t\n{lines[0]}\t\n   ", encoding="utf-8")
    out = tmp_path / "emb.npy"
    assert main(["embed", "--input", str(src), "--output", str(out), "--batch-size", "1"]) == 0
    _assert_matches(np.load(out), reference["embeddings"][[3, 0]])


def _fails(argv: list[str], capsys, message: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cimforge embed: error: ")
    assert message in err


def test_missing_input(tmp_path, capsys):
    out = tmp_path / "emb.npy"
    missing = tmp_path / "nope.txt"
    _fails(
        ["embed", "--input", str(missing), "--output", str(out)],
        capsys,
        f"--input '{missing}': file not found",
    )
    assert list(tmp_path.iterdir()) == []


def test_input_without_sentences(tmp_path, capsys):
    src = tmp_path / "blank.txt"
    src.write_text("\n   \n\t\n", encoding="utf-8")
    out = tmp_path / "emb.npy"
    _fails(
        ["embed", "--input", str(src), "--output", str(out)],
        capsys,
        "no sentences: the file must have at least one non-empty line",
    )
    assert not out.exists()


def test_input_not_utf8(tmp_path, capsys):
    src = tmp_path / "latin1.txt"
    src.write_bytes("caf\xe9\n".encode("latin-1"))
    out = tmp_path / "emb.npy"
    _fails(["embed", "--input", str(src), "--output", str(out)], capsys, "not UTF-8 text")
    assert not out.exists()


def test_input_is_a_directory(tmp_path, capsys):
    out = tmp_path / "emb.npy"
    _fails(["embed", "--input", str(tmp_path), "--output", str(out)], capsys, "is a directory")
    assert not out.exists()


def test_output_directory_missing(tmp_path, capsys):
    out = tmp_path / "missing" / "emb.npy"
    _fails(
        ["embed", "--input", str(SENTENCES), "--output", str(out)],
        capsys,
        f"directory '{out.parent}' does not exist: create it first",
    )
    assert not out.parent.exists()


def test_bad_batch_size(tmp_path, capsys):
    out = tmp_path / "emb.npy"
    _fails(
        ["embed", "--input", str(SENTENCES), "--output", str(out), "--batch-size", "0"],
        capsys,
        "--batch-size 0: must be a positive integer",
    )
    assert not out.exists()


@pytest.mark.parametrize(
    ("option", "value", "allowed"), [("--model", "gpt2", "minilm"), ("--mode", "analog", "cim")]
)
def test_bad_choice(tmp_path, capsys, option, value, allowed):
    out = tmp_path / "emb.npy"
    with pytest.raises(SystemExit) as exc:
        main(["embed", option, value, "--input", str(SENTENCES), "--output", str(out)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: invalid choice: '{value}' (choose from " in err
    assert allowed in err.splitlines()[-1]
    assert not out.exists()


def test_failure_in_the_mode_leaves_no_file(tmp_path, capsys, monkeypatch):
    def broken(model, sentences, batch_size, cfg):
        raise CliError("cannot load model 'minilm': simulated")

    monkeypatch.setitem(embed.MODES, "float", broken)
    out = tmp_path / "emb.npy"
    _fails(["embed", "--input", str(SENTENCES), "--output", str(out)], capsys, "simulated")
    assert list(tmp_path.iterdir()) == []


def test_config_of_another_model_is_refused(tmp_path, capsys):
    out = tmp_path / "emb.npy"
    _fails(["embed", "--mode", "int", "--config", "bert-base", "--input", str(SENTENCES),
            "--output", str(out)], capsys,
           "--config bert-base: its [model] is 'bert-base' with a different shape from 'minilm'")
    assert not out.exists()


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    def broken_save(f, array, allow_pickle):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(embed.np, "save", broken_save)
    out = tmp_path / "emb.npy"
    with pytest.raises(OSError):
        embed.write_npy_atomic(out, np.zeros((2, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_and_keeps_permissions(tmp_path):
    out = tmp_path / "emb.npy"
    out.write_bytes(b"old")
    embed.write_npy_atomic(out, np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(np.load(out), np.ones((2, 3)))
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain open() would create it
    assert [p.name for p in tmp_path.iterdir()] == ["emb.npy"]


def test_int_only_refuses_widths_it_cannot_compute(tmp_path, capsys):
    cfg = tmp_path / "wide.toml"
    cfg.write_text('base = "minilm"\n[numerics]\nacc_bits = 48\n')
    out = tmp_path / "emb.npy"
    _fails(["embed", "--mode", "int-only", "--config", str(cfg), "--input", str(SENTENCES),
            "--output", str(out)], capsys,
           "--config wide: the requantiser's product would be 74 bits wide")
    assert not out.exists()


def test_embed_accel_keeps_cosine(tmp_path, capsys, reference):
    # the golden accelerator with 8-bit ADCs and every device effect off: the target is a mean
    # cosine of 0.99 to the float model
    out = tmp_path / "emb.npy"
    argv = ["embed", "--mode", "accel", "--config", "minilm-adc8", "--input", str(SENTENCES),
            "--output", str(out)]
    assert main(argv) == 0
    cos = np.einsum("nd,nd->n", np.load(out), reference["embeddings"])
    assert cos.mean() >= 0.99, cos.mean()
    assert "embedded 30 sentences with minilm (accel) in " in capsys.readouterr().err


def test_embed_accel_refuses_a_model_that_does_not_fit(tmp_path, capsys):
    cfg = tmp_path / "small.toml"
    cfg.write_text('base = "minilm"\n[accelerator]\ncrossbars = 1000\n')
    out = tmp_path / "emb.npy"
    argv = ["embed", "--mode", "accel", "--config", str(cfg), "--input", str(SENTENCES),
            "--output", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "needs 1584 crossbars" in err and "accelerator.crossbars declares 1000" in err
    assert not out.exists()
