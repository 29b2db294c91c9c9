"""The integer-only decoder: a GPT-style causal decoder through the golden integer units, with
its K and V cache in integer codes.

The decoder of :class:`cimforge.golden.float_model.Decoder` (pre-LN, causal, tied LM head)
computed as :mod:`cimforge.golden.int_model` computes the encoder -- the same formats,
requantisers, softmax, LayerNorm, GELU table and per-token scaling -- with the order of a pre-LN
block:

====================  =====================================================================
step                  integer operation
====================  =====================================================================
LayerNorm 1           the residual stream ``x`` (``residual_bits`` codes) normalised to
                      ``x_bits`` codes
QKV projection        as the encoder's; K and V of the new tokens written into the cache at
                      their positions
scores, softmax       ``q8 @ k8^T`` over the cache, keys after the query's position masked
                      through the softmax unit's keep bits (causal)
context               ``P8 @ v8`` requantised to ``x_bits``
output projection     ``ctx8 @ Wo8 + b`` requantised to the residual format of ``x1``, plus
                      ``x`` requantised to it: ``x1``, the stream after attention
LayerNorm 2, FFN      ``x1`` normalised, FFN 1, the GELU table (GPT-2's tanh GELU), FFN 2
                      requantised to the format of ``x2``, plus ``x1`` requantised: ``x2``
final LayerNorm       after the last block, ``x_bits`` codes: the hidden state
====================  =====================================================================

The host adds word and position embeddings in float and quantises them once to
``residual_bits`` codes (:meth:`IntOnlyDecoder.embedding_codes`); it scales the hidden state
back to float for the LM head. The residual stream keeps a format of its own at every point
(``x1`` and ``x2`` of each block), calibrated like the others (:func:`calibrate_decoder`).

Prefill and decode are one operation: :meth:`IntOnlyDecoder.forward_codes` takes the next
``T`` tokens of a sequence and a cache holding its first ``cache.length`` tokens. Every
operation is per token except attention, which reads the cache up to the token's own position,
so a sequence decoded token by token equals its full forward bit for bit (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cimforge.config import Config
from cimforge.golden.float_model import F32, Decoder, DecoderLayer, DecoderWeights
from cimforge.golden.int_model import Ranges, _step, activate, int_linear, range_probe
from cimforge.golden.nonlinear import (
    LayerNormParams,
    Multiplier,
    NonlinearSpec,
    gelu_poly_params,
    gelu_table,
    layer_norm,
    layer_norm_params,
    multiplier,
    requantize,
    residual_add,
    softmax,
    softmax_multiplier,
    token_quantize,
)
from cimforge.golden.requant import RequantSpec
from cimforge.golden.softmax import SoftmaxSpec

__all__ = ["IntKVCache", "IntOnlyDecoder", "calibrate_decoder", "calibration_prompts",
           "CacheFullError", "calibrated", "seeded_decoder", "vocab_head", "Agreement", "agreement"]


class CacheFullError(ValueError):
    """More tokens than the K and V cache holds."""


def calibration_prompts(decoder: Decoder, count: int, seed: int, length: int = 64
                        ) -> list[list[int]]:
    """``count`` token sequences of ``length`` tokens (at most ``max_seq``) drawn uniformly
    from the vocabulary (seeded): the decoder configs' calibration set, since no text ships
    for random weights."""
    m = decoder.model
    rng = np.random.default_rng(seed)
    return [rng.integers(0, m.vocab_size, min(length, m.max_seq)).tolist()
            for _ in range(count)]


def calibrate_decoder(decoder: Decoder, prompts: Sequence[Sequence[int]]) -> Ranges:
    """Largest magnitude at every probe point of the float decoder
    (:data:`~cimforge.golden.float_model.DECODER_PROBE_POINTS`, ``qkv`` split into ``q``,
    ``k`` and ``v``) over ``prompts``, each run as a whole sequence."""
    ranges: Ranges = {}
    probed = decoder.with_probe(range_probe(ranges, decoder.model.d_model))
    for ids in prompts:
        probed.forward(np.asarray([ids]))
    return ranges


@dataclass
class IntKVCache:
    """Integer K and V codes of the tokens seen so far: ``(n_layers, n_heads, capacity,
    d_head)`` each; the first ``length`` positions are valid."""

    k: np.ndarray
    v: np.ndarray
    length: int = 0

    @property
    def capacity(self) -> int:
        return self.k.shape[2]


@dataclass(frozen=True)
class _Block:
    ln1: LayerNormParams
    q: object
    k: object
    v: object
    scores: Multiplier
    ctx: Multiplier
    o: object
    res1: Multiplier
    ln2: LayerNormParams
    ff1: object
    act: object  # GELU table or GeluPoly (None for ReLU)
    ff2: object
    res2: Multiplier


class IntOnlyDecoder:
    """The integer-only decoder of ``decoder`` (see the module docstring).

    Parameters
    ----------
    decoder : Decoder
        The float decoder: weights, embeddings, LM head.
    cfg : Config
        Numerics and non-linear units.
    ranges : Ranges
        :func:`calibrate_decoder`'s ranges.
    """

    def __init__(self, decoder: Decoder, cfg: Config, ranges: Ranges):
        RequantSpec.from_config(cfg)  # these refuse widths whose products overflow int64
        SoftmaxSpec.from_config(cfg)
        self.float_model = decoder
        self.cfg = cfg
        self.spec = sp = NonlinearSpec.from_config(cfg)
        self.ranges = ranges
        self.per_token = cfg.numerics.act_scale == "per_token"
        self.x_bits = sp.residual_bits if self.per_token else sp.act_bits
        w = decoder.weights
        rb = sp.residual_bits
        self.emb_step = _step(ranges[-1, "emb"], rb)
        self.blocks: list[_Block] = []
        x_step = self.emb_step
        for i, layer in enumerate(w.layers):
            self.blocks.append(self._block_params(i, layer, x_step))
            x_step = _step(ranges[i, "x2"], rb)
        self.out_step = _step(ranges[-1, "lnf"], self.x_bits)
        self.lnf = layer_norm_params(w.lnf_g, w.lnf_b, self.out_step, sp)

    @property
    def model(self):
        return self.float_model.model

    @property
    def capacity(self) -> int:
        """The most tokens a cache holds: ``max_seq``."""
        return self.model.max_seq

    # -- parameters -------------------------------------------------------------------------

    def _int_linear(self, layer: int, name: str, w: np.ndarray, b: np.ndarray, in_step: float,
                    out_step: float):
        return int_linear(self.cfg, self.spec, w, b, in_step, out_step)

    def _block_params(self, i: int, p: DecoderLayer, x_step: float) -> _Block:
        sp, r, d = self.spec, self.ranges, self.model.d_model
        rb, xb = sp.residual_bits, self.x_bits
        steps = {name: _step(r[i, name], sp.act_bits) for name in ("q", "k", "v")}
        steps.update({name: _step(r[i, name], xb) for name in ("ln1", "ctx", "ln2", "act")})
        steps.update({name: _step(r[i, name], rb) for name in ("x1", "x2")})
        q, k, v = (self._int_linear(i, name, p.w_qkv[:, j * d:(j + 1) * d],
                                    p.b_qkv[j * d:(j + 1) * d], steps["ln1"], steps[name])
                   for j, name in enumerate("qkv"))
        act: object = None
        if sp.activation == "relu":
            act_in = steps["act"]
        else:
            act_in = _step(r[i, "ff1"], sp.gelu_in_bits)
            act = (gelu_table(act_in, steps["act"], sp, xb, tanh=True)
                   if sp.gelu_method == "lut" else gelu_poly_params(act_in, steps["act"], sp))
        return _Block(
            ln1=layer_norm_params(p.ln1_g, p.ln1_b, steps["ln1"], sp),
            q=q, k=k, v=v,
            scores=softmax_multiplier(steps["q"] * steps["k"] / math.sqrt(self.model.d_head),
                                      sp),
            ctx=multiplier(steps["v"] / sp.prob_one / steps["ctx"], sp.mult_bits),
            o=self._int_linear(i, "o", p.w_o, p.b_o, steps["ctx"], steps["x1"]),
            res1=multiplier(x_step / steps["x1"], sp.mult_bits),
            ln2=layer_norm_params(p.ln2_g, p.ln2_b, steps["ln2"], sp),
            ff1=self._int_linear(i, "ff1", p.w_ff1, p.b_ff1, steps["ln2"], act_in),
            act=act,
            ff2=self._int_linear(i, "ff2", p.w_ff2, p.b_ff2, steps["act"], steps["x2"]),
            res2=multiplier(steps["x1"] / steps["x2"], sp.mult_bits),
        )

    # -- the host's side ----------------------------------------------------------------------

    def new_cache(self) -> IntKVCache:
        """An empty cache of :attr:`capacity` tokens."""
        m = self.model
        shape = (m.n_layers, m.n_heads, self.capacity, m.d_head)
        return IntKVCache(np.zeros(shape, np.int64), np.zeros(shape, np.int64))

    def embedding_codes(self, ids: Sequence[int], start: int = 0) -> np.ndarray:
        """Word + position embeddings of tokens ``ids`` at positions ``start ..``, summed in
        float and quantised to signed ``residual_bits`` codes of step ``emb_step``: what the
        host streams."""
        w, rb = self.float_model.weights, self.spec.residual_bits
        ids = np.asarray(ids, dtype=np.int64)
        if start + len(ids) > self.model.max_seq:
            raise CacheFullError(f"positions {start} .. {start + len(ids) - 1} exceed max_seq "
                                 f"({self.model.max_seq})")
        e = w.word[ids] + w.position[start:start + len(ids)]
        lim = (1 << (rb - 1)) - 1
        return np.clip(np.rint(e / self.emb_step), -lim, lim).astype(np.int64)

    def hidden(self, codes: np.ndarray) -> np.ndarray:
        """The final LayerNorm's codes as float32 hidden states."""
        return (np.asarray(codes) * self.out_step).astype(F32)

    # -- the network --------------------------------------------------------------------------

    def _narrow(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | int]:
        if self.per_token:
            return token_quantize(x, self.spec.act_bits, self.spec.rounding)
        return x, 0

    def forward_codes(self, h: np.ndarray, cache: IntKVCache) -> np.ndarray:
        """The next ``T`` tokens of a sequence, whose first ``cache.length`` tokens are in
        ``cache``: embedding codes ``h`` (T, d_model) in, the final LayerNorm's codes
        (T, d_model) out; the tokens' K and V are appended and ``cache.length`` grows by
        ``T``. Raises :class:`CacheFullError` (the cache unchanged) when they do not fit."""
        sp = self.spec
        a8, rb, xb, rnd = sp.act_bits, sp.residual_bits, self.x_bits, sp.rounding
        m = self.model
        x = np.asarray(h, dtype=np.int64)
        if x.ndim != 2 or x.shape[1] != m.d_model:
            raise ValueError(f"h must have shape (tokens, {m.d_model}), not {x.shape}")
        t, start = len(x), cache.length
        end = start + t
        if end > cache.capacity:
            raise CacheFullError(f"{start} cached + {t} new tokens exceed the KV cache's "
                                 f"capacity of {cache.capacity} tokens")
        keep = np.arange(end)[None, :] <= np.arange(start, end)[:, None]

        def heads(v: np.ndarray) -> np.ndarray:  # (T, d) -> (H, T, d_head)
            return v.reshape(t, m.n_heads, m.d_head).transpose(1, 0, 2)

        for i, p in enumerate(self.blocks):
            x8, e = self._narrow(layer_norm(x, p.ln1, sp, xb))
            q, k, v = (heads(lin(x8, e, a8, rnd, start)) for lin in (p.q, p.k, p.v))
            cache.k[i, :, start:end] = k
            cache.v[i, :, start:end] = v
            keys = cache.k[i, :, :end].astype(np.float64)
            scores = (q.astype(np.float64) @ keys.swapaxes(-1, -2)).astype(np.int64)
            probs = softmax(scores, p.scores, sp, keep)
            ctx = (probs.astype(np.float64) @ cache.v[i, :, :end].astype(np.float64))
            ctx = requantize(ctx.astype(np.int64).transpose(1, 0, 2).reshape(t, m.d_model),
                             p.ctx, xb, rnd)
            x = residual_add(p.o(*self._narrow(ctx), rb, rnd, start),
                             requantize(x, p.res1, rb, rnd), rb)
            x8, e = self._narrow(layer_norm(x, p.ln2, sp, xb))
            f = p.ff1(x8, e, sp.gelu_in_bits if sp.activation == "gelu" else xb, rnd, start)
            a = activate(f, p.act, sp, xb)
            x = residual_add(p.ff2(*self._narrow(a), rb, rnd, start),
                             requantize(x, p.res2, rb, rnd), rb)
        cache.length = end
        return layer_norm(x, self.lnf, sp, xb)

    def forward(self, ids: Sequence[int], cache: IntKVCache | None = None) -> np.ndarray:
        """Float32 hidden states (T, d_model) of the next tokens ``ids`` (a new sequence
        without ``cache``)."""
        cache = self.new_cache() if cache is None else cache
        h = self.embedding_codes(ids, cache.length)
        return self.hidden(self.forward_codes(h, cache))


