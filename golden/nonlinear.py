"""Integer non-linear units: the bit-exact specification of the CMOS softmax, LayerNorm,
GELU/ReLU, requantiser and per-token scaling RTL (``hw/requant.py``, ``hw/softmax.py``,
``hw/layernorm.py``, ``hw/activation.py``, ``hw/token_quant.py``; each unit's streaming
spec and cycle model are in the golden module of the same name).

Every function here works on int64 numpy arrays and uses integer operations only; floats
appear only where a *parameter* is made (a fixed-point multiplier from a calibrated scale, a
table's contents), never on the data path. Formats come from :class:`NonlinearSpec`, which is
read from ``[nonlinear]`` and ``[numerics]`` of a :class:`~cimforge.config.Config`.

Rounding: every step that scales an *output* down (requantiser, softmax normalisation,
LayerNorm, GELU) rounds by ``numerics.rounding``; internal precision steps (the exp shift,
Newton-Raphson products, the exp polynomial) truncate (``floor``), as a datapath does.
docs/nonlinear-units.md gives the algorithms, formats and measured errors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cimforge.config import MAX_SHIFT, WIDE_BITS, Config, NonlinearConfig
from cimforge.golden.numerics import as_dict, round_shift, round_shift_var, saturate

__all__ = [
    "NonlinearSpec",
    "Multiplier",
    "multiplier",
    "shared_shift_multipliers",
    "requantize",
    "residual_add",
    "token_quantize",
    "recip_seed_table",
    "reciprocal",
    "isqrt",
    "exp2_table",
    "exp2_frac",
    "exp2_poly_coefficients",
    "softmax_multiplier",
    "SoftmaxTrace",
    "softmax",
    "causal_mask",
    "layer_norm",
    "LayerNormParams",
    "layer_norm_params",
    "ln_beta_bits",
    "gelu_table",
    "gelu_lut",
    "GeluPoly",
    "gelu_poly_params",
    "gelu_poly",
    "gelu_poly_const_bits",
    "relu",
]


# I-BERT's second-order erf approximation (Kim et al., 2021):
# erf(x) ~ sign(x) [A (min(|x|, -B) + B)^2 + 1].
IBERT_A = -0.2888
IBERT_B = -1.769
# 2^f on [0, 1) as 1 + f (C1 + C2 f): C1 + C2 = 1 keeps both ends exact; C2 minimises the
# largest relative error (0.27 %).
EXP2_C2 = 0.339766
EXP2_C1 = 1.0 - EXP2_C2


@dataclass(frozen=True)
class NonlinearSpec(NonlinearConfig):
    """Formats of the non-linear units: :class:`cimforge.config.NonlinearConfig` and the two
    ``[numerics]`` values they also use."""

    act_bits: int = 8
    rounding: str = "half_even"

    @classmethod
    def from_config(cls, cfg: Config) -> NonlinearSpec:
        return cls(**as_dict(cfg.nonlinear), act_bits=cfg.numerics.act_bits,
                   rounding=cfg.numerics.rounding)

    @property
    def prob_one(self) -> int:
        """The probability code that means 1."""
        return (1 << self.prob_bits) - 1

    @property
    def exp_floor(self) -> int:
        """Most negative base-2 exponent kept (``exp_frac_bits`` fraction bits): at
        ``-exp_bits`` every ``2^fraction`` value has been shifted out."""
        return -(self.exp_bits << self.exp_frac_bits)


# --------------------------------------------------------------------------------------------
# fixed-point multipliers and the requantiser


@dataclass(frozen=True)
class Multiplier:
    """A positive real scale as ``mult / 2^shift`` (``mult`` an int or an int64 array)."""

    mult: np.ndarray | int
    shift: int

    def value(self) -> np.ndarray | float:
        return np.asarray(self.mult, dtype=np.float64) / 2.0**self.shift


def multiplier(scale: float, bits: int, *, signed: bool = False) -> Multiplier:
    """``scale`` as a ``bits``-wide multiplier (``bits - 1`` magnitude bits when ``signed``)
    with the largest shift that fits: ``|mult| < 2^(bits - signed)``, shift in 0 ..
    :data:`MAX_SHIFT` (the units' shift registers are 6 bits).

    Raises ValueError for a scale that is not finite and positive, or that no shift in that
    range fits."""
    return shared_shift_multipliers(np.array([scale]), bits, signed=signed, scalar=True)


def shared_shift_multipliers(scales: np.ndarray, bits: int, *, signed: bool = False,
                             scalar: bool = False) -> Multiplier:
    """Per-channel scales as multipliers sharing one shift (the requantiser's per-channel
    table and its one shift register): the shift is set by the largest magnitude."""
    scales = np.asarray(scales, dtype=np.float64)
    top = float(np.max(np.abs(scales)))
    mag_bits = bits - 1 if signed else bits
    if not (np.all(np.isfinite(scales)) and top > 0 and (signed or np.all(scales >= 0))):
        raise ValueError(f"scales must be finite and positive, got {scales!r}")
    shift = mag_bits - 1 - math.floor(math.log2(top))
    mult = np.rint(scales * 2.0**shift).astype(np.int64)
    if np.max(np.abs(mult)) >= 1 << mag_bits:  # rounding went up to the next power of two
        shift -= 1
        mult = np.rint(scales * 2.0**shift).astype(np.int64)
    if not 0 <= shift <= MAX_SHIFT:
        raise ValueError(f"scale {top!r} is not a {bits}-bit multiplier with a shift in "
                         f"0..{MAX_SHIFT}: must be in [2^-{MAX_SHIFT - mag_bits + 1}, "
                         f"2^{mag_bits})")
    return Multiplier(int(mult[0]) if scalar else mult, shift)


def requantize(acc: np.ndarray, m: Multiplier, out_bits: int, rounding: str) -> np.ndarray:
    """``acc * mult / 2^shift``, rounded by ``rounding``, saturated to signed ``out_bits``.

    ``m.mult`` broadcasts along the last axis (per channel) or is one value."""
    prod = np.asarray(acc, dtype=np.int64) * np.asarray(m.mult, dtype=np.int64)
    return saturate(round_shift(prod, m.shift, rounding), out_bits)


def token_quantize(x: np.ndarray, bits: int, rounding: str) -> tuple[np.ndarray, np.ndarray]:
    """Dynamic per-token (last axis) power-of-two scaling of wide codes to signed ``bits``:
    ``e = max(0, bit_length(max |x|) - (bits - 1))`` per row, ``q = sat(round(x / 2^e))``.
    Returns ``q`` and ``e`` (shape ``(..., 1)``); ``q * 2^e`` approximates ``x``."""
    x = np.asarray(x, dtype=np.int64)
    peak = np.max(np.abs(x), axis=-1, keepdims=True)
    e = np.maximum(_bit_length(peak) - (bits - 1), 0)
    return saturate(round_shift_var(x, e, rounding), bits), e


def residual_add(a: np.ndarray, b: np.ndarray, bits: int) -> np.ndarray:
    """Saturating sum of two signed ``bits`` values already in the same format."""
    return saturate(np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64), bits)


# --------------------------------------------------------------------------------------------
# reciprocal and square root


def recip_seed_table(spec: NonlinearSpec) -> np.ndarray:
    """Seed of ``1/m`` for ``m`` in ``[1, 2)`` by the top ``recip_seed_bits`` fraction bits,
    as ``recip_bits`` fraction bits: the reciprocal of each interval's midpoint."""
    n = 1 << spec.recip_seed_bits
    mid = 1.0 + (np.arange(n) + 0.5) / n
    return np.rint(2.0**spec.recip_bits / mid).astype(np.int64)


def reciprocal(x: np.ndarray, spec: NonlinearSpec) -> tuple[np.ndarray, np.ndarray]:
    """``1/x`` for positive integers ``x`` as a mantissa ``r`` and exponent ``z``:
    ``1/x ~ r / 2^(recip_bits + z)`` with ``z = bit_length(x) - 1`` and ``r`` at most
    ``2^recip_bits`` and, to within the approximation's error, at least ``2^(recip_bits-1)``.

    ``x`` is normalised to ``m = x / 2^z`` in ``[1, 2)`` with ``recip_bits`` fraction bits
    (lower bits truncated), a seed is looked up by its top fraction bits, and each
    Newton-Raphson step is ``r <- r (2 - m r)``, each product truncated to ``recip_bits``
    fraction bits. ``x`` of 0 gives ``r = 0, z = 0``.
    """
    p = spec.recip_bits
    x = np.asarray(x, dtype=np.int64)
    if np.any(x < 0):
        raise ValueError("reciprocal of a negative value")
    z = _bit_length(x) - 1
    z = np.maximum(z, 0)
    m = np.where(z >= p, x >> np.maximum(z - p, 0), x << np.maximum(p - z, 0))
    frac = m - (np.int64(1) << p)
    r = recip_seed_table(spec)[frac >> (p - spec.recip_seed_bits)]
    two = np.int64(2) << p
    for _ in range(spec.recip_steps):
        r = (r * (two - ((m * r) >> p))) >> p
    return np.where(x > 0, r, 0), z


def _bit_length(x: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values (0 for 0), exactly."""
    x = np.asarray(x, dtype=np.int64)
    n = np.zeros(x.shape, dtype=np.int64)
    for b in (32, 16, 8, 4, 2, 1):
        n = n + np.where((x >> (n + b)) > 0, b, 0)
    return np.where(x > 0, n + 1, 0)


def isqrt(v: np.ndarray) -> np.ndarray:
    """``floor(sqrt(v))`` of int64 values in ``[0, 2^WIDE_BITS)``, exactly (the bit-by-bit
    restoring method the RTL runs, one result bit per step)."""
    v = np.asarray(v, dtype=np.int64)
    if np.any((v < 0) | (v >= np.int64(1) << WIDE_BITS)):
        raise ValueError(f"square root of a value outside [0, 2^{WIDE_BITS})")
    root = np.zeros(v.shape, dtype=np.int64)
    for b in range(30, -1, -1):
        trial = root | (np.int64(1) << b)
        root = np.where(trial * trial <= v, trial, root)
    return root


# --------------------------------------------------------------------------------------------
# softmax


def exp2_table(spec: NonlinearSpec) -> np.ndarray:
    """``2^(f / 2^exp_frac_bits)`` for every fraction ``f``, as unsigned ``exp_bits`` values
    in ``[2^(exp_bits-1), 2^exp_bits)`` (``round``, capped at the top code)."""
    f = np.arange(1 << spec.exp_frac_bits) / (1 << spec.exp_frac_bits)
    v = np.rint(2.0 ** (spec.exp_bits - 1 + f)).astype(np.int64)
    return np.minimum(v, (1 << spec.exp_bits) - 1)


def exp2_poly_coefficients(spec: NonlinearSpec) -> tuple[int, int]:
    """The exp polynomial's coefficients as ``exp_bits - 1`` fraction bits."""
    one = 1 << (spec.exp_bits - 1)
    return round(EXP2_C1 * one), round(EXP2_C2 * one)


def exp2_frac(f: np.ndarray, spec: NonlinearSpec) -> np.ndarray:
    """``2^(f / 2^exp_frac_bits)`` for fractions ``0 <= f < 2^exp_frac_bits``, by table or by
    the polynomial ``1 + f (C1 + C2 f)`` (products truncated), as ``exp_bits - 1`` fraction
    bits."""
    f = np.asarray(f, dtype=np.int64)
    if spec.exp_method == "lut":
        return exp2_table(spec)[f]
    c1, c2 = exp2_poly_coefficients(spec)
    fb = spec.exp_frac_bits
    return (np.int64(1) << (spec.exp_bits - 1)) + ((f * (c1 + ((c2 * f) >> fb))) >> fb)


def softmax_multiplier(scale: float, spec: NonlinearSpec) -> Multiplier:
    """The multiplier that turns a score difference into a base-2 exponent with
    ``exp_frac_bits`` fraction bits: ``scale * log2(e) * 2^exp_frac_bits``, where ``scale``
    is the real value of one score step (``1/sqrt(d_k)`` and the input scales folded in)."""
    return multiplier(scale * math.log2(math.e) * (1 << spec.exp_frac_bits), spec.mult_bits)


@dataclass(frozen=True)
class SoftmaxTrace:
    """The intermediate values of one :func:`softmax` call (for tests and the RTL bench)."""

    exponent: np.ndarray  # base-2 exponent, exp_frac_bits fraction bits, clamped at exp_floor
    exp: np.ndarray  # 2^exponent as exp_bits - 1 fraction bits (0 where masked)
    total: np.ndarray  # row sums
    recip: np.ndarray  # reciprocal mantissa of the sum
    recip_exp: np.ndarray  # its exponent
    probs: np.ndarray


def softmax(scores: np.ndarray, m: Multiplier, spec: NonlinearSpec,
            mask: np.ndarray | None = None, *, causal: bool = False, trace: bool = False):
    """Integer softmax along the last axis: unsigned ``prob_bits`` probabilities where
    ``2^prob_bits - 1`` means 1.

    ``scores`` are integers whose step is worth the real scale behind ``m``
    (:func:`softmax_multiplier`). ``mask`` (bool, broadcastable) keeps the positions where
    it is True; a row with none kept gives all zeros. ``causal`` also masks the keys after
    each query (the last two axes are queries and keys: :func:`causal_mask`).

    Steps: ``d = s - max`` over the kept positions; exponent ``t = round(d * mult /
    2^shift)`` clamped at :attr:`NonlinearSpec.exp_floor`; ``e = 2^frac(t) >> -floor(t)``
    (:func:`exp2_frac`); ``sum e``; ``(r, z) = reciprocal(sum)``; ``p = round(e * r *
    (2^prob_bits - 1) / 2^(recip_bits + z))``, capped at ``2^prob_bits - 1``.
    """
    s = np.asarray(scores, dtype=np.int64)
    keep = np.ones(s.shape, dtype=bool) if mask is None else np.broadcast_to(mask, s.shape)
    if causal:
        keep = keep & causal_mask(*s.shape[-2:])
    low = np.iinfo(np.int64).min
    top = np.max(np.where(keep, s, low), axis=-1, keepdims=True)
    d = np.where(keep, s - np.where(top == low, 0, top), 0)
    t = np.maximum(round_shift(d * m.mult, m.shift, spec.rounding), spec.exp_floor)
    fb = spec.exp_frac_bits
    e = exp2_frac(t & ((1 << fb) - 1), spec) >> np.minimum(-(t >> fb), 62)
    e = np.where(keep, e, 0)
    total = e.sum(axis=-1, keepdims=True)
    r, z = reciprocal(total, spec)
    scaled = r * spec.prob_one
    probs = np.minimum(round_shift_var(e * scaled, spec.recip_bits + z, spec.rounding),
                       spec.prob_one)
    if trace:
        return SoftmaxTrace(t, e, total, r, z, probs)
    return probs


def causal_mask(rows: int, cols: int | None = None) -> np.ndarray:
    """``mask[i, j]`` True where key ``j`` may be seen by query ``i`` (``j <= i``)."""
    cols = rows if cols is None else cols
    return np.tril(np.ones((rows, cols), dtype=bool))


# --------------------------------------------------------------------------------------------
# LayerNorm


@dataclass(frozen=True)
class LayerNormParams:
    """gamma and beta of one LayerNorm as fixed point for an ``act_bits`` output:
    ``y = round((n * gamma + beta) / 2^shift)`` with ``n`` the normalised input
    (``ln_frac_bits`` fraction bits)."""

    gamma: np.ndarray  # signed mult_bits, per element
    beta: np.ndarray  # signed, per element, already shifted up by `shift`
    shift: int


def layer_norm_params(gamma: np.ndarray, beta: np.ndarray, out_scale: float,
                      spec: NonlinearSpec) -> LayerNormParams:
    """Fixed-point gamma/beta for an output whose step is ``out_scale``.

    Raises ValueError when beta does not fit :func:`ln_beta_bits` (a beta more than 256 times
    the largest gamma) or the shift exceeds ``MAX_SHIFT``."""
    g = shared_shift_multipliers(np.asarray(gamma, dtype=np.float64) / out_scale
                                 / (1 << spec.ln_frac_bits), spec.mult_bits, signed=True)
    b = np.rint(np.asarray(beta, dtype=np.float64) / out_scale * 2.0**g.shift)
    if np.max(np.abs(b), initial=0) >= 2.0 ** (ln_beta_bits(spec) - 1) or g.shift > MAX_SHIFT:
        raise ValueError(f"LayerNorm beta/gamma do not fit the unit: |beta| must stay within "
                         f"{ln_beta_bits(spec) - 1} bits after the shift ({g.shift})")
    return LayerNormParams(np.asarray(g.mult, dtype=np.int64), b.astype(np.int64), g.shift)


def ln_beta_bits(spec: NonlinearSpec) -> int:
    """Signed width of LayerNorm's fixed-point beta."""
    return spec.mult_bits + spec.ln_frac_bits + 8


def layer_norm(h: np.ndarray, params: LayerNormParams, spec: NonlinearSpec,
               out_bits: int | None = None, *, normalised: bool = False) -> np.ndarray:
    """Integer LayerNorm along the last axis (``d`` elements) to signed ``out_bits``
    (default ``act_bits``).

    With ``S1 = sum h`` and ``S2 = sum h^2``: ``c_i = d h_i - S1`` and
    ``V = d S2 - S1^2`` are exact, and ``(h_i - mean) / std = c_i / sqrt(V)``. ``s =
    isqrt(V)`` (exact floor), ``(r, z) = reciprocal(s)``, ``n_i = round(c_i r /
    2^(recip_bits + z - ln_frac_bits))``, ``y_i = sat(round((n_i gamma_i + beta_i) /
    2^shift))``. A constant row (``V = 0``) normalises to 0. (BERT's epsilon, 1e-12 of the
    variance, is below one step of any integer input and is left out.)

    ``normalised`` returns ``n`` instead of ``y`` (for tests of the normalisation alone).
    """
    h = np.asarray(h, dtype=np.int64)
    d = h.shape[-1]
    s1 = h.sum(axis=-1, keepdims=True)
    s2 = (h * h).sum(axis=-1, keepdims=True)
    c = d * h - s1
    v = d * s2 - s1 * s1
    r, z = reciprocal(isqrt(v), spec)
    n = round_shift_var(c * r, spec.recip_bits + z - spec.ln_frac_bits, spec.rounding)
    if normalised:
        return n
    y = round_shift(n * params.gamma + params.beta, params.shift, spec.rounding)
    return saturate(y, spec.act_bits if out_bits is None else out_bits)


# --------------------------------------------------------------------------------------------
# GELU and ReLU


def _gelu_float(x: np.ndarray) -> np.ndarray:
    from cimforge.golden.float_model import gelu_erf

    return gelu_erf(np.asarray(x, dtype=np.float32)).astype(np.float64)


def gelu_table(in_scale: float, out_scale: float, spec: NonlinearSpec,
               out_bits: int | None = None, *, tanh: bool = False) -> np.ndarray:
    """The GELU table: for every signed ``gelu_in_bits`` code ``q`` (index ``q`` mod
    ``2^gelu_in_bits``), ``sat(round(gelu(q * in_scale) / out_scale))`` in signed
    ``out_bits`` (default ``act_bits``). It is the unit's programmed contents, made once per
    layer from the calibrated scales. ``gelu`` is BERT's (erf), or GPT-2's tanh
    approximation with ``tanh``."""
    from cimforge.golden.float_model import gelu_tanh

    n = 1 << spec.gelu_in_bits
    q = np.arange(n, dtype=np.int64)
    q = np.where(q >= n // 2, q - n, q)
    g = (gelu_tanh(np.asarray(q * in_scale, dtype=np.float32)).astype(np.float64) if tanh
         else _gelu_float(q * in_scale))
    y = np.rint(g / out_scale).astype(np.int64)
    return saturate(y, spec.act_bits if out_bits is None else out_bits)


def gelu_lut(q: np.ndarray, table: np.ndarray, spec: NonlinearSpec) -> np.ndarray:
    """Table GELU of signed ``gelu_in_bits`` codes."""
    q = np.asarray(q, dtype=np.int64)
    return table[q & ((1 << spec.gelu_in_bits) - 1)]


@dataclass(frozen=True)
class GeluPoly:
    """Integer constants of I-BERT's GELU for one input scale, and the output requantiser.

    ``b`` (<= 0) and ``c`` are ``B`` and ``1/A`` in the erf polynomial's own units;
    ``one`` is 1 in the units of ``L``; ``out`` scales ``q (L + one)`` to the output."""

    b: int
    c: int
    one: int
    out: Multiplier


def gelu_poly_const_bits(spec: NonlinearSpec) -> int:
    """Signed width of the GELU polynomial's constants ``c`` and ``one``: what keeps
    ``q (one - L) * mult`` within ``WIDE_BITS`` (``b`` needs ``gelu_in_bits + 4``)."""
    return WIDE_BITS - spec.gelu_in_bits - spec.mult_bits


def gelu_poly_params(in_scale: float, out_scale: float, spec: NonlinearSpec) -> GeluPoly:
    """I-BERT's integer GELU constants for an input step ``in_scale``: the erf polynomial
    runs on ``x / sqrt 2`` (step ``s = in_scale / sqrt 2``) with ``b = floor(B / s)``,
    ``c = floor(1 / (A s^2))``; ``L`` has step ``A s^2``; ``gelu = x (1 + erf) / 2`` has
    step ``in_scale * A s^2 / 2``.

    Raises ValueError when the constants do not fit :func:`gelu_poly_const_bits` (an input
    step too small for the input width: fewer input bits or a larger range fix it)."""
    s = in_scale / math.sqrt(2.0)
    b = math.floor(IBERT_B / s)
    c = math.floor(1.0 / (IBERT_A * s * s))
    l_step = -IBERT_A * s * s  # sign folded: L's integer carries the sign of A (negative)
    one = math.floor(1.0 / l_step)
    lim = 1 << (gelu_poly_const_bits(spec) - 1)
    if not (-lim <= c and one < lim and -b < 1 << (spec.gelu_in_bits + 3)):
        raise ValueError(
            f"GELU input step {in_scale!r} makes the polynomial's constants (c = {c}) wider "
            f"than {gelu_poly_const_bits(spec)} bits: use fewer gelu_in_bits or a larger "
            "input range")
    return GeluPoly(b, c, one, multiplier(in_scale * l_step / 2.0 / out_scale, spec.mult_bits))


def gelu_poly(q: np.ndarray, p: GeluPoly, spec: NonlinearSpec,
              out_bits: int | None = None) -> np.ndarray:
    """I-BERT's integer GELU of signed ``gelu_in_bits`` codes, requantised to ``out_bits``
    (default ``act_bits``):
    ``L = sign(q) ((min(|q|, -b) + b)^2 + c)`` (with A < 0 folded in: ``-L`` has a positive
    step), ``y = sat(round(q (one - L) * out))``."""
    q = np.asarray(q, dtype=np.int64)
    a = np.minimum(np.abs(q), -p.b) + p.b
    erf = np.sign(q) * (a * a + p.c)
    bits = spec.act_bits if out_bits is None else out_bits
    return requantize(q * (p.one - erf), p.out, bits, spec.rounding)


def relu(q: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(q, dtype=np.int64), 0)
