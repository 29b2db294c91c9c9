"""Quantised linear layers for the golden transformer: plain int8 and through the analog
crossbar model.

Both plug into :class:`cimforge.golden.float_model.Encoder` as its ``linear``. Weights are quantised
per output channel, activations per token (``numerics.act_scale = "per_token"``) or with one
scale for the whole batch (``"per_tensor"``); both symmetric, ``2^(bits-1) - 1`` at the largest
magnitude, rounded by ``numerics.rounding``. The integer product is then scaled back to float.

With ``numerics.outlier_sigma`` set, the weights beyond that many standard deviations of their
output channel are split off before quantisation: the channel's scale comes from the weights
that remain, and the outliers, quantised with the same scale to int16, are added by an exact
digital side path (:class:`QuantWeight`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cimforge.config import Config
from cimforge.golden.cim import CimMatrix

__all__ = ["quantize", "QuantWeight", "quantize_weight", "IntLinear", "CimLinear", "LINEAR_NAMES"]

OUTLIER_BITS = 16  # the digital side path's weight width

LINEAR_NAMES = ("qkv", "o", "ff1", "ff2")


def _round(x: np.ndarray, mode: str) -> np.ndarray:
    if mode == "half_even":
        return np.rint(x)
    if mode == "half_up":
        return np.floor(x + 0.5)
    if mode == "floor":
        return np.floor(x)
    raise ValueError(f"rounding must be one of half_even, half_up, floor, not {mode!r}")


def quantize(a: np.ndarray, bits: int, axis: int | None, rounding: str
             ) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric quantisation: ``a ~ q * scale`` with ``|q| <= 2^(bits-1) - 1``.

    ``axis`` is the axis the scale is shared along (None: one scale for everything); the scale
    keeps the reduced axis as size 1 so it broadcasts back. An all-zero slice gets scale 1.
    """
    qmax = (1 << (bits - 1)) - 1
    peak = np.max(np.abs(a), axis=axis, keepdims=axis is not None)
    scale = np.where(peak > 0, peak / qmax, 1.0).astype(np.float64)
    q = np.clip(_round(a / scale, rounding), -qmax, qmax).astype(np.int64)
    return q, scale


@dataclass(frozen=True)
class QuantWeight:
    """A quantised weight matrix: ``w ~ (q + outliers) * scale``.

    ``q`` (K, N) holds the ``weight_bits`` weights the crossbar stores (0 where an outlier was
    split off); ``outliers`` (K, N) the int16 weights of the digital side path (0 elsewhere);
    ``scale`` (1, N) the per-channel scale.
    """

    q: np.ndarray
    outliers: np.ndarray
    scale: np.ndarray

    @property
    def n_outliers(self) -> int:
        return int(np.count_nonzero(self.outliers))


def quantize_weight(w: np.ndarray, bits: int, rounding: str, outlier_sigma: float = 0.0
                    ) -> QuantWeight:
    """Per-output-channel (axis 0 reduced) quantisation with the optional outlier split."""
    outlier = np.zeros(w.shape, dtype=bool)
    if outlier_sigma:
        outlier = np.abs(w) > outlier_sigma * w.std(axis=0, keepdims=True)
    q, scale = quantize(np.where(outlier, 0.0, w), bits, 0, rounding)
    top = (1 << (OUTLIER_BITS - 1)) - 1
    big = np.clip(_round(np.where(outlier, w, 0.0) / scale, rounding), -top, top)
    return QuantWeight(q, big.astype(np.int64), scale)


class IntLinear:
    """``x @ w`` with int8 (``numerics``) weights and activations and an exact integer product.

    Weight quantisation is done once per (layer, name) and cached.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._weights: dict[tuple[int, str], QuantWeight] = {}

    def weight(self, layer: int, name: str, w: np.ndarray) -> QuantWeight:
        key = (layer, name)
        if key not in self._weights:
            n = self.cfg.numerics
            self._weights[key] = quantize_weight(w, n.weight_bits, n.rounding, n.outlier_sigma)
        return self._weights[key]

    def activations(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.cfg.numerics
        axis = 1 if n.act_scale == "per_token" else None
        return quantize(x, n.act_bits, axis, n.rounding)

    def product(self, layer: int, name: str, xq: np.ndarray, wq: np.ndarray) -> np.ndarray:
        """The integer matmul of the crossbar weights, as float64 (exact: every sum is far
        below 2^53)."""
        return xq.astype(np.float64) @ wq.astype(np.float64)

    def __call__(self, layer: int, name: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        qw = self.weight(layer, name, w)
        xq, sx = self.activations(x)
        y = self.product(layer, name, xq, qw.q)
        if qw.n_outliers:
            y += xq.astype(np.float64) @ qw.outliers.astype(np.float64)  # digital side path
        return (y * sx * qw.scale).astype(np.float32)


class CimLinear(IntLinear):
    """Like :class:`IntLinear`, with the integer product computed by the analog crossbar model
    (one :class:`~cimforge.golden.cim.CimMatrix` per weight matrix, programmed on first use, each
    with its own random draws)."""

    def __init__(self, cfg: Config):
        super().__init__(cfg)
        self._matrices: dict[tuple[int, str], CimMatrix] = {}

    def matrix(self, layer: int, name: str, wq: np.ndarray) -> CimMatrix:
        key = (layer, name)
        if key not in self._matrices:
            index = layer * len(LINEAR_NAMES) + LINEAR_NAMES.index(name)
            self._matrices[key] = CimMatrix(wq, self.cfg, key=index)
        return self._matrices[key]

    def product(self, layer: int, name: str, xq: np.ndarray, wq: np.ndarray) -> np.ndarray:
        m = self.matrix(layer, name, wq)
        return m.matmul(xq).astype(np.float64) * m.out_lsb
