"""The golden accelerator: the encoder exactly as the accelerator top computes it.

The integer-only encoder of :mod:`cimforge.golden.int_model` -- the same formats, multipliers,
softmax, LayerNorm, GELU and per-token scaling -- with every linear layer computed by the
analog tile units the mapper places it on (:mod:`cimforge.golden.mapping`): one
:class:`~cimforge.golden.cim.CimMatrix` per unit, holding the unit's output channels of the
int8 matrix, its random draws keyed by the unit's index. ``q . K^T`` and ``P . V`` run on the
digital-CIM macros, whose results are the exact integer products
(:mod:`cimforge.golden.dcim`): the integer model's products.

What changes against the integer model is the linear layers' accumulator: a unit's results come
in units of ``2^out_exp`` conductance levels (its ADC ranges), drift-compensated, saturated to
``acc_bits``. Each channel's bias and requantiser multiplier are made for its unit's LSB. With
every device effect off and ADCs that resolve every read (``out_exp = 0``) the accumulators
are the exact products and the accelerator equals :class:`~cimforge.golden.int_model.
IntOnlyEncoder` bit for bit (tested).

The accelerator runs one sequence at a time: :meth:`AcceleratorModel.run` takes the embedding
codes the host streams (signed ``residual_bits``, :meth:`~cimforge.golden.int_model.
IntOnlyEncoder.embedding_codes`) and returns the last LayerNorm's codes; ``embed`` and
``forward`` run each sequence of a batch alone, so a sequence's bits never depend on the batch.
A unit's per-read noise is drawn by the vector's position in its sequence
(:meth:`cimforge.golden.cim.CimMatrix.matmul`).

The digital outlier side path of ``numerics.outlier_sigma`` (:mod:`cimforge.golden.quant`) is
not part of the accelerator: like the integer model, it quantises every weight to int8.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cimforge.config import Config
from cimforge.golden.cim import CimMatrix
from cimforge.golden.float_model import Decoder, Encoder
from cimforge.golden.int_decoder import IntOnlyDecoder
from cimforge.golden.int_model import IntOnlyEncoder, Observer, Ranges
from cimforge.golden.mapping import Mapping, TileUnit, map_model
from cimforge.golden.nonlinear import (
    Multiplier,
    NonlinearSpec,
    requantize,
    shared_shift_multipliers,
)
from cimforge.golden.quant import quantize_weight

__all__ = ["AcceleratorModel", "AcceleratorDecoder", "TileLinear", "KvCapacityError",
           "tile_linear"]


class KvCapacityError(ValueError):
    """A sequence longer than the K and V macros hold."""


@dataclass(frozen=True)
class TileLinear:
    """One matrix on its tile units: int8 weights (``w``, (K, N)), the units' matrices in
    channel order, every channel's bias (in its unit's LSB) and requantiser."""

    w: np.ndarray
    units: tuple[TileUnit, ...]
    matrices: tuple[CimMatrix, ...]
    bias: np.ndarray
    out: Multiplier
    inputs: list[np.ndarray] = field(default_factory=list, compare=False)
    """Every sequence's input vectors, in the order they were computed (the benches' record
    of what each unit must see)."""

    def accumulate(self, x: np.ndarray, first: int = 0) -> np.ndarray:
        """The units' results for the vectors ``x`` (positions ``first ..`` of one sequence,
        (n, K) signed int8): (n, N) signed ``acc_bits`` in each channel's unit LSB."""
        self.inputs.append(np.array(x, dtype=np.int64))
        return np.concatenate([m.matmul(x, first=first) for m in self.matrices], axis=1)

    def __call__(self, x: np.ndarray, e: np.ndarray | int, bits: int, rounding: str,
                 first: int = 0) -> np.ndarray:
        """As :class:`cimforge.golden.int_model._Linear`: ``x * 2^e`` times the weights, plus
        bias, requantised to signed ``bits``."""
        return requantize((self.accumulate(x, first) << e) + self.bias, self.out, bits,
                          rounding)

    @property
    def lsb_exp(self) -> np.ndarray:
        """Every channel's accumulator LSB exponent (its unit's ``out_exp``)."""
        return np.concatenate([np.full(u.channels, m.out_exp)
                               for u, m in zip(self.units, self.matrices, strict=True)])


