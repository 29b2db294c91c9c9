"""Quantised linear layers for the golden transformer: plain int8 and through the analog
crossbar model.

Both plug into :class:`golden.float_model.Encoder` as its ``linear``. Weights are quantised
per output channel, activations per token (``numerics.act_scale = "per_token"``) or with one
scale for the whole batch (``"per_tensor"``); both symmetric, ``2^(bits-1) - 1`` at the largest
magnitude, rounded by ``numerics.rounding``. The integer product is then scaled back to float.
"""

from __future__ import annotations

import numpy as np

from cimforge.config import Config
from golden.cim import CimMatrix

__all__ = ["quantize", "IntLinear", "CimLinear", "LINEAR_NAMES"]

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


class IntLinear:
    """``x @ w`` with int8 (``numerics``) weights and activations and an exact integer product.

    Weight quantisation is done once per (layer, name) and cached.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self._weights: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}

    def weight(self, layer: int, name: str, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = (layer, name)
        if key not in self._weights:
            n = self.cfg.numerics
            self._weights[key] = quantize(w, n.weight_bits, 0, n.rounding)
        return self._weights[key]

    def activations(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.cfg.numerics
        axis = 1 if n.act_scale == "per_token" else None
        return quantize(x, n.act_bits, axis, n.rounding)

    def product(self, layer: int, name: str, xq: np.ndarray, wq: np.ndarray) -> np.ndarray:
        """The integer matmul, as float64 (exact: every sum is far below 2^53)."""
        return xq.astype(np.float64) @ wq.astype(np.float64)

    def __call__(self, layer: int, name: str, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        wq, sw = self.weight(layer, name, w)
        xq, sx = self.activations(x)
        return (self.product(layer, name, xq, wq) * sx * sw).astype(np.float32)


class CimLinear(IntLinear):
    """Like :class:`IntLinear`, with the integer product computed by the analog crossbar model
    (one :class:`~golden.cim.CimMatrix` per weight matrix, programmed on first use, each with
    its own random draws)."""

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
