"""``cimforge embed``: sentence embeddings of a text file, one sentence per line, to ``.npy``.

Modes are entries of :data:`MODES`: a function ``(model_name, sentences, batch_size)`` that
returns an ``(n, d)`` float32 array of L2-normalised rows.  Adding a mode (``cim``, ``int``)
is adding one entry.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from cimforge.commands.paths import check_out_file, path_arg
from cimforge.config import KNOWN_MODELS, load_config
from cimforge.errors import CliError
from cimforge.files import atomic_write

__all__ = ["add_parser", "run", "MODES", "MODELS", "load_model", "read_sentences",
           "write_npy_atomic"]

# Models the embed command can load; each name is a key of cimforge.config.KNOWN_MODELS.
MODELS = ("minilm",)


def load_model(model: str):
    """The model named ``model`` (a name of :data:`MODELS`), loaded once per process and
    place its files come from; a load failure is a CliError."""
    from cimforge.model_files import MINILM_ENV, cache_root

    return _load_model(model, os.environ.get(MINILM_ENV), str(cache_root()))


@functools.cache
def _load_model(model: str, files_env: str | None, cache: str):
    from cimforge.golden.float_model import ModelFormatError, load_minilm
    from cimforge.model_files import ModelFilesError

    try:
        return load_minilm()
    except (ModelFormatError, ModelFilesError, OSError, ImportError) as e:
        raise CliError(f"cannot load model {model!r}: {e}") from None


def _embed_float(model: str, sentences: list[str], batch_size: int, cfg) -> np.ndarray:
    """float32 reference model (golden/float_model.py)."""
    return load_model(model).embed(sentences, batch_size=batch_size)


def _embed_int(model: str, sentences: list[str], batch_size: int, cfg) -> np.ndarray:
    """Every linear layer as an exact int8 matmul (golden/quant.py)."""
    from cimforge.golden.quant import IntLinear

    return load_model(model).with_linear(IntLinear(cfg)).embed(sentences, batch_size=batch_size)


def _embed_cim(model: str, sentences: list[str], batch_size: int, cfg) -> np.ndarray:
    """Every linear layer through the analog crossbar model (golden/cim.py)."""
    from cimforge.golden.quant import CimLinear

    return load_model(model).with_linear(CimLinear(cfg)).embed(sentences, batch_size=batch_size)


def _integer_model(cls, model: str, cfg):
    """``cls`` (an integer encoder) of ``model`` with ``cfg``, its scales calibrated on the
    packaged reference sentences; a config it refuses is a CliError."""
    from cimforge.data import reference_sentences
    from cimforge.golden.int_model import calibrate

    enc = load_model(model)
    ranges = calibrate(enc, reference_sentences())
    try:
        return cls(enc, cfg, ranges)
    except ValueError as e:
        raise CliError(f"--config {cfg.name}: {e}") from None


def _embed_int_only(model: str, sentences: list[str], batch_size: int, cfg) -> np.ndarray:
    """Every operation through the golden integer units (golden/int_model.py), with scales
    calibrated on the packaged reference sentences."""
    from cimforge.golden.int_model import IntOnlyEncoder

    return _integer_model(IntOnlyEncoder, model, cfg).embed(sentences, batch_size=batch_size)


def _embed_accel(model: str, sentences: list[str], batch_size: int, cfg) -> np.ndarray:
    """The golden accelerator (golden/accelerator.py): the integer units, with every linear
    layer on the analog tile units the mapper places it on, one sentence at a time."""
    from cimforge.golden.accelerator import AcceleratorModel, KvCapacityError

    accel = _integer_model(AcceleratorModel, model, cfg)
    try:
        return accel.embed(sentences, batch_size=batch_size)
    except KvCapacityError as e:
        raise CliError(f"--input: {e}") from None


MODES: dict[str, Callable[[str, list[str], int, object], np.ndarray]] = {
    "float": _embed_float,
    "int": _embed_int,
    "int-only": _embed_int_only,
    "cim": _embed_cim,
    "accel": _embed_accel,
}


def add_parser(sub):
    p = sub.add_parser(
        "embed",
        help="embed sentences (one per line) into a .npy file",
        description="Embed every non-empty line of --input with a sentence-embedding model "
        "and write an (n, d) float32 .npy of L2-normalised rows, in input order.",
    )
    p.add_argument("--model", default="minilm", choices=MODELS, help="model (default: minilm)")
    p.add_argument(
        "--mode",
        default="float",
        choices=tuple(MODES),
        help="numerics: float = float32 reference (default), int = int8 linear layers, "
        "int-only = every operation through the integer units (softmax, LayerNorm, GELU, "
        "requantisers), cim = linear layers through the analog crossbar model of --config, "
        "accel = the golden accelerator: int-only with every linear layer on the analog tile "
        "units --config maps it to (cimforge map)",
    )
    p.add_argument(
        "--config", default="minilm", metavar="PRESET|FILE",
        help="hardware config for --mode int, int-only, cim and accel (default: minilm)",
    )
    p.add_argument("--input", required=True, type=path_arg,
                   help="UTF-8 text, one sentence per line")
    p.add_argument("--output", required=True, type=path_arg, help=".npy file to write")
    p.add_argument(
        "--batch-size", default=32, type=int, metavar="N", help="sentences per pass (default: 32)"
    )
    return p


def read_sentences(path: Path) -> list[str]:
    """Non-empty lines of a UTF-8 file, stripped of surrounding whitespace.

    Raises
    ------
    CliError
        If the file is missing, unreadable, not UTF-8 or has no non-empty line.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")  # a leading byte-order mark is not text
    except FileNotFoundError:
        raise CliError(f"--input {str(path)!r}: file not found") from None
    except IsADirectoryError:
        raise CliError(f"--input {str(path)!r}: is a directory, not a text file") from None
    except UnicodeDecodeError as e:
        raise CliError(
            f"--input {str(path)!r}: not UTF-8 text (byte {e.start}: {e.reason})"
        ) from None
    except OSError as e:
        raise CliError(f"--input {str(path)!r}: cannot read: {e.strerror}") from None
    if "\0" in text:
        line = text[:text.index("\0")].count("\n") + 1
        raise CliError(f"--input {str(path)!r}: a NUL byte on line {line}: not a text file")
    sentences = [s for s in (line.strip() for line in text.splitlines()) if s]
    if not sentences:
        raise CliError(
            f"--input {str(path)!r}: no sentences: the file must have at least one non-empty line"
        )
    return sentences