def tile_linear(cfg: Config, spec: NonlinearSpec, mapping: Mapping, layer: int, name: str,
                w: np.ndarray, b: np.ndarray, in_step: float, out_step: float) -> TileLinear:
    """Matrix ``name`` of ``layer`` (float ``w``, (in, out), and bias ``b``) on the tile units
    ``mapping`` places it on, with every channel's bias and requantiser from ``in_step`` to
    ``out_step`` made for its unit's LSB."""
    n = cfg.numerics
    qw = quantize_weight(w, n.weight_bits, n.rounding)
    q = qw.q.astype(np.int64)
    units = mapping.units_of(layer, name)
    matrices = tuple(CimMatrix(q[:, u.first:u.first + u.channels], cfg, key=u.index)
                     for u in units)
    lsb = np.concatenate([np.full(u.channels, m.out_lsb)
                          for u, m in zip(units, matrices, strict=True)])
    acc_step = in_step * qw.scale[0] * lsb
    bias = np.rint(b / acc_step).astype(np.int64)
    out = shared_shift_multipliers(acc_step / out_step, spec.mult_bits)
    return TileLinear(q, units, matrices, bias, out)


class AcceleratorModel(IntOnlyEncoder):
    """The bit-exact specification of the accelerator top (see the module docstring).

    Parameters
    ----------
    encoder : Encoder
        The float model: weights, tokenizer, embeddings.
    cfg : Config
        Numerics, tiles, ADCs, device and ``[accelerator]``; the model must map
        (:func:`cimforge.golden.mapping.map_model` raises
        :class:`~cimforge.golden.mapping.MappingError` otherwise).
    ranges : Ranges
        Calibrated activation ranges (:func:`cimforge.golden.int_model.calibrate`).
    """

    def __init__(self, encoder: Encoder, cfg: Config, ranges: Ranges,
                 observer: Observer | None = None):
        self.mapping: Mapping = map_model(cfg)
        super().__init__(encoder, cfg, ranges, observer)

    def _int_linear(self, layer: int, name: str, w: np.ndarray, b: np.ndarray,  # type: ignore[override]
                    in_step: float, out_step: float) -> TileLinear:
        return tile_linear(self.cfg, self.spec, self.mapping, layer, name, w, b, in_step,
                           out_step)

    @property
    def kv_capacity(self) -> int:
        return self.mapping.kv_capacity

    def encode_codes(self, ids: np.ndarray, mask: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """As :meth:`IntOnlyEncoder.encode_codes`, each sequence alone."""
        return np.concatenate([super(AcceleratorModel, self).encode_codes(
            ids[b:b + 1], mask[b:b + 1], rows[b:b + 1]) for b in range(len(ids))])

    def codes_from_embeddings(self, h: np.ndarray, mask: np.ndarray, rows: np.ndarray
                              ) -> np.ndarray:
        if rows.shape[1] > self.kv_capacity:
            raise KvCapacityError(
                f"a sequence of {rows.shape[1]} tokens exceeds the KV capacity of "
                f"{self.kv_capacity} tokens (dcim.rows)")
        return super().codes_from_embeddings(h, mask, rows)

    def run(self, h: np.ndarray) -> np.ndarray:
        """One sequence through the accelerator: embedding codes ``h`` (n, d_model), signed
        ``residual_bits``, in; the last LayerNorm's codes (n, d_model), signed ``x_bits``,
        out."""
        h = np.asarray(h, dtype=np.int64)
        if h.ndim != 2 or h.shape[1] != self.model.d_model:
            raise ValueError(f"h must have shape (tokens, {self.model.d_model}), not {h.shape}")
        ones = np.ones((1, len(h)), dtype=bool)
        return self.codes_from_embeddings(h, ones, ones)


class AcceleratorDecoder(IntOnlyDecoder):
    """The decoder as the accelerator top computes it: :class:`~cimforge.golden.int_decoder.
    IntOnlyDecoder` with every linear layer on the tile units of the mapping, as
    :class:`AcceleratorModel` is to the integer encoder. A unit's per-read noise is drawn by
    the token's position in its sequence, so decoding token by token equals the full forward
    with device effects on too. The cache holds :attr:`capacity` tokens: the K and V macros'
    rows (``dcim.rows``), at most ``max_seq``."""

    def __init__(self, decoder: Decoder, cfg: Config, ranges: Ranges):
        self.mapping: Mapping = map_model(cfg)
        super().__init__(decoder, cfg, ranges)

    def _int_linear(self, layer: int, name: str, w: np.ndarray, b: np.ndarray,  # type: ignore[override]
                    in_step: float, out_step: float) -> TileLinear:
        return tile_linear(self.cfg, self.spec, self.mapping, layer, name, w, b, in_step,
                           out_step)

    @property
    def capacity(self) -> int:
        return min(self.mapping.kv_capacity, self.model.max_seq)
