"""The integer-only encoder: every operation of MiniLM through the golden integer units.

int8 weights per output channel; activation scales calibrated on sample sentences
(:func:`calibrate`: the largest magnitude at each point of the float model). With
``numerics.act_scale = "per_token"`` (the default) LayerNorm, GELU and the context leave
``residual_bits``-wide codes at a static step and every matmul input is scaled to int8 per
token by a power of two (:func:`cimforge.golden.nonlinear.token_quantize`), whose exponent the
requantiser takes back; with ``"per_tensor"`` those outputs are int8 at a static step.

====================  =====================================================================
step                  integer operation (golden function)
====================  =====================================================================
QKV projection        ``x8 @ Wqkv8`` (int32), ``<< e`` (the token's exponent), ``+ b``,
                      requantised per channel to int8 q, k, v
scores                ``q8 @ k8^T`` (int32: the digital-CIM macro)
softmax               :func:`cimforge.golden.nonlinear.softmax` with ``1/sqrt(d_head)`` and the q, k
                      scales folded into its multiplier; padded keys masked; uint8 out
context               ``P8 @ v8`` (int32), requantised to the wide format
output projection     ``ctx8 @ Wo8 + b`` requantised to the residual format, plus the block
                      input requantised to it (:func:`~cimforge.golden.nonlinear.residual_add`)
LayerNorm             :func:`cimforge.golden.nonlinear.layer_norm`
FFN 1 + GELU          ``x8 @ W18 + b`` requantised to ``gelu_in_bits``, then the GELU table or
                      polynomial (ReLU: requantised to the wide format, then ``max(0, .)``)
FFN 2 + residual      as the output projection; then LayerNorm
====================  =====================================================================

The embeddings (a table lookup) are summed in float, quantised once to the residual format and
normalised by the integer LayerNorm; the last hidden state is scaled back to float for the
host's mean pooling and L2 normalisation. Every value between is an integer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from cimforge.config import Config
from cimforge.golden.float_model import (
    F32,
    Encoder,
    EncoderLayer,
    _merge_heads,
    _split_heads,
)
from cimforge.golden.nonlinear import (
    LayerNormParams,
    Multiplier,
    NonlinearSpec,
    gelu_lut,
    gelu_poly,
    gelu_poly_params,
    gelu_table,
    layer_norm,
    layer_norm_params,
    multiplier,
    relu,
    requantize,
    residual_add,
    shared_shift_multipliers,
    softmax,
    softmax_multiplier,
    token_quantize,
)
from cimforge.golden.quant import quantize_weight
from cimforge.golden.requant import RequantSpec
from cimforge.golden.softmax import SoftmaxSpec

__all__ = ["Ranges", "Observer", "calibrate", "range_probe", "int_linear", "activate",
           "IntOnlyEncoder"]

# (layer or -1, probe point) -> largest magnitude seen
Ranges = dict[tuple[int, str], float]

# What an observer of the integer units sees: (unit, layer, {name: value}) -> None, with the
# units' integer inputs and outputs and the real value of a code step (for error statistics).
Observer = Callable[[str, int, dict], None]


def range_probe(ranges: Ranges, d_model: int) -> Callable[[int, str, np.ndarray], None]:
    """A float model's probe that records in ``ranges`` the largest magnitude seen at every
    point, the ``qkv`` point split into ``q``, ``k`` and ``v``."""

    def probe(layer: int, point: str, values: np.ndarray) -> None:
        d = d_model
        parts = {"q": values[:, :d], "k": values[:, d:2 * d], "v": values[:, 2 * d:]} \
            if point == "qkv" else {point: values}
        for name, v in parts.items():
            ranges[layer, name] = max(ranges.get((layer, name), 0.0), float(np.max(np.abs(v))))

    return probe


def calibrate(encoder: Encoder, sentences: Sequence[str] | Sequence[Sequence[int]],
              batch_size: int = 32) -> Ranges:
    """Largest magnitude at every probe point of the float model over ``sentences`` (the
    ``qkv`` point split into ``q``, ``k`` and ``v``): strings, or sequences of token ids for a
    model without a tokenizer. The float model's result for a sentence does not depend on the
    batch it is computed in, so neither do the ranges."""
    ranges: Ranges = {}
    probed = encoder.with_probe(range_probe(ranges, encoder.model.d_model))
    if sentences and not isinstance(sentences[0], str):
        for ids in sentences:
            probed.forward(np.asarray([ids]), np.ones((1, len(ids)), dtype=np.int64))
    else:
        probed.embed(sentences, batch_size=batch_size)
    return ranges


# Formats of 16 bits or more keep one bit of headroom over the calibrated peak: the integer
# model's values stray a little beyond the float model's (measured: a LayerNorm output 0.6 %
# above its calibrated peak), and a bit costs nothing there. int8 formats use the whole range.
WIDE_BITS = 16
HEADROOM = 2.0


def _step(peak: float, bits: int) -> float:
    """Scale of a symmetric signed ``bits`` format for values up to ``peak`` (with
    :data:`HEADROOM` from :data:`WIDE_BITS` bits up)."""
    peak = max(peak, 1e-12) * (HEADROOM if bits >= WIDE_BITS else 1.0)
    return peak / ((1 << (bits - 1)) - 1)


@dataclass(frozen=True)
class _Linear:
    """An int8 weight matrix, its int32 bias and its requantiser to the next format."""

    w: np.ndarray  # (in, out) int8 codes, as float64 for exact BLAS products
    bias: np.ndarray  # int32
    out: Multiplier  # per output channel, one shift

    def __call__(self, x: np.ndarray, e: np.ndarray | int, bits: int, rounding: str,
                 first: int = 0) -> np.ndarray:
        """``x * 2^e`` (``e`` per row: the token's exponent) times the weights, plus bias,
        requantised to signed ``bits``. (``first``, the position of ``x``'s first row in its
        sequence, only matters to the analog tiles' read noise.)"""
        acc = (x.astype(np.float64) @ self.w).astype(np.int64)
        return requantize((acc << e) + self.bias, self.out, bits, rounding)


def activate(f: np.ndarray, act: object, spec: NonlinearSpec, out_bits: int) -> np.ndarray:
    """The FFN's activation unit on the first FFN's codes ``f``: ReLU, or GELU by the table
    or the polynomial ``act`` (:func:`~cimforge.golden.nonlinear.gelu_table`,
    :func:`~cimforge.golden.nonlinear.gelu_poly_params`)."""
    if spec.activation == "relu":
        return relu(f)
    if spec.gelu_method == "lut":
        return gelu_lut(f, act, spec)
    return gelu_poly(f, act, spec, out_bits)


def int_linear(cfg: Config, spec: NonlinearSpec, w: np.ndarray, b: np.ndarray, in_step: float,
               out_step: float) -> _Linear:
    """A float matrix ``w`` (in, out) and bias ``b`` as an int8 matrix with its bias and
    requantiser from ``in_step`` to ``out_step``."""
    n = cfg.numerics
    qw = quantize_weight(w, n.weight_bits, n.rounding)
    acc_step = in_step * qw.scale[0]
    bias = np.rint(b / acc_step).astype(np.int64)
    out = shared_shift_multipliers(acc_step / out_step, spec.mult_bits)
    return _Linear(qw.q.astype(np.float64), bias, out)


@dataclass(frozen=True)
class _Block:
    q: _Linear
    k: _Linear
    v: _Linear
    scores: Multiplier
    ctx: Multiplier
    o: _Linear
    res1: Multiplier
    ln1: LayerNormParams
    ff1: _Linear
    act: object  # GELU table or GeluPoly (None for ReLU)
    ff2: _Linear
    res2: Multiplier
    ln2: LayerNormParams
    steps: dict  # real value of one code step at each point (scores, h1, x1, ff1, act, h2, x2)


class IntOnlyEncoder(Encoder):
    """An :class:`~cimforge.golden.float_model.Encoder` whose hidden states are computed by the
    integer units (see the module docstring); ``embed`` and ``forward`` work as for the float
    model."""

    def __init__(self, encoder: Encoder, cfg: Config, ranges: Ranges,
                 observer: Observer | None = None):
        super().__init__(model=encoder.model, weights=encoder.weights,
                         tokenizer=encoder._tokenizer, layer_norm_eps=encoder._eps,
                         max_tokens=encoder.max_tokens, pad_id=encoder._pad_id)
        RequantSpec.from_config(cfg)  # these refuse widths whose products overflow int64
        SoftmaxSpec.from_config(cfg)
        self.cfg = cfg
        self.spec = NonlinearSpec.from_config(cfg)
        self.ranges = ranges
        self.observer = observer
        sp = self.spec
        w = encoder.weights
        # Per-token scaling: LayerNorm, GELU and the context leave residual_bits codes at a
        # static step; each token's row is then scaled to act_bits by a power of two
        # (token_quantize) whose exponent the next requantiser takes back.
        self.per_token = cfg.numerics.act_scale == "per_token"
        self.x_bits = sp.residual_bits if self.per_token else sp.act_bits
        self.emb_step = _step(ranges[-1, "emb"], sp.residual_bits)
        self.x_steps = [_step(ranges[-1, "x"], self.x_bits)]
        self.ln0 = layer_norm_params(w.ln_g, w.ln_b, self.x_steps[0], sp)
        self.blocks = []
        for i, layer in enumerate(w.layers):
            self.blocks.append(self._block_params(i, layer, self.x_steps[-1]))
            self.x_steps.append(_step(ranges[i, "x2"], self.x_bits))

    # -- parameters -------------------------------------------------------------------------

    def _int_linear(self, layer: int, name: str, w: np.ndarray, b: np.ndarray, in_step: float,
                    out_step: float) -> _Linear:
        """Matrix ``name`` of ``layer`` (:data:`cimforge.golden.mapping.MATRICES`) as an int8
        matrix with its bias and requantiser from ``in_step`` to ``out_step``."""
        return int_linear(self.cfg, self.spec, w, b, in_step, out_step)

    def _block_params(self, i: int, p: EncoderLayer, x_step: float) -> _Block:
        sp, r, d = self.spec, self.ranges, self.model.d_model
        a8 = sp.act_bits
        steps = {name: _step(r[i, name], a8) for name in ("q", "k", "v")}
        steps.update({name: _step(r[i, name], self.x_bits) for name in ("ctx", "x1", "act")})
        h1, h2 = (_step(r[i, name], sp.residual_bits) for name in ("h1", "h2"))
        qkv = [self._int_linear(i, name, p.w_qkv[:, j * d:(j + 1) * d],
                                p.b_qkv[j * d:(j + 1) * d], x_step, steps[name])
               for j, name in enumerate("qkv")]
        score_step = steps["q"] * steps["k"] / math.sqrt(self.model.d_head)
        ctx = multiplier(steps["v"] / sp.prob_one / steps["ctx"], sp.mult_bits)
        act: object = None
        if sp.activation == "relu":
            act_in = steps["act"]  # ReLU: the FFN requantises straight to the output format
        else:
            act_in = _step(r[i, "ff1"], sp.gelu_in_bits)
            act = (gelu_table(act_in, steps["act"], sp, self.x_bits) if sp.gelu_method == "lut"
                   else gelu_poly_params(act_in, steps["act"], sp))
        return _Block(
            q=qkv[0], k=qkv[1], v=qkv[2],
            scores=softmax_multiplier(score_step, sp),
            ctx=ctx,
            o=self._int_linear(i, "o", p.w_o, p.b_o, steps["ctx"], h1),
            res1=multiplier(x_step / h1, sp.mult_bits),
            ln1=layer_norm_params(p.ln1_g, p.ln1_b, steps["x1"], sp),
            ff1=self._int_linear(i, "ff1", p.w_ff1, p.b_ff1, steps["x1"], act_in),
            act=act,
            ff2=self._int_linear(i, "ff2", p.w_ff2, p.b_ff2, steps["act"], h2),
            res2=multiplier(steps["x1"] / h2, sp.mult_bits),
            ln2=layer_norm_params(p.ln2_g, p.ln2_b, _step(r[i, "x2"], self.x_bits), sp),
            steps={**steps, "scores": score_step, "h1": h1, "h2": h2, "ff1": act_in,
                   "x2": _step(r[i, "x2"], self.x_bits)},
        )

    # -- network ----------------------------------------------------------------------------

    def _encode(self, ids: np.ndarray, mask: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return (self.encode_codes(ids, mask, rows) * self.x_steps[-1]).astype(F32)

    def encode_codes(self, ids: np.ndarray, mask: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The last LayerNorm's integer output for the positions where ``rows`` is True
        (signed ``x_bits`` codes of step ``x_steps[-1]``)."""
        return self.codes_from_embeddings(self.embedding_codes(ids, rows), mask, rows)

    def embedding_codes(self, ids: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """The embeddings (word + position + token type 0, summed in float) of the positions
        where ``rows`` is True, quantised to signed ``residual_bits`` codes of step
        ``emb_step``: what the host computes and streams to the accelerator."""
        w, sp = self._w, self.spec
        e = w.word[ids[rows]] + w.position[np.nonzero(rows)[1]] + w.token_type[0]
        return np.clip(np.rint(e / self.emb_step), -(1 << (sp.residual_bits - 1)) + 1,
                       (1 << (sp.residual_bits - 1)) - 1).astype(np.int64)

    def codes_from_embeddings(self, h: np.ndarray, mask: np.ndarray, rows: np.ndarray
                              ) -> np.ndarray:
        """The embedding LayerNorm and every block on embedding codes ``h`` (the rows of
        :meth:`embedding_codes`)."""
        x = layer_norm(h, self.ln0, self.spec, self.x_bits)
        keep = (mask[:, None, None, :] != 0)
        for layer, block in enumerate(self.blocks):
            self._layer = layer
            x = self._block(x, rows, keep, block)
        return x

    def _observe(self, unit: str, **values) -> None:
        if self.observer is not None:
            self.observer(unit, self._layer, values)

    def _narrow(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | int]:
        """A matmul's int8 input and its per-token exponents (0 for static scales)."""
        if self.per_token:
            return token_quantize(x, self.spec.act_bits, self.spec.rounding)
        return x, 0

    def _block(self, x: np.ndarray, rows: np.ndarray, keep: np.ndarray,  # type: ignore[override]
               p: _Block) -> np.ndarray:
        sp = self.spec
        a8, rb, xb, rnd = sp.act_bits, sp.residual_bits, self.x_bits, sp.rounding
        b, t = rows.shape
        d = self.model.d_model
        x8, e = self._narrow(x)
        qkv = np.zeros((b, t, 3 * d), dtype=np.int64)
        qkv[rows] = np.concatenate([lin(x8, e, a8, rnd) for lin in (p.q, p.k, p.v)], axis=1)
        q, k, v = _split_heads(qkv, self.model.n_heads)
        scores = (q.astype(np.float64) @ k.swapaxes(-1, -2).astype(np.float64)).astype(np.int64)
        probs = softmax(scores, p.scores, sp, keep)
        self._observe("softmax", scores=scores, keep=np.broadcast_to(keep, scores.shape),
                      probs=probs, in_step=p.steps["scores"])
        ctx = (probs.astype(np.float64) @ v.astype(np.float64)).astype(np.int64)
        ctx = requantize(_merge_heads(ctx)[rows], p.ctx, xb, rnd)
        h = residual_add(p.o(*self._narrow(ctx), rb, rnd), requantize(x, p.res1, rb, rnd), rb)
        x = layer_norm(h, p.ln1, sp, xb)
        self._observe("layernorm", h=h, out=x, params=p.ln1, in_step=p.steps["h1"],
                      out_step=p.steps["x1"], point="ln1")
        x8, e = self._narrow(x)
        f = p.ff1(x8, e, sp.gelu_in_bits if sp.activation == "gelu" else xb, rnd)
        a = activate(f, p.act, sp, xb)
        self._observe("activation", q=f, out=a, in_step=p.steps["ff1"], out_step=p.steps["act"])
        h = residual_add(p.ff2(*self._narrow(a), rb, rnd), requantize(x, p.res2, rb, rnd), rb)
        out = layer_norm(h, p.ln2, sp, xb)
        self._observe("layernorm", h=h, out=out, params=p.ln2, in_step=p.steps["h2"],
                      out_step=p.steps["x2"], point="ln2")
        return out
