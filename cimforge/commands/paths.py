"""Path arguments of the commands, checked before any work starts.

A path the command will write is checked at once, so that a mistake costs no elaboration, no
simulation and no model run, and nothing is written: an empty path (``--out ''``), a folder
that is a file, a file whose folder is missing or not writable, an output that is the input.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from cimforge.errors import CliError

__all__ = ["path_arg", "check_out_dir", "check_out_file"]


def path_arg(text: str) -> Path:
    """argparse ``type=`` of a path: the empty string is refused (``Path('')`` is ``.``)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path: name a file or folder")
    return Path(text)


def _writable_folder(folder: Path, option: str, path: Path) -> None:
    """The nearest existing ancestor of ``folder`` is a folder this process can write into."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise CliError(f"{option} {str(path)!r}: {str(probe)!r} is a file, not a directory")
    try:  # a real write: os.access says yes to root on a read-only mount's neighbours
        fd, tmp = tempfile.mkstemp(dir=probe, prefix=".cimforge-probe-")
    except OSError as e:
        raise CliError(f"{option} {str(path)!r}: cannot write into {str(probe)!r} "
                       f"({e.strerror})") from None
    os.close(fd)
    os.unlink(tmp)


def check_out_dir(path: Path, option: str = "--out") -> Path:
    """An output folder: new (created later) or an existing folder, writable."""
    if path.exists() and not path.is_dir():
        raise CliError(f"{option} {str(path)!r}: is a file: must be a directory (new or existing)")
    _writable_folder(path, option, path)
    return path


def check_out_file(path: Path, option: str, *, suffix: str | None = None,
                   inputs: tuple[tuple[str, Path], ...] = ()) -> Path:
    """An output file: not a folder, in an existing writable folder, with ``suffix`` if one
    is asked for, and none of ``inputs`` (``(option, path)`` pairs) under another name."""
    if suffix is not None and path.suffix != suffix:
        raise CliError(f"{option} {str(path)!r}: must be a {suffix} file")
    if path.is_dir():
        raise CliError(f"{option} {str(path)!r}: is a directory: give a file name")
    if not path.parent.is_dir():
        raise CliError(f"{option} {str(path)!r}: directory {str(path.parent)!r} does not exist: "
                       "create it first")
    _writable_folder(path.parent, option, path)
    if path.exists() and not os.access(path, os.W_OK):
        raise CliError(f"{option} {str(path)!r}: exists and cannot be written (permission "
                       "denied)")
    for in_option, in_path in inputs:
        if in_path is not None and in_path.exists() and path.exists() and os.path.samefile(
                in_path, path):
            raise CliError(f"{option} {str(path)!r}: is the {in_option} file: writing it would "
                           "destroy the input; give another name")
    return path
