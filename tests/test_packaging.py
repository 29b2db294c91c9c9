"""The installed namespace: one top-level package, ``cimforge``; the repository's ``hw/``,
``golden/``, ``verif/`` and ``synth/`` folders are its subpackages."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("hw", "golden", "verif", "synth")


def test_wheel_has_one_top_level_package(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".*", "build", "dist", "*.egg-info", "__pycache__", "tests", "benchmarks"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "--wheel-dir", str(tmp_path / "dist"), str(src)], check=True)
    (wheel,) = (tmp_path / "dist").glob("cimforge-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"cimforge"}
    for sub in SUBPACKAGES:
        assert f"cimforge/{sub}/__init__.py" in names
    assert "cimforge/verif/benches/__init__.py" in names
    assert "cimforge/presets/tiny.toml" in names


def test_no_top_level_import_of_a_subpackage():
    pattern = re.compile(rf"^\s*(from|import)\s+({'|'.join(SUBPACKAGES)})(\.|\s|$)", re.M)
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if any(p.startswith(".") or p in ("build", "dist") for p in parts):
            continue  # a virtual environment or build output inside the clone
        offenders += [f"{path.relative_to(ROOT)}: {m.group(0).strip()}"
                      for m in pattern.finditer(path.read_text(encoding="utf-8"))]
    assert offenders == []