def calibrated(cfg: Config) -> tuple[Decoder, Ranges]:
    """A decoder config's float decoder (:func:`seeded_decoder`) and its ranges, calibrated
    on 16 prompts of :func:`calibration_prompts` (seed ``cfg.seed``): what ``cimforge
    decode`` and the benches build their integer and accelerator decoders from."""
    decoder = seeded_decoder(cfg)
    return decoder, calibrate_decoder(decoder, calibration_prompts(decoder, 16, seed=cfg.seed))


def seeded_decoder(cfg: Config) -> Decoder:
    """The float decoder of a decoder config: :meth:`~cimforge.golden.float_model.
    DecoderWeights.random` weights of its shape with ``unit_gain`` (blocks that move the
    residual stream as a trained model's do), seeded by ``cfg.seed``."""
    return Decoder(DecoderWeights.random(cfg.model, seed=cfg.seed, unit_gain=True))


def vocab_head(cfg: Config) -> np.ndarray:
    """A seeded vocabulary head, (d_model, vocab_size) float32 N(0, 1/d_model): the
    comparisons' next-token scores. (The tied head of random weights scores a token by its own
    embedding, which dominates the residual stream: every arg-max would be the input token.)"""
    m = cfg.model
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(1,)))
    return (rng.standard_normal((m.d_model, m.vocab_size)) / math.sqrt(m.d_model)).astype(F32)


