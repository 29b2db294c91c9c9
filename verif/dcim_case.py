"""Command sequences for the digital-CIM macro's benches, and the golden results and cycles
they must produce (:mod:`cimforge.golden.dcim`)."""

from __future__ import annotations

import numpy as np

from cimforge.golden.dcim import APPEND, SCORES, WEIGHTED, WRITE, DcimCommand, DcimModel, DcimSpec

__all__ = ["attention_commands", "expected_results", "random_commands"]


def _vector(spec: DcimSpec, rng: np.random.Generator, used: int, extreme: bool = False,
            unsigned: bool = False) -> tuple[int, ...]:
    """``used`` random elements, signed ``bits``-bit (``unsigned``: unsigned), then zeros;
    ``extreme``: only the range's ends and their neighbours."""
    lo, hi = -(1 << (spec.bits - 1)), (1 << (spec.bits - 1)) - 1
    if unsigned:
        lo, hi = 0, (1 << spec.bits) - 1
    v = np.zeros(spec.width, dtype=np.int64)
    v[:used] = rng.integers(lo, hi + 1, size=used)
    if extreme:
        v[:used] = rng.choice([lo, hi, lo + 1, hi - 1], size=used)
    return tuple(int(e) for e in v)


def attention_commands(spec: DcimSpec, rng: np.random.Generator, tokens: int
                       ) -> list[DcimCommand]:
    """Both uses and the KV append: keys appended token by token with a query after each
    (``q . K^T`` over a growing cache, wrapping once full), then values written by address
    and weighted sums ``a . V`` (unsigned ``a``), with the extremes among them."""
    cmds = []
    for t in range(tokens):
        cmds.append(DcimCommand(APPEND, _vector(spec, rng, spec.cols, extreme=t % 3 == 0)))
        cmds.append(DcimCommand(SCORES, _vector(spec, rng, spec.cols, extreme=t % 4 == 1)))
    for r in range(spec.rows):
        cmds.append(DcimCommand(WRITE, _vector(spec, rng, spec.cols), addr=r))
    for k in range(4):
        cmds.append(DcimCommand(WEIGHTED, _vector(spec, rng, spec.rows, extreme=k == 0,
                                                  unsigned=True)))
    top = (1 << spec.bits) - 1  # every weight at its largest: the widest results
    cmds.append(DcimCommand(WEIGHTED, tuple([top] * spec.rows + [0] * (spec.width - spec.rows))))
    return cmds


def random_commands(spec: DcimSpec, rng: np.random.Generator, n: int) -> list[DcimCommand]:
    """Any mix of the four commands, computes on about half."""
    cmds = []
    for _ in range(n):
        op = int(rng.choice([WRITE, APPEND, SCORES, WEIGHTED], p=[0.25, 0.25, 0.25, 0.25]))
        used = spec.rows if op == WEIGHTED else spec.cols
        cmds.append(DcimCommand(op, _vector(spec, rng, used, unsigned=op == WEIGHTED),
                                addr=int(rng.integers(spec.rows))))
    return cmds


def expected_results(spec: DcimSpec, commands: list[DcimCommand]) -> list[dict]:
    """Per compute command: ``data``, ``weighted`` and ``tokens`` as the result carries them."""
    model = DcimModel(spec)
    out = []
    for cmd in commands:
        tokens = model.tokens
        r = model.apply(cmd)
        if r is not None:
            out.append({"data": r, "weighted": int(cmd.op == WEIGHTED), "tokens": tokens})
    return out
