"""Analytical workload of one transformer inference: weights, MACs, KV cache, non-linear ops.

The split the survey's Table I draws is between *static* matrix-vector multiplications (the
linear layers, whose weights can stay in an analog crossbar) and *dynamic* ones (attention's
Q K^T and A V, whose operands change with every input and go to digital CIM).  This module
counts both for a :class:`~cimforge.config.ModelConfig` and N tokens.
"""

from __future__ import annotations

from typing import Any

from cimforge.config import ModelConfig

__all__ = ["profile", "linear_weights_per_layer"]


def linear_weights_per_layer(model: ModelConfig) -> int:
    """Weights of the linear layers of one block: Q, K, V, output (``4 d^2``) and the two FFN
    matrices (``2 d d_ff``).  Biases, LayerNorm, embeddings and the LM head are not counted."""
    d = model.d_model
    return 4 * d * d + 2 * d * model.d_ff


def profile(model: ModelConfig, seq_len: int) -> dict[str, Any]:
    """Workload of one inference over ``seq_len`` tokens.

    For an encoder the N tokens are one bidirectional pass; for a decoder they are the N
    tokens of a sequence (prefill or token-by-token decoding: the totals are the same).

    Parameters
    ----------
    model : ModelConfig
        Shape of the network.
    seq_len : int
        N, the number of tokens: ``1 <= N <= model.max_seq`` (learned position embeddings
        end at ``max_seq``).

    Returns
    -------
    dict
        Plain ints, floats and strings (JSON-serialisable):

        ``model``, ``kind``, ``seq_len``, ``n_layers``, ``d_model``, ``n_heads``, ``d_ff``
            the shape.
        ``weight_count``
            linear-layer weights over all layers, ``L (4 d^2 + 2 d d_ff)``.
        ``fc_macs``
            static MVMs, ``N * weight_count`` (every token through every linear layer).
        ``attention_macs``
            dynamic MVMs, Q K^T plus A V over all heads and layers.  Encoder: every token
            attends to all N, ``2 N^2 d`` per layer.  Decoder: causal, token i (1-based)
            attends to itself and the i - 1 before it, ``2 d N (N + 1) / 2`` per layer; the
            masked half of the score matrix is not counted because a KV-cache decoder never
            computes it.
        ``total_macs``
            ``fc_macs + attention_macs``.
        ``static_mvm_fraction``
            ``fc_macs / total_macs``.
        ``kv_cache_bytes``
            int8 K and V of N tokens over all layers, ``2 L N d`` (for an encoder, the
            K and V a layer must hold while its N queries are served).
        ``softmax_exps``
            exponentials in softmax: ``H N^2`` per layer (encoder) or ``H N (N + 1) / 2``
            (decoder).
        ``gelu_evals``
            GELU evaluations, ``N d_ff`` per layer.
        ``layernorm_rows``
            d-element LayerNorms: 2 per token per layer, plus one per token for the
            embedding LayerNorm (encoder) or the final LayerNorm (decoder).

    Raises
    ------
    ValueError
        If ``seq_len`` is not an integer in ``[1, model.max_seq]``.
    """
    if not isinstance(seq_len, int) or isinstance(seq_len, bool):
        raise ValueError(f"seq_len must be an integer, not {seq_len!r}")
    if not 1 <= seq_len <= model.max_seq:
        raise ValueError(
            f"seq_len {seq_len} is out of range for {model.name}: "
            f"must be in [1, {model.max_seq}] (max_seq)"
        )
    n, d, layers = seq_len, model.d_model, model.n_layers
    weight_count = layers * linear_weights_per_layer(model)
    fc_macs = n * weight_count
    # (query, key) pairs that are computed: all of them, or the causal lower triangle.
    pairs = n * n if model.kind == "encoder" else n * (n + 1) // 2
    attention_macs = layers * 2 * pairs * d  # Q K^T and A V: d MACs per pair each
    total = fc_macs + attention_macs
    return {
        "model": model.name,
        "kind": model.kind,
        "seq_len": n,
        "n_layers": layers,
        "d_model": d,
        "n_heads": model.n_heads,
        "d_ff": model.d_ff,
        "weight_count": weight_count,
        "fc_macs": fc_macs,
        "attention_macs": attention_macs,
        "total_macs": total,
        "static_mvm_fraction": fc_macs / total,
        "kv_cache_bytes": 2 * layers * n * d,
        "softmax_exps": layers * model.n_heads * pairs,
        "gelu_evals": layers * n * model.d_ff,
        "layernorm_rows": (2 * layers + 1) * n,
    }
