"""One configuration object for the whole flow.

A :class:`Config` is a tree of frozen dataclasses (model shape, numerics, analog tile, ADC,
digital-CIM macro, device) loaded from a TOML preset or file.  Every width, rounding mode and
saturation rule used by ``hw/``, ``golden/``, ``verif/`` and ``synth/`` is read from here; the
values that follow from others (weight slices, input digits, shift range, accumulator widths)
are properties, never stored twice.

This module imports no other project code, so every layer can depend on it.

TOML layout (all sections optional when ``base`` names a preset)::

    base = "tiny"            # optional: start from a preset, then override keys below
    seed = 1
    [model]    name kind d_model n_heads d_ff n_layers vocab_size max_seq seq_len
    [numerics] act_bits weight_bits acc_bits rounding saturate act_scale outlier_sigma
    [tile]     rows cols bits_per_cell dac_bits rows_per_read slice_range row_tiles col_tiles
    [adc]      kind bits cols_per_adc range range_scale percentile offset_sigma_lsb
               offset_calibration gain_calibration
    [dcim]     rows cols
    [device]   preset (then any DeviceConfig field)
    [analog]   prog_noise read_noise drift t_inference drift_compensation ir_drop r_wire_ohm
               stuck_on_rate stuck_off_rate
    [nonlinear] exp_method exp_frac_bits exp_bits recip_bits recip_seed_bits recip_steps
               prob_bits softmax_lanes mult_bits ln_frac_bits residual_bits activation
               gelu_method gelu_in_bits
    [accelerator] crossbars dcim_macros stream_bits max_unit_tiles rtl

Errors are :class:`ConfigError` (a ``ValueError``) whose message names the file, the key, the
offending value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ConfigError",
    "ModelConfig",
    "NumericsConfig",
    "TileConfig",
    "AdcConfig",
    "DcimConfig",
    "AcceleratorConfig",
    "CostConfig",
    "DeviceConfig",
    "AnalogConfig",
    "NonlinearConfig",
    "KNOWN_DEVICES",
    "Config",
    "KNOWN_MODELS",
    "ROUNDING_MODES",
    "DEVICE_PRESETS",
    "preset_names",
    "load_config",
    "max_shift",
    "SHIFT_BITS",
    "MAX_SHIFT",
    "WIDE_BITS",
]

# Fixed formats every block shares, typed here once:
SHIFT_BITS = 6  # every programmable right shift of the units is a 6-bit field ...
MAX_SHIFT = (1 << SHIFT_BITS) - 1  # ... so 0 .. 63
WIDE_BITS = 62  # widest intermediate value the golden int64 arithmetic is allowed to hold


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range.

    ``key`` is the dotted key (``"tile.rows"``) when one is to blame; ``source`` the file.
    """

    def __init__(self, key: str | None, message: str, source: str | None = None):
        self.key = key
        self.detail = message
        self.source = source
        where = f"{source}: " if source else ""
        what = f"{key}: " if key else ""
        super().__init__(f"{where}{what}{message}")

    def within(self, section: str | None = None, source: str | None = None) -> ConfigError:
        """The same error, with its key prefixed by ``section`` and/or attributed to ``source``."""
        key = self.key
        if section is not None:
            key = f"{section}.{key}" if key else section
        return ConfigError(key, self.detail, source if source is not None else self.source)


# --------------------------------------------------------------------------------------------
# field checks: each raises ConfigError(key, "<value> ...: must be ...")


