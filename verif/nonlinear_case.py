"""Stimulus for the non-linear units' benches and tests, and the golden results it must
produce (the unit modules of :mod:`cimforge.golden`). Everything random takes a numpy Generator."""

from __future__ import annotations

import numpy as np

from cimforge.config import MAX_SHIFT
from cimforge.golden.nonlinear import gelu_poly_params, gelu_table, layer_norm_params, multiplier
from cimforge.golden.requant import RequantSpec, requant_item
from cimforge.golden.softmax import softmax_rows

__all__ = ["requant_items", "requant_corners", "requant_linear_layer", "expected_requant",
           "softmax_case", "softmax_beats", "expected_softmax_beats", "activation_program",
           "ln_case", "token_rows"]


def requant_items(spec: RequantSpec, rng, n):
    lo, hi = -(1 << (spec.acc_bits - 1)), 1 << (spec.acc_bits - 1)
    items = []
    for k in range(n):
        narrow = int(rng.integers(2))
        # one item in eight with an exponent the field holds beyond max_exp (saturating)
        exp = int(rng.integers(spec.max_exp + 1 if k % 8 else spec.exp_field_max + 1))
        acc = int(rng.choice([lo, hi - 1, 0, -1])) if k % 7 == 0 else int(rng.integers(lo, hi))
        acc >>= int(rng.integers(0, spec.acc_bits))
        scale = float(rng.uniform(0.5, 2.0)) * 2.0 ** -float(rng.integers(-2, 40))
        m = multiplier(scale, spec.mult_bits)
        rb = spec.residual_bits if not narrow else spec.act_bits
        items.append({
            "acc": acc, "exp": exp,
            "bias": int(rng.integers(-(1 << (spec.bias_bits - 1)), 1 << (spec.bias_bits - 1)))
            >> int(rng.integers(0, spec.bias_bits)),
            "mult": m.mult, "shift": m.shift,
            "residual": int(rng.integers(-(1 << (rb - 1)), 1 << (rb - 1))) * int(k % 3 != 0),
            "narrow": narrow,
        })
    return items


def requant_corners(spec: RequantSpec) -> list[dict]:
    """Extremes of every field: accumulator and bias limits, the exponents 0, ``max_exp``
    and beyond it up to the field's largest (where the shifted sum saturates), the largest
    multiplier, shifts 0 and ``MAX_SHIFT``, residuals at their limits, both output widths;
    and the exponent edge alone: large accumulators shifted by every exponent from
    ``max_exp`` up, with unit multiplier and no shift."""
    amin, amax = -(1 << (spec.acc_bits - 1)), (1 << (spec.acc_bits - 1)) - 1
    bmin, bmax = -(1 << (spec.bias_bits - 1)), (1 << (spec.bias_bits - 1)) - 1
    rmin, rmax = -(1 << (spec.residual_bits - 1)), (1 << (spec.residual_bits - 1)) - 1
    nmin, nmax = -(1 << (spec.act_bits - 1)), (1 << (spec.act_bits - 1)) - 1
    mmax = (1 << spec.mult_bits) - 1
    items = []
    for narrow in (0, 1):
        lo, hi = (nmin, nmax) if narrow else (rmin, rmax)
        for acc in (amin, amax, 0, -1, 1):
            for exp in sorted({0, spec.max_exp, spec.max_exp + 1, spec.exp_field_max}
                              & set(range(spec.exp_field_max + 1))):
                for bias in (bmin, bmax, 0):
                    for mult, shift in ((mmax, MAX_SHIFT), (1, 0), (mmax, spec.mult_bits + 20),
                                        (1 << (spec.mult_bits - 1), spec.mult_bits)):
                        for res in (lo, hi, 0):
                            items.append({"acc": acc, "exp": exp, "bias": bias, "mult": mult,
                                          "shift": shift, "residual": res, "narrow": narrow})
    for exp in range(spec.max_exp, spec.exp_field_max + 1):
        for acc in (1 << (spec.acc_bits - 2), -(1 << (spec.acc_bits - 2)), amax, amin, 1):
            items.append({"acc": acc, "exp": exp, "bias": 0, "mult": 1, "shift": 0,
                          "residual": 0, "narrow": 0})
    return items


def requant_linear_layer(spec: RequantSpec, rng: np.random.Generator, tokens: int,
                         channels: int, k: int = 64) -> list[dict]:
    """The requantiser's items for one linear layer (``x @ W + b`` with per-token exponents
    and per-channel scales, as :class:`cimforge.golden.int_model.IntOnlyEncoder` computes them),
    alternately to the residual format with a residual and to int8."""
    from cimforge.golden.nonlinear import shared_shift_multipliers

    a = (1 << (spec.act_bits - 1)) - 1
    x = rng.integers(-a, a + 1, (tokens, k))
    w = rng.integers(-127, 128, (k, channels))
    acc = x @ w
    exp = rng.integers(0, spec.max_exp + 1, tokens)
    bias = rng.integers(-(1 << 20), 1 << 20, channels)
    mults = shared_shift_multipliers(rng.uniform(0.2, 1.0, channels) * 2.0**-22,
                                     spec.mult_bits)
    r = (1 << (spec.residual_bits - 1)) - 1
    items = []
    for t in range(tokens):
        narrow = t % 2
        for c in range(channels):
            items.append({"acc": int(acc[t, c]), "exp": int(exp[t]), "bias": int(bias[c]),
                          "mult": int(mults.mult[c]), "shift": mults.shift,
                          "residual": 0 if narrow else int(rng.integers(-r, r + 1)),
                          "narrow": narrow})
    return items