@dataclass(frozen=True)
class Agreement:
    """A decoder against the float decoder along one token sequence (teacher forcing): the
    prompt's ``prompt`` tokens in one prefill, then one token a step."""

    tokens: list[int]
    prompt: int
    cosine: list[float]
    """Cosine of the final hidden states, per decode step."""
    same_argmax: list[bool]
    """Whether the head's arg-max (the greedy next token) is the float decoder's, per decode
    step."""


def agreement(model: IntOnlyDecoder, head: np.ndarray, prompt: Sequence[int], steps: int
              ) -> Agreement:
    """Run ``prompt`` and ``steps`` decode steps through the float decoder (greedy: each step
    feeds the arg-max of ``hidden @ head`` of the previous one) and the same tokens through
    ``model``, and compare every decode step's hidden state and arg-max."""
    ref = model.float_model
    f_cache = ref.new_cache(1, len(prompt) + steps)
    cache = model.new_cache()
    tokens = list(prompt)
    f = ref.forward(np.asarray([tokens]), f_cache)[0, -1]
    model.forward(tokens, cache)
    cos, same = [], []
    for _ in range(steps):
        tokens.append(int(np.argmax(f @ head)))
        f = ref.forward(np.asarray([tokens[-1:]]), f_cache)[0, -1]
        h = model.forward(tokens[-1:], cache)[-1]
        cos.append(float(f @ h / (np.linalg.norm(f) * np.linalg.norm(h))))
        same.append(bool(np.argmax(f @ head) == np.argmax(h @ head)))
    return Agreement(tokens, len(prompt), cos, same)