def _check_int(name: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ConfigError(name, f"{value!r} must be an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        if hi is None:
            allowed = f">= {lo}"
        elif lo is None:
            allowed = f"<= {hi}"
        else:
            allowed = f"in [{lo}, {hi}]"
        raise ConfigError(name, f"{value!r} is out of range: must be an integer {allowed}")


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if isinstance(choices[0], int):
        _check_int(name, value)  # so that true or 2.0 are not taken for 1 or 2
    if value not in choices:
        allowed = ", ".join(map(str, choices))
        raise ConfigError(name, f"{value!r} is not allowed: must be one of {allowed}")


def _check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ConfigError(name, f"{value!r} must be true or false")


def _check_float(name: str, value: Any, *, lo: float, hi: float = math.inf,
                 lo_open: bool = False, allow_inf: bool = False) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
        raise ConfigError(name, f"{value!r} must be a number")
    if math.isinf(value) and not allow_inf:  # TOML's inf, or a literal past 1.8e308
        raise ConfigError(name, f"{value!r} must be a finite number")
    if value < lo or (lo_open and value == lo) or value > hi:
        low = f"> {lo}" if lo_open else f">= {lo}"
        allowed = low if hi == math.inf else f"{low} and <= {hi}"
        raise ConfigError(name, f"{value!r} is out of range: must be {allowed}")


def _check_str(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(name, f"{value!r} must be a non-empty string")


def input_digits(input_bits: int, dac_bits: int) -> int:
    """DAC steps per signed ``input_bits`` input: the ``input_bits - 1`` bits below the sign in
    unsigned digits of ``dac_bits`` (the top one may be narrower), then the sign bit alone."""
    return -(-(input_bits - 1) // dac_bits) + 1


def digit_shift(digit: int, input_bits: int, dac_bits: int) -> int:
    """Exponent of input digit ``digit``'s weight: ``digit * dac_bits``, and ``input_bits - 1``
    for the last digit, the sign bit (weighed negative)."""
    return min(digit * dac_bits, input_bits - 1)


def digit_bits(digit: int, input_bits: int, dac_bits: int) -> tuple[int, int]:
    """The bits ``lo`` up to (not including) ``hi`` of a two's-complement input that digit
    ``digit`` applies: ``dac_bits`` at a time below the sign (the top digit may be narrower),
    the sign bit alone last."""
    lo = digit_shift(digit, input_bits, dac_bits)
    if digit == input_digits(input_bits, dac_bits) - 1:
        return lo, input_bits
    return lo, min(lo + dac_bits, input_bits - 1)


def max_shift(input_bits: int, weight_slices: int, bits_per_cell: int) -> int:
    """Exponent of the heaviest shift-add term: the sign digit weighs ``2^(input_bits - 1)``,
    weight slice ``k`` weighs ``2^(k * bits_per_cell)``."""
    return (input_bits - 1) + (weight_slices - 1) * bits_per_cell


# --------------------------------------------------------------------------------------------
# sections


MODEL_KINDS = ("encoder", "decoder")


@dataclass(frozen=True)
class ModelConfig:
    """Transformer shape.

    ``kind`` is ``"encoder"`` (BERT/MiniLM: post-LN, bidirectional) or ``"decoder"``
    (GPT: pre-LN, causal, KV cache). ``seq_len`` is the sequence length N used for workload
    profiles and estimates; ``max_seq`` the longest sequence the hardware holds.
    """

    name: str = "custom"
    kind: str = "encoder"
    d_model: int = 384
    n_heads: int = 12
    d_ff: int = 1536
    n_layers: int = 6
    vocab_size: int = 30522
    max_seq: int = 512
    seq_len: int = 128

    def __post_init__(self):
        _check_str("name", self.name)
        _check_choice("kind", self.kind, MODEL_KINDS)
        for key in ("d_model", "n_heads", "d_ff", "n_layers", "vocab_size", "max_seq", "seq_len"):
            _check_int(key, getattr(self, key), lo=1)
        if self.d_model % self.n_heads:
            raise ConfigError(
                "d_model",
                f"{self.d_model} is not divisible by n_heads ({self.n_heads}): "
                "must be a multiple of n_heads",
            )
        if self.seq_len > self.max_seq:
            raise ConfigError(
                "seq_len", f"{self.seq_len} exceeds max_seq ({self.max_seq}): must be <= max_seq"
            )

    @property
    def d_head(self) -> int:
        return self.d_model // self.n_heads


# Shapes of the published models; a [model] section may start from one with name = "...".
KNOWN_MODELS: dict[str, ModelConfig] = {
    m.name: m
    for m in (
        ModelConfig("minilm", "encoder", 384, 12, 1536, 6, 30522, 512, 128),
        ModelConfig("bert-base", "encoder", 768, 12, 3072, 12, 30522, 512, 128),
        ModelConfig("bert-large", "encoder", 1024, 16, 4096, 24, 30522, 512, 128),
        ModelConfig("gpt2", "decoder", 768, 12, 3072, 12, 50257, 1024, 1024),
        ModelConfig("gpt3", "decoder", 12288, 96, 49152, 96, 50257, 2048, 2048),
    )
}

ROUNDING_MODES = ("half_even", "half_up", "floor")
ACT_SCALES = ("per_token", "per_tensor")


@dataclass(frozen=True)
class NumericsConfig:
    """Integer formats shared by hw/ and golden/.

    Activations and weights are signed two's complement of ``act_bits`` / ``weight_bits``;
    accumulators signed ``acc_bits``. ``rounding`` applies wherever a value is scaled down
    (``half_even``: round half to even, ``half_up``: round half towards +inf, ``floor``:
    arithmetic shift). ``saturate`` clamps results to their format instead of wrapping.
    ``act_scale`` is the activation quantisation scale (``per_token`` or ``per_tensor``).

    ``outlier_sigma`` (0: off) keeps weights larger than that many standard deviations of
    their output channel out of the crossbar: they are computed exactly in a digital side path
    (int16 weights), and the channel's int8 scale is set by the weights that remain. A handful
    of such weights (a few per million in MiniLM) otherwise set a channel's scale and leave its
    other weights a few levels each, at the mercy of device noise.
    """

    act_bits: int = 8
    weight_bits: int = 8
    acc_bits: int = 32
    rounding: str = "half_even"
    saturate: bool = True
    act_scale: str = "per_token"
    outlier_sigma: float = 0.0

    def __post_init__(self):
        _check_int("act_bits", self.act_bits, lo=2, hi=16)
        _check_int("weight_bits", self.weight_bits, lo=2, hi=16)
        _check_int("acc_bits", self.acc_bits, lo=8, hi=48)
        _check_choice("rounding", self.rounding, ROUNDING_MODES)
        _check_bool("saturate", self.saturate)
        _check_choice("act_scale", self.act_scale, ACT_SCALES)
        _check_float("outlier_sigma", self.outlier_sigma, lo=0.0)
        if 0 < self.outlier_sigma < 2:
            raise ConfigError("outlier_sigma", f"{self.outlier_sigma!r} would take a good share "
                              "of every channel out of the crossbar: must be 0 (off) or >= 2")


SLICE_RANGES = ("fixed", "fitted")


@dataclass(frozen=True)
class TileConfig:
    """Analog crossbar tile.

    ``rows`` x ``cols`` cells of ``bits_per_cell`` bits; each signed weight is a differential
    pair (G+ / G-) of ``weight_bits / bits_per_cell`` slices on adjacent columns. Inputs are
    applied ``dac_bits`` at a time (a word line driven at one of ``2^dac_bits`` levels): the
    bits below the sign in unsigned digits, then the sign bit alone, whose read weighs negative
    (:func:`input_digits`); ``rows_per_read`` word lines are activated per read.

    ``slice_range`` maps levels to conductance: ``fixed`` spreads level 0 .. 2^bits_per_cell - 1
    of every slice over G_min .. G_max; ``fitted`` spreads each slice's levels up to the
    largest one the matrix uses (e.g. the top slice of an int8 magnitude, which never exceeds
    level 7 of a 4-bit cell) over the whole range, so the device noise, fixed in siemens, is
    a smaller fraction of a level.

    ``row_tiles`` x ``col_tiles`` is the size of the analog unit the RTL generator builds
    (``hw/analog_tile.py``): that many crossbars, the row tiles of a column read one after
    another through the column tile's ADCs (their partial sums continue in the shift-add), the
    column tiles in parallel. The golden model tiles any matrix; the unit holds matrices of up
    to ``row_tiles * rows`` inputs and ``col_tiles`` tiles of output channels.
    """

    rows: int = 256
    cols: int = 256
    bits_per_cell: int = 2
    dac_bits: int = 1
    rows_per_read: int = 256
    slice_range: str = "fixed"
    row_tiles: int = 1
    col_tiles: int = 1

    def __post_init__(self):
        _check_int("rows", self.rows, lo=1, hi=4096)
        _check_int("cols", self.cols, lo=1, hi=4096)
        _check_choice("bits_per_cell", self.bits_per_cell, (1, 2, 4))
        _check_int("dac_bits", self.dac_bits, lo=1, hi=4)
        _check_int("rows_per_read", self.rows_per_read, lo=1, hi=self.rows)
        _check_choice("slice_range", self.slice_range, SLICE_RANGES)
        _check_int("row_tiles", self.row_tiles, lo=1, hi=16)
        _check_int("col_tiles", self.col_tiles, lo=1, hi=16)
        if self.rows % self.rows_per_read:
            raise ConfigError(
                "rows_per_read",
                f"{self.rows_per_read} does not divide rows ({self.rows}): "
                "must be a divisor of tile.rows",
            )


ADC_KINDS = ("sar", "flash")
ADC_RANGES = ("unit", "full", "calibrated")


@dataclass(frozen=True)
class AdcConfig:
    """Column ADCs.

    Parameters
    ----------
    kind : str
        ``sar`` (one comparator, one decision per cycle) or ``flash`` (2^bits - 1 comparators).
    bits : int
        Resolution.
    cols_per_adc : int
        Columns multiplexed onto each converter.
    range : str
        Full scale of a conversion: ``unit`` (one LSB per conductance level: exact while a read
        stays below 2^bits - 1 levels), ``full`` (``range_scale`` times the largest possible
        read, rows_per_read x (levels - 1)), or ``calibrated`` (per weight slice, from the
        calibration read: ``range_scale`` times the ``percentile`` of the slice's all-rows
        reads). Every full scale is rounded up so the LSB is a power of two of a level.
    range_scale : float
        Fraction of the reference read (largest possible, or calibrated) used as full scale.
    percentile : float
        Percentile of a slice's calibration reads taken as its reference with
        ``range = "calibrated"``.
    offset_sigma_lsb : float
        Comparator offset sigma in LSB (static, one per comparator).
    offset_calibration : bool
        Trim each SAR ADC's comparator offset by a register set from a calibration
        measurement, in steps of 1/16 LSB. (A flash ADC has one offset per comparator, and
        one trim per ADC would only move their mean, which is already near 0: refused.)
    gain_calibration : bool
        Trim every tile's ADC gain (its reference) by the calibration read, programming time
        against now, so codes stay in units of programmed levels as the cells drift: rounding
        then lands on whole levels again, which a digital factor after the ADC cannot restore.
    """

    kind: str = "sar"
    bits: int = 8
    cols_per_adc: int = 8
    range: str = "unit"
    range_scale: float = 1.0
    percentile: float = 99.9
    offset_sigma_lsb: float = 0.0
    offset_calibration: bool = False
    gain_calibration: bool = False

    def __post_init__(self):
        _check_choice("kind", self.kind, ADC_KINDS)
        _check_bool("gain_calibration", self.gain_calibration)
        _check_bool("offset_calibration", self.offset_calibration)
        _check_int("bits", self.bits, lo=1, hi=16)
        _check_int("cols_per_adc", self.cols_per_adc, lo=1)
        _check_choice("range", self.range, ADC_RANGES)
        _check_float("range_scale", self.range_scale, lo=0.0, hi=1.0, lo_open=True)
        _check_float("percentile", self.percentile, lo=0.0, hi=100.0, lo_open=True)
        _check_float("offset_sigma_lsb", self.offset_sigma_lsb, lo=0.0, hi=8.0)
        if self.kind == "flash" and self.offset_calibration:
            raise ConfigError(
                "offset_calibration",
                "true trims one comparator per ADC, and a flash ADC has 2^bits - 1: "
                "must be false with kind = 'flash'",
            )
        if self.kind == "flash" and self.bits > 8:
            raise ConfigError(
                "bits",
                f"{self.bits} is too wide for a flash ADC (2^bits - 1 comparators): "
                "must be <= 8 with kind = 'flash'",
            )


@dataclass(frozen=True)
class DcimConfig:
    """SRAM digital-CIM macro: ``rows`` stored vectors (tokens) of ``cols`` int elements."""

    rows: int = 512
    cols: int = 64

    def __post_init__(self):
        _check_int("rows", self.rows, lo=1, hi=65536)
        _check_int("cols", self.cols, lo=1, hi=4096)


@dataclass(frozen=True)
class AcceleratorConfig:
    """The accelerator top (``hw/accelerator.py``, mapped by :mod:`cimforge.golden.mapping`).

    ``crossbars`` and ``dcim_macros`` are what the chip declares: the mapper refuses a model
    that needs more (0: as many as the mapping needs). ``stream_bits`` is the AXI4-Stream data
    width of the token ports (a multiple of 8). ``max_unit_tiles`` caps the row and column
    tiles of one analog tile unit (a matrix wider than that many column tiles is split over
    several units side by side). ``rtl``: ``cimforge generate`` (and so the flow) builds the
    accelerator top's Verilog; off for models whose whole-accelerator RTL is too large to
    simulate (``minilm``: 1584 crossbars), which the golden model and the estimates still cover.
    """

    crossbars: int = 0
    dcim_macros: int = 0
    stream_bits: int = 32
    max_unit_tiles: int = 16
    clock_mhz: float = 100.0
    rtl: bool = False

    def __post_init__(self):
        _check_int("crossbars", self.crossbars, lo=0, hi=1 << 20)
        _check_int("dcim_macros", self.dcim_macros, lo=0, hi=1 << 16)
        _check_int("stream_bits", self.stream_bits, lo=8, hi=1024)
        if self.stream_bits % 8:
            raise ConfigError("stream_bits", f"{self.stream_bits} is not a multiple of 8: "
                              "an AXI4-Stream data width is whole bytes")
        _check_int("max_unit_tiles", self.max_unit_tiles, lo=1, hi=16)
        _check_float("clock_mhz", self.clock_mhz, lo=0.0, lo_open=True, hi=10_000.0)
        _check_bool("rtl", self.rtl)


EXP_METHODS = ("lut", "poly")
GELU_METHODS = ("lut", "poly")
ACTIVATIONS = ("gelu", "relu")


@dataclass(frozen=True)
class NonlinearConfig:
    """Formats of the CMOS non-linear units (softmax, LayerNorm, GELU/ReLU, requantiser).

    Softmax: ``exp(x) = 2^(x log2 e)``; the base-2 exponent has ``exp_frac_bits`` fraction
    bits; ``2^fraction`` comes from a table of ``2^exp_frac_bits`` entries (``exp_method =
    "lut"``) or a second-order polynomial (``"poly"``), as an unsigned ``exp_bits`` value in
    ``[2^(exp_bits-1), 2^exp_bits)``, then shifted right by the integer part. The row sum's
    reciprocal has ``recip_bits`` fraction bits: a ``2^recip_seed_bits``-entry seed table,
    then ``recip_steps`` Newton-Raphson steps. Probabilities are unsigned ``prob_bits`` with
    ``2^prob_bits - 1`` meaning 1. ``softmax_lanes`` elements of a row enter per cycle.

    Every scale is a fixed-point multiplier of ``mult_bits`` (unsigned, or signed for
    LayerNorm's gamma) and a shift. LayerNorm normalises to ``ln_frac_bits`` fraction bits
    before gamma. The residual stream (LayerNorm's input) is signed ``residual_bits``.
    ``activation`` is the FFN's (``gelu`` or ``relu``); GELU's input is requantised to signed
    ``gelu_in_bits`` and evaluated by a table (``gelu_method = "lut"``, at most 10 input bits)
    or I-BERT's integer polynomial (``"poly"``).
    """

    exp_method: str = "lut"
    exp_frac_bits: int = 8
    exp_bits: int = 16
    recip_bits: int = 16
    recip_seed_bits: int = 4
    recip_steps: int = 2
    prob_bits: int = 8
    softmax_lanes: int = 1
    mult_bits: int = 16
    ln_frac_bits: int = 10
    residual_bits: int = 16
    activation: str = "gelu"
    gelu_method: str = "lut"
    gelu_in_bits: int = 8

    def __post_init__(self):
        _check_choice("exp_method", self.exp_method, EXP_METHODS)
        _check_int("exp_frac_bits", self.exp_frac_bits, lo=2, hi=12)
        _check_int("exp_bits", self.exp_bits, lo=8, hi=24)
        _check_int("recip_bits", self.recip_bits, lo=8, hi=24)
        _check_int("recip_seed_bits", self.recip_seed_bits, lo=1, hi=8)
        _check_int("recip_steps", self.recip_steps, lo=0, hi=4)
        _check_int("prob_bits", self.prob_bits, lo=4, hi=16)
        _check_int("softmax_lanes", self.softmax_lanes, lo=1, hi=16)
        _check_int("mult_bits", self.mult_bits, lo=8, hi=24)
        _check_int("ln_frac_bits", self.ln_frac_bits, lo=4, hi=self.recip_bits)
        _check_int("residual_bits", self.residual_bits, lo=8, hi=24)
        _check_choice("activation", self.activation, ACTIVATIONS)
        _check_choice("gelu_method", self.gelu_method, GELU_METHODS)
        _check_int("gelu_in_bits", self.gelu_in_bits, lo=4, hi=16)
        prob_product = self.exp_bits + self.recip_bits + 1 + self.prob_bits
        if prob_product > WIDE_BITS:
            raise ConfigError(
                "prob_bits",
                f"{self.prob_bits} makes softmax's normalising product {prob_product} bits wide "
                f"(exp_bits + recip_bits + 1 + prob_bits): must be <= "
                f"{self.prob_bits - (prob_product - WIDE_BITS)} with these widths",
            )
        if self.gelu_method == "lut" and self.gelu_in_bits > 10:
            raise ConfigError(
                "gelu_in_bits",
                f"{self.gelu_in_bits} would need a {2 ** self.gelu_in_bits}-entry GELU table: "
                "must be <= 10 with gelu_method = 'lut' (or use gelu_method = 'poly')",
            )


DEVICE_PRESETS = ("sram", "reram", "pcm", "fefet", "mram")


@dataclass(frozen=True)
class DeviceConfig:
    """Memory device of the analog tile. ``preset`` fills every value from
    :data:`KNOWN_DEVICES` (the survey's Table II plus the noise model's parameters; sources in
    ``docs/devices.md``); any value may then be overridden.

    Parameters
    ----------
    preset : str
        sram, reram, pcm, fefet or mram.
    max_bits_per_cell : int
        Bits one cell holds reliably (1 for binary devices).
    g_max_us : float
        Conductance of the highest level, microsiemens.
    on_off : float
        G_max / G_min (``inf``: an ideal off state).
    cell_area_f2, write_energy_j, write_latency_s, endurance : float
        Table II figures.
    prog_sigma : float
        Gaussian programming noise, sigma as a fraction of g_max.
    read_sigma : float
        Per-read relative fluctuation of each active cell's conductance.
    drift_nu_mean, drift_nu_std : float
        Drift exponent of G(t) = G(t0) (t / t0)^-nu.
    drift_t0_s : float
        t0 of the drift law, seconds.
    write_verify_iterations : int
        Program-and-verify iterations a row write takes (each a write pulse of
        ``write_latency_s`` and a verify read); the accelerator's programming time.
    pcm_model : bool
        Use the PCM statistical model (programming noise polynomial, conductance-dependent
        drift exponent, 1/f read noise) instead of the Gaussian terms above.
    """

    preset: str = "pcm"
    max_bits_per_cell: int = 4
    g_max_us: float = 25.0
    on_off: float = 100.0
    cell_area_f2: float = 16.0
    write_energy_j: float = 6e-9
    write_latency_s: float = 150e-9
    endurance: float = 1e7
    prog_sigma: float = 0.0
    read_sigma: float = 0.0
    drift_nu_mean: float = 0.0
    drift_nu_std: float = 0.0
    drift_t0_s: float = 20.0
    pcm_model: bool = True
    write_verify_iterations: int = 10

    def __post_init__(self):
        _check_choice("preset", self.preset, DEVICE_PRESETS)
        _check_int("max_bits_per_cell", self.max_bits_per_cell, lo=1, hi=8)
        _check_float("g_max_us", self.g_max_us, lo=0.0, lo_open=True)
        _check_float("on_off", self.on_off, lo=1.0, lo_open=True, allow_inf=True)
        for key in ("cell_area_f2", "write_energy_j", "write_latency_s", "endurance"):
            _check_float(key, getattr(self, key), lo=0.0, lo_open=True)
        for key in ("prog_sigma", "read_sigma"):
            _check_float(key, getattr(self, key), lo=0.0, hi=1.0)
        _check_float("drift_nu_mean", self.drift_nu_mean, lo=0.0, hi=1.0)
        _check_float("drift_nu_std", self.drift_nu_std, lo=0.0, hi=1.0)
        _check_float("drift_t0_s", self.drift_t0_s, lo=0.0, lo_open=True)
        _check_bool("pcm_model", self.pcm_model)
        _check_int("write_verify_iterations", self.write_verify_iterations, lo=1, hi=1000)

    @property
    def g_min_us(self) -> float:
        return self.g_max_us / self.on_off


KNOWN_DEVICES: dict[str, DeviceConfig] = {
    d.preset: d
    for d in (
        # preset, bits, g_max uS, on/off, F^2, write J, write s, endurance,
        # prog sigma, read sigma, nu mean, nu std
        DeviceConfig("sram", 1, 1.0, math.inf, 160.0, 0.1e-9, 1e-9, 1e16, 0.0, 0.0, 0.0, 0.0,
                     pcm_model=False, write_verify_iterations=1),
        DeviceConfig("reram", 4, 100.0, 10.0, 16.0, 2e-9, 100e-9, 1e5, 0.03, 0.01, 0.005,
                     0.002, pcm_model=False, write_verify_iterations=10),
        DeviceConfig("pcm", 4, 25.0, 100.0, 16.0, 6e-9, 150e-9, 1e7, 0.0, 0.0, 0.0, 0.0,
                     pcm_model=True, write_verify_iterations=10),
        DeviceConfig("fefet", 4, 10.0, 1000.0, 16.0, 1e-13, 175e-9, 1e10, 0.02, 0.005, 0.002,
                     0.001, pcm_model=False, write_verify_iterations=5),
        DeviceConfig("mram", 1, 200.0, 2.5, 55.0, 1e-9, 1e-9, 1e15, 0.01, 0.005, 0.0, 0.0,
                     pcm_model=False, write_verify_iterations=1),
    )
}
assert tuple(KNOWN_DEVICES) == DEVICE_PRESETS

@dataclass(frozen=True)
class CostConfig:
    """Technology and circuit parameters of the analytic cost model (``golden/cost.py``;
    every default's source is in ``docs/ppa.md``). They describe the chip an estimate is for,
    not the RTL: :meth:`Config.digest` leaves them out, so changing them rebuilds nothing.

    Parameters
    ----------
    node_nm : float
        CMOS technology node, nm (7 to 130): sets F for the cell area and scales the digital,
        ADC and driver figures (Stillmaker and Baas's tables).
    vdd : float
        Digital supply, volts.
    v_read : float
        Read voltage across a cell at the full input level, volts.
    v_wordline : float
        Swing of a word line (the access transistors' gates) when a row is driven, volts.
    t_read_ns : float
        Time a read's current flows (the bit lines' integration), ns.
    g_mean_fraction : float
        Mean cell conductance as a fraction of the way from G_min to G_max (0.5: levels
        spread evenly).
    adc_enob_loss : float
        Bits an ADC's effective resolution falls short of its resolution (for the survey's
        bound on its energy).
    digital_activity : float
        Fraction of a digital unit's gates that switch in a busy cycle, relative to an
        adder's operation on fresh operands.
    adc_static_w : float
        Power an ADC draws for as long as a conversion lasts (its bias currents, an
        oscillator's run), watts: the part of an integrating converter's energy that is
        power x time rather than an event. 0 (the default): converters costed per
        conversion only.
    """

    node_nm: float = 22.0
    vdd: float = 0.8
    v_read: float = 0.2
    v_wordline: float = 0.8
    t_read_ns: float = 10.0
    g_mean_fraction: float = 0.5
    adc_enob_loss: float = 1.0
    digital_activity: float = 0.5
    adc_static_w: float = 0.0

    def __post_init__(self):
        _check_float("node_nm", self.node_nm, lo=7.0, hi=130.0)
        _check_float("vdd", self.vdd, lo=0.3, hi=2.0)
        _check_float("v_read", self.v_read, lo=0.0, hi=2.0, lo_open=True)
        _check_float("t_read_ns", self.t_read_ns, lo=0.0, hi=1e6, lo_open=True)
        _check_float("g_mean_fraction", self.g_mean_fraction, lo=0.0, hi=1.0)
        _check_float("v_wordline", self.v_wordline, lo=0.0, hi=5.0)
        _check_float("adc_enob_loss", self.adc_enob_loss, lo=0.0, hi=4.0)
        _check_float("digital_activity", self.digital_activity, lo=0.0, hi=1.0)
        _check_float("adc_static_w", self.adc_static_w, lo=0.0, hi=1.0)


IR_DROP_MODES = ("off", "exact", "approx")


@dataclass(frozen=True)
class AnalogConfig:
    """Non-idealities of the crossbar, each switchable; all random draws follow the config's
    ``seed``.

    Parameters
    ----------
    prog_noise : bool
        Programming noise (PCM statistical model or Gaussian, per the device).
    read_noise : bool
        Read noise: the PCM 1/f noise accumulated up to ``t_inference`` and, for every device,
        a fresh per-read fluctuation of ``device.read_sigma``.
    drift : bool
        Conductance drift up to ``t_inference``.
    t_inference : float
        Seconds between programming and inference (> 0).
    drift_compensation : bool
        Global drift compensation: one calibration read with a known input gives one digital
        scale factor per tile.
    ir_drop : str
        ``off``, ``exact`` (nodal solve of each tile's wire network: the reference, seconds
        per 256 x 256 tile) or ``approx`` (every word and bit line solved on its own,
        milliseconds per tile).
    r_wire_ohm : float
        Wire resistance between adjacent cells, ohms.
    stuck_on_rate, stuck_off_rate : float
        Fractions of cells stuck at G_max / G_min, in [0, 1].
    """

    prog_noise: bool = False
    read_noise: bool = False
    drift: bool = False
    t_inference: float = 1.0
    drift_compensation: bool = False
    ir_drop: str = "off"
    r_wire_ohm: float = 1.0
    stuck_on_rate: float = 0.0
    stuck_off_rate: float = 0.0

    def __post_init__(self):
        for key in ("prog_noise", "read_noise", "drift", "drift_compensation"):
            _check_bool(key, getattr(self, key))
        _check_float("t_inference", self.t_inference, lo=0.0, lo_open=True)
        _check_choice("ir_drop", self.ir_drop, IR_DROP_MODES)
        _check_float("r_wire_ohm", self.r_wire_ohm, lo=0.0)
        _check_float("stuck_on_rate", self.stuck_on_rate, lo=0.0, hi=1.0)
        _check_float("stuck_off_rate", self.stuck_off_rate, lo=0.0, hi=1.0)
        if self.stuck_on_rate + self.stuck_off_rate > 1.0:
            raise ConfigError(
                "stuck_off_rate",
                f"{self.stuck_off_rate!r} plus stuck_on_rate ({self.stuck_on_rate!r}) exceeds 1: "
                "the two fault rates must sum to at most 1",
            )

    @property
    def ideal(self) -> bool:
        return not (self.prog_noise or self.read_noise or self.drift or self.ir_drop != "off"
                    or self.stuck_on_rate or self.stuck_off_rate)


_SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "numerics": NumericsConfig,
    "tile": TileConfig,
    "adc": AdcConfig,
    "dcim": DcimConfig,
    "device": DeviceConfig,
    "analog": AnalogConfig,
    "nonlinear": NonlinearConfig,
    "accelerator": AcceleratorConfig,
    "cost": CostConfig,
}

# Sections whose named entry starts from a known set of values: section -> (key, known).
_NAMED_SECTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "model": ("name", KNOWN_MODELS),
    "device": ("preset", KNOWN_DEVICES),
}


@dataclass(frozen=True)
class Config:
    """The whole configuration, with the values derived from several sections."""

    name: str = "custom"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    numerics: NumericsConfig = field(default_factory=NumericsConfig)
    tile: TileConfig = field(default_factory=TileConfig)
    adc: AdcConfig = field(default_factory=AdcConfig)
    dcim: DcimConfig = field(default_factory=DcimConfig)
    device: DeviceConfig = field(default_factory=DeviceConfig)
    analog: AnalogConfig = field(default_factory=AnalogConfig)
    nonlinear: NonlinearConfig = field(default_factory=NonlinearConfig)
    accelerator: AcceleratorConfig = field(default_factory=AcceleratorConfig)
    cost: CostConfig = field(default_factory=CostConfig)

    def __post_init__(self):
        _check_str("name", self.name)
        _check_int("seed", self.seed, lo=0, hi=2**63 - 1)
        t, n, a = self.tile, self.numerics, self.adc
        if n.weight_bits % t.bits_per_cell:
            raise ConfigError(
                "tile.bits_per_cell",
                f"{t.bits_per_cell} does not divide numerics.weight_bits ({n.weight_bits}): "
                "must be a divisor of the weight width",
            )
        if t.cols % self.cols_per_channel:
            raise ConfigError(
                "tile.cols",
                f"{t.cols} is not a multiple of the {self.cols_per_channel} columns one output "
                f"channel needs (2 polarities x {self.weight_slices} slices): "
                f"must be a multiple of {self.cols_per_channel}",
            )
        if t.cols % a.cols_per_adc:
            raise ConfigError(
                "adc.cols_per_adc",
                f"{a.cols_per_adc} does not divide tile.cols ({t.cols}): "
                "must be a divisor of tile.cols",
            )
        if t.bits_per_cell > self.device.max_bits_per_cell:
            raise ConfigError(
                "tile.bits_per_cell",
                f"{t.bits_per_cell} exceeds what a {self.device.preset} cell holds "
                f"(device.max_bits_per_cell = {self.device.max_bits_per_cell}): "
                f"must be <= {self.device.max_bits_per_cell}",
            )
        if a.bits < t.bits_per_cell:
            raise ConfigError(
                "adc.bits",
                f"{a.bits} cannot resolve the {2 ** t.bits_per_cell} levels of one "
                f"{t.bits_per_cell}-bit cell: must be >= tile.bits_per_cell ({t.bits_per_cell})",
            )
        if self.term_bits + 1 > n.acc_bits:
            raise ConfigError(
                "numerics.acc_bits",
                f"{n.acc_bits} cannot hold one shift-add term ({self.term_bits + 1} bits: "
                f"{a.bits}-bit ADC code shifted by up to {self.max_shift}): "
                f"must be >= {self.term_bits + 1}",
            )
        nl = self.nonlinear
        d_bits = self.model.d_model.bit_length()
        wide = 2 * nl.residual_bits + 2 * d_bits
        if wide > WIDE_BITS:
            # the exact sum of squares of d_model residuals: 2 * (residual_bits + d_bits) bits
            max_residual = WIDE_BITS // 2 - d_bits
            max_d_model = 2 ** (WIDE_BITS // 2 - nl.residual_bits) - 1
            why = (f"LayerNorm's exact variance sum over d_model = {self.model.d_model} with "
                   f"nonlinear.residual_bits = {nl.residual_bits} is {wide} bits wide, more "
                   f"than the {WIDE_BITS} the golden model's int64 arithmetic holds")
            if max_residual >= n.act_bits:
                raise ConfigError("nonlinear.residual_bits",
                                  f"{nl.residual_bits}: {why}: must be <= {max_residual} for "
                                  f"this d_model (or d_model <= {max_d_model})")
            raise ConfigError("model.d_model",
                              f"{self.model.d_model} is too large: {why}: must be <= "
                              f"{max_d_model} with these residual_bits")
        if nl.residual_bits < n.act_bits:
            raise ConfigError(
                "nonlinear.residual_bits",
                f"{nl.residual_bits} is narrower than the activations: must be >= "
                f"numerics.act_bits ({n.act_bits})",
            )

    # -- derived values -----------------------------------------------------------------------

    @property
    def weight_slices(self) -> int:
        """Cells per weight magnitude slice chain: ``weight_bits / bits_per_cell``."""
        return self.numerics.weight_bits // self.tile.bits_per_cell

    @property
    def input_digits(self) -> int:
        """DAC steps (reads) per input: the bits below the sign in unsigned digits of
        ``dac_bits``, then the sign bit; ``act_bits`` for a 1-bit DAC. See :func:`input_digits`."""
        return input_digits(self.numerics.act_bits, self.tile.dac_bits)

    @property
    def cols_per_channel(self) -> int:
        """Physical columns per output channel: two polarities of every slice."""
        return 2 * self.weight_slices

    @property
    def channels_per_tile(self) -> int:
        return self.tile.cols // self.cols_per_channel

    @property
    def adcs_per_tile(self) -> int:
        return self.tile.cols // self.adc.cols_per_adc

    @property
    def max_shift(self) -> int:
        """Largest shift-add weight exponent: top input digit and top weight slice."""
        t = self.tile
        return max_shift(self.numerics.act_bits, self.weight_slices, t.bits_per_cell)

    @property
    def term_bits(self) -> int:
        """Magnitude bits of one shift-add term: an ADC code shifted by at most max_shift."""
        return self.adc.bits + self.max_shift

    def row_tiles(self, k: int) -> int:
        """Row tiles a matrix of ``k`` input rows occupies."""
        return math.ceil(k / self.tile.rows)

    def with_sections(self, **sections: dict[str, Any]) -> Config:
        """This config with fields of some sections replaced and validated again:
        ``cfg.with_sections(analog={"drift": True})``."""
        return dataclasses.replace(self, **{
            k: dataclasses.replace(getattr(self, k), **v) for k, v in sections.items()})

    # -- identity ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of every value (the name and the cost model's
        parameters excluded: they change no hardware)."""
        d = self.to_dict()
        d.pop("name")
        d.pop("cost")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# loading


def _preset_dir() -> Path:
    # A source checkout (the editable install the README uses) has configs/ next to cimforge/;
    # a wheel carries the same files as the package cimforge.presets.
    here = Path(__file__).resolve().parent
    checkout = here.parent / "configs"
    return checkout if checkout.is_dir() else here / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in _preset_dir().glob("*.toml"))


def _read_toml(path: Path, source: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(None, "file not found", source) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(None, f"invalid TOML: {e}", source) from None
    except UnicodeDecodeError as e:
        raise ConfigError(None, f"not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset "
                          f"{e.start}): a TOML file must be UTF-8", source) from None
    except IsADirectoryError:
        raise ConfigError(None, "is a folder: must be a preset name or a .toml file",
                          source) from None
    except OSError as e:
        raise ConfigError(None, f"cannot read: {e.strerror}", source) from None


def _resolve(spec: str, chain: tuple[str, ...] = ()) -> tuple[dict[str, Any], str, str]:
    """Raw merged dict for a preset name or TOML path, following ``base`` keys."""
    if not spec.strip():
        raise ConfigError(None, f"an empty name is neither a preset nor a TOML file: must be "
                          f"one of {', '.join(preset_names())} or a path to a .toml file")
    path = Path(spec)
    if spec in preset_names():
        path = _preset_dir() / f"{spec}.toml"
        source, name = f"{spec} (preset {path})", spec
    elif path.suffix == ".toml" or path.exists():
        source, name = str(path), path.stem
    else:
        raise ConfigError(
            None,
            f"{spec!r} is neither a preset nor a TOML file: "
            f"must be one of {', '.join(preset_names())} or a path to a .toml file",
        )
    key = str(path.resolve())
    if key in chain:
        raise ConfigError("base", f"{spec!r} is included twice: base presets form a cycle", source)
    raw = _read_toml(path, source)
    if not raw:
        # the built-in defaults are MiniLM-sized, not tiny: an empty file is a mistake
        raise ConfigError(None, "is empty: a config names a base (base = \"tiny\") and/or "
                          "gives sections ([model], [tile], ...)", source)
    base = raw.pop("base", None)
    if base is None:
        return raw, source, name
    if not isinstance(base, str):
        raise ConfigError("base", f"{base!r} must be a preset name or a TOML path", source)
    if not Path(base).is_absolute() and base not in preset_names():
        # relative paths in 'base' are relative to the file that names them
        candidate = path.parent / base
        base = str(candidate) if candidate.exists() else base
    try:
        merged, _, _ = _resolve(base, chain + (key,))
    except ConfigError as e:
        if e.key is not None or "(the base of " in e.detail:
            raise
        # the base file itself is missing or unreadable: say which file names it
        raise ConfigError(None, f"{e.detail} (the base of {source})", e.source) from None
    for section, values in raw.items():
        if (section in _NAMED_SECTIONS and isinstance(values, dict)
                and _NAMED_SECTIONS[section][0] in values):
            # naming a model or device starts it afresh: the base's keys do not carry over
            merged[section] = values
        elif isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **values}
        else:
            merged[section] = values
    return merged, source, name


def _build_section(cls: type, section: str, values: Any, source: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(section, f"{values!r} must be a table ([{section}])", source)
    allowed = [f.name for f in dataclasses.fields(cls)]
    values = dict(values)
    base_model = None
    if section in _NAMED_SECTIONS:
        key, known = _NAMED_SECTIONS[section]
        base_model = known.get(values.get(key))
    for key in values:
        if key not in allowed:
            raise ConfigError(
                f"{section}.{key}",
                f"unknown key: [{section}] allows {', '.join(allowed)}",
                source,
            )
    try:
        if base_model is not None:
            return dataclasses.replace(base_model, **values)
        return cls(**values)
    except ConfigError as e:
        raise e.within(section, source) from None


def config_from_dict(raw: dict[str, Any], source: str = "<dict>", name: str = "custom") -> Config:
    """Build and validate a :class:`Config` from a TOML-shaped dict."""
    top_keys = {"seed", "name", *_SECTIONS}
    for key in raw:
        if key not in top_keys:
            raise ConfigError(
                key, f"unknown key: allowed are base, {', '.join(sorted(top_keys))}", source
            )
    kwargs: dict[str, Any] = {"name": raw.get("name", name)}
    if "seed" in raw:
        kwargs["seed"] = raw["seed"]
    for section, cls in _SECTIONS.items():
        if section in raw:
            kwargs[section] = _build_section(cls, section, raw[section], source)
    try:
        return Config(**kwargs)
    except ConfigError as e:
        raise e.within(None, source) from None


def load_config(spec: str | Path | None = None) -> Config:
    """Load a preset by name (``"tiny"``) or a TOML file by path; ``None`` gives ``tiny``."""
    spec = "tiny" if spec is None else str(spec)
    raw, source, name = _resolve(spec)
    return config_from_dict(raw, source, name)