def expected_requant(spec, items):
    cols = {k: np.array([it[k] for it in items]) for k in items[0]}
    return requant_item(spec, **cols).tolist()


def softmax_case(spec, rng, rows):
    """Rows of random lengths (1 .. max_len) with corners among them; returns the beats
    (payload dicts), the rows' scores and keep masks."""
    hi = 1 << (spec.score_bits - 1)
    scores, keeps = [], []
    for k in range(rows):
        n = int(rng.integers(1, spec.max_len + 1)) if k % 5 else spec.max_len
        kind = k % 6
        if kind == 0:
            s = rng.normal(0, 400, n).round()
        elif kind == 1:
            s = np.full(n, int(rng.integers(-hi, hi)))
        elif kind == 2:
            s = rng.normal(0, 30, n).round()
            s[rng.integers(n)] += 3000
        elif kind == 3:
            s = rng.choice([-hi, hi - 1, 0], n)
        else:
            s = rng.integers(-hi, hi, n) >> int(rng.integers(0, spec.score_bits))
        keep = rng.random(n) < (0.7 if kind == 4 else 1.0)
        if kind == 5:
            keep = np.arange(n) <= int(rng.integers(n))  # causal: a prefix kept
        scores.append(np.asarray(s, dtype=np.int64))
        keeps.append(keep)
    return scores, keeps


def softmax_beats(spec, scores, keeps):
    beats = []
    for s, k in zip(scores, keeps, strict=True):
        n = len(s)
        nb = -(-n // spec.lanes)
        for b in range(nb):
            lanes = range(b * spec.lanes, (b + 1) * spec.lanes)
            beats.append({
                "scores": [int(s[i]) if i < n else 0 for i in lanes],
                "keep": sum(int(k[i]) << j for j, i in enumerate(lanes) if i < n),
                "last": int(b == nb - 1),
            })
    return beats


def expected_softmax_beats(spec, mult, shift, scores, keeps):
    probs = softmax_rows(spec, mult, shift, scores, keeps)
    out = []
    for p in probs:
        nb = -(-len(p) // spec.lanes)
        padded = np.zeros(nb * spec.lanes, dtype=np.int64)
        padded[:len(p)] = p
        for b in range(nb):
            out.append({"probs": padded[b * spec.lanes:(b + 1) * spec.lanes].tolist(),
                        "last": int(b == nb - 1)})
    return out


def activation_program(spec, in_step: float, out_step: float) -> dict:
    """What the activation unit is programmed with for the scales: ``{"table": ...}``,
    ``{"poly": GeluPoly}`` or nothing (ReLU)."""
    sp = spec.nonlinear()
    if spec.function == "lut":
        return {"table": gelu_table(in_step, out_step, sp, spec.out_bits)}
    if spec.function == "poly":
        return {"poly": gelu_poly_params(in_step, out_step, sp)}
    return {}


def ln_case(spec, rng, rows):
    """Rows with corners among them (constant, extremes, one outlier channel), and fixed-point
    gamma/beta for an output step that fits the rows."""
    hi = 1 << (spec.in_bits - 1)
    data = []
    for k in range(rows):
        kind = k % 5
        if kind == 0:
            r = np.full(spec.d, int(rng.integers(-hi, hi)))
        elif kind == 1:
            r = rng.choice([-hi, hi - 1], spec.d)
        elif kind == 2:
            r = np.clip(rng.normal(0, hi / 600, spec.d).round(), -hi, hi - 1)
            r[int(rng.integers(spec.d))] = hi - 1
        else:
            r = rng.integers(-hi, hi, spec.d) >> int(rng.integers(0, spec.in_bits))
        data.append(np.asarray(r, dtype=np.int64))
    gamma = rng.normal(1, 0.5, spec.d)
    beta = rng.normal(0, 0.5, spec.d)
    out_step = 8.0 / ((1 << (spec.out_bits - 1)) - 1)
    params = layer_norm_params(gamma, beta, out_step, spec.nonlinear)
    return np.stack(data), params




def token_rows(spec, rng: np.random.Generator, rows: int) -> np.ndarray:
    """Rows for the per-token scaling unit: every magnitude (exponents 0 to the largest),
    all-zero rows, the most negative value, and rows of ties (odd multiples of half a step)."""
    hi = 1 << (spec.in_bits - 1)
    out = []
    for k in range(rows):
        kind = k % 5
        if kind == 0:
            r = np.zeros(spec.d, dtype=np.int64)
        elif kind == 1:
            r = rng.integers(-hi, hi, spec.d)
            r[int(rng.integers(spec.d))] = -hi
        elif kind == 2:  # ties: odd multiples of 2^(e-1) for the row's exponent e >= 1
            e = int(rng.integers(1, spec.max_exp + 1))
            top = min((1 << (spec.out_bits - 1)) - 1, (hi - 1) >> e)
            r = (2 * rng.integers(-top, top, spec.d) + 1) << (e - 1)
        else:
            r = rng.integers(-hi, hi, spec.d) >> int(rng.integers(0, spec.in_bits))
        out.append(np.asarray(r, dtype=np.int64))
    return np.stack(out)