def _warn_truncated(model: str, sentences: list[str], path: Path) -> None:
    """Say which sentences the model truncates (docs/usage.md, "embed": the policy)."""
    encoder = load_model(model)
    long = encoder.truncated(sentences)
    if long:
        shown = ", ".join(str(i + 1) for i in long[:10]) + (", ..." if len(long) > 10 else "")
        print(f"cimforge embed: warning: {len(long)} sentence(s) of {str(path)!r} longer than "
              f"{model}'s {encoder.max_tokens} tokens are truncated to their first "
              f"{encoder.max_tokens} (sentence {shown}, counting non-empty lines)",
              file=sys.stderr)


def write_npy_atomic(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` as .npy; ``path`` holds the whole array or is left as it was."""
    with atomic_write(path, "wb") as f:
        np.save(f, array, allow_pickle=False)


def run(args) -> int:
    if args.batch_size < 1:
        raise CliError(f"--batch-size {args.batch_size}: must be a positive integer")
    # Everything the user can get wrong is checked before the model is loaded.
    check_out_file(args.output, "--output", inputs=(("--input", args.input),))
    sentences = read_sentences(args.input)
    start = time.perf_counter()
    cfg = load_config(args.config)
    if cfg.model != KNOWN_MODELS[args.model]:
        raise CliError(
            f"--config {args.config}: its [model] is {cfg.model.name!r} with a different shape "
            f"from {args.model!r}: use a config whose [model] name is {args.model!r}"
        )
    _warn_truncated(args.model, sentences, args.input)
    emb = MODES[args.mode](args.model, sentences, args.batch_size, cfg)
    try:
        write_npy_atomic(args.output, np.ascontiguousarray(emb, dtype=np.float32))
    except OSError as e:
        raise CliError(f"--output {str(args.output)!r}: cannot write: {e.strerror}") from None
    seconds = time.perf_counter() - start
    print(
        f"embedded {len(sentences)} sentences with {args.model} ({args.mode}) in "
        f"{seconds:.2f} s -> {args.output} {emb.shape[0]}x{emb.shape[1]} float32",
        file=sys.stderr,
    )
    return 0
