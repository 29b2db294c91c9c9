"""Error statistics of the integer non-linear units against float, as tables for
docs/nonlinear-units.md.

    python benchmarks/nonlinear_errors.py [--config minilm] [--seed 0]

Two sources of inputs: random (seeded) and real MiniLM activations, i.e. the integer inputs
each unit receives while the integer-only model (golden/int_model.py, calibrated on the
reference sentences) embeds the reference sentences. Each unit's output is compared with the
float function of the same (dequantised) input: errors are in real units unless said.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from cimforge.config import load_config
from cimforge.golden.float_model import gelu_erf, load_minilm
from cimforge.golden.float_model import layer_norm as float_layer_norm
from cimforge.golden.int_model import IntOnlyEncoder, calibrate
from cimforge.golden.nonlinear import (
    NonlinearSpec,
    exp2_frac,
    gelu_lut,
    gelu_poly,
    gelu_poly_params,
    gelu_table,
    layer_norm,
    layer_norm_params,
    reciprocal,
    softmax,
    softmax_multiplier,
)

SENTENCES = Path(__file__).resolve().parent.parent / "tests" / "data" / "minilm_sentences.txt"


def _row(name: str, err: np.ndarray, unit: str = "", n: int | None = None) -> str:
    err = np.abs(np.asarray(err, dtype=np.float64)).reshape(-1)
    count = err.size if n is None else n
    return (f"| {name} | {count:,} | {err.max():.3g}{unit} | {err.mean():.3g}{unit} |")


def _float_softmax(x: np.ndarray, keep: np.ndarray) -> np.ndarray:
    x = np.where(keep, x, -np.inf)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def random_tables(sp: NonlinearSpec, rng: np.random.Generator) -> list[str]:
    out = ["| function (random inputs) | inputs | max abs error | mean abs error |",
           "|---|---|---|---|"]
    f = np.arange(1 << sp.exp_frac_bits)
    want = 2.0 ** (f / (1 << sp.exp_frac_bits))
    for method in ("lut", "poly"):
        got = exp2_frac(f, dataclasses.replace(sp, exp_method=method)) / 2.0 ** (sp.exp_bits - 1)
        out.append(_row(f"2^f, {method} (relative)", got / want - 1))
    xs = np.concatenate([np.arange(1, 1 << 17), rng.integers(1 << 17, 1 << 40, 200_000)])
    for steps in range(4):
        s = dataclasses.replace(sp, recip_steps=steps)
        r, z = reciprocal(xs, s)
        out.append(_row(f"1/x, {steps} Newton step(s) (relative)",
                        r / 2.0 ** (s.recip_bits + z) * xs - 1))
    step = 0.01
    for n, spread in ((8, 3.0), (128, 3.0), (128, 8.0), (512, 3.0)):
        q = np.rint(rng.normal(0, spread / step, (max(20_000 // n, 20), n))).astype(np.int64)
        for method in ("lut", "poly"):
            s = dataclasses.replace(sp, exp_method=method)
            p = softmax(q, softmax_multiplier(step, s), s) / s.prob_one
            err = p - _float_softmax(q * step, np.ones(q.shape, bool))
            out.append(_row(f"softmax, rows of {n}, sd {spread:g}, exp {method} (x 1/256)",
                            err * 256))
    d = 384
    h = np.rint(rng.normal(0, 2000, (500, d))).astype(np.int64)
    h[:, 7] *= 12
    gamma, beta = rng.normal(1, 0.3, d), rng.normal(0, 0.2, d)
    ref = float_layer_norm(h.astype(np.float32), gamma.astype(np.float32),
                           beta.astype(np.float32), 1e-12).astype(np.float64)
    for bits in (8, 16):
        out_step = np.abs(ref).max() / ((1 << (bits - 1)) - 1)
        y = layer_norm(h, layer_norm_params(gamma, beta, out_step, sp), sp, bits)
        out.append(_row(f"LayerNorm, d = {d}, int{bits} out (output steps)", y - ref / out_step))
    for method, bits in (("lut", 8), ("lut", 10), ("poly", 12), ("poly", 16)):
        s = dataclasses.replace(sp, gelu_method=method, gelu_in_bits=bits)
        q = np.arange(-(1 << (bits - 1)), 1 << (bits - 1))
        peak = 8.0
        in_step, out_step = peak / ((1 << (bits - 1)) - 1), peak / 32767
        x = q * in_step
        if method == "lut":
            y = gelu_lut(q, gelu_table(in_step, out_step, s, 16), s)
        else:
            y = gelu_poly(q, gelu_poly_params(in_step, out_step, s), s, 16)
        out.append(_row(f"GELU {method}, {bits}-bit input over +-{peak:g} (all codes)",
                        y * out_step - gelu_erf(x.astype(np.float32))))
    return out


def minilm_tables(cfg, sentences: list[str]) -> tuple[list[str], float, float]:
    enc = load_minilm()
    ranges = calibrate(enc, sentences)
    errors: dict[str, list[np.ndarray]] = defaultdict(list)
    weights = enc.weights.layers

    def observe(unit: str, layer: int, v: dict) -> None:
        if unit == "softmax":
            keep = v["keep"]
            p = v["probs"] / ((1 << cfg.nonlinear.prob_bits) - 1)
            ref = _float_softmax(v["scores"] * v["in_step"], keep)
            errors["softmax (x 1/256)"].append(((p - ref) * 256)[keep])
        elif unit == "layernorm":
            w = weights[layer]
            g, b = (w.ln1_g, w.ln1_b) if v["point"] == "ln1" else (w.ln2_g, w.ln2_b)
            ref = float_layer_norm((v["h"] * v["in_step"]).astype(np.float32), g, b, 1e-12)
            errors["LayerNorm (real units)"].append(v["out"] * v["out_step"] - ref)
            errors["LayerNorm (output steps)"].append(v["out"] - ref / v["out_step"])
        else:
            ref = gelu_erf((v["q"] * v["in_step"]).astype(np.float32))
            errors["GELU (real units)"].append(v["out"] * v["out_step"] - ref)

    model = IntOnlyEncoder(enc, cfg, ranges, observer=observe)
    emb = model.embed(sentences)
    cos = np.einsum("nd,nd->n", emb, enc.embed(sentences))
    out = ["| unit (MiniLM activations) | values | max abs error | mean abs error |",
           "|---|---|---|---|"]
    for name, chunks in errors.items():
        out.append(_row(name, np.concatenate([c.reshape(-1) for c in chunks])))
    return out, float(cos.mean()), float(cos.min())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="minilm")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    cfg = load_config(args.config)
    sp = NonlinearSpec.from_config(cfg)
    t0 = time.perf_counter()
    print("\n".join(random_tables(sp, np.random.default_rng(args.seed))))
    print()
    sentences = [s.strip() for s in SENTENCES.read_text().splitlines() if s.strip()]
    table, mean, worst = minilm_tables(cfg, sentences)
    print("\n".join(table))
    print(f"\nint-only MiniLM ({args.config}): mean cosine to float {mean:.4f}, "
          f"worst sentence {worst:.4f}; {time.perf_counter() - t0:.1f} s")
    print(f"(config: {cfg.nonlinear}; seed {args.seed})")


if __name__ == "__main__":
    main()
