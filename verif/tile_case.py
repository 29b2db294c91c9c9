"""What a bench of the analog tile unit needs from golden, for one weight matrix and one
input batch: the register writes, the read sequence (word-line drives to expect, the analog
adapter's values to load), the expected results and the cycle model.

Two :class:`cimforge.golden.cim.CimMatrix` objects are programmed from the same config, seed and
key: one gives the per-read values the analog adapter loads into the crossbar model (its
``convert``), the other the expected results (its ``matmul``) -- the same random draws, so a
noisy run is still bit-exact, and the RTL never sees the golden results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cimforge.config import Config
from cimforge.golden.analog_tile import (
    CSR_DATA_BITS,
    REGISTERS,
    AnalogTileSpec,
    AnalogTileTiming,
)
from cimforge.golden.cim import SCALE_FRAC_BITS, CimMatrix
from cimforge.golden.shift_add import input_digits_of

__all__ = ["TileCase", "random_matrix", "read_errors", "throughput_case", "EFFECTS",
           "effects_for"]

DATA_MASK = (1 << CSR_DATA_BITS) - 1  # a signed register value as the write port carries it

# Every analog effect, as the benches switch them on (the hardware does not change).
EFFECTS = {"prog_noise": True, "read_noise": True, "drift": True, "t_inference": 86400.0,
           "drift_compensation": True, "stuck_on_rate": 0.01, "stuck_off_rate": 0.01,
           "ir_drop": "exact", "r_wire_ohm": 1.0}
EXACT_IR_DROP_CELLS = 256 * 256  # beyond, the exact nodal solve takes seconds per read


def effects_for(cfg) -> dict:
    """:data:`EFFECTS` for ``cfg``'s crossbars: with the approximate IR drop (each line solved
    on its own, docs/analog-model.md) on crossbars larger than 256 x 256, where the exact
    solve would keep a bench in golden for hours (a MiniLM layer's). Golden and the analog
    adapters use the same model, so the benches stay bit-exact."""
    if cfg.tile.rows * cfg.tile.cols > EXACT_IR_DROP_CELLS:
        return {**EFFECTS, "ir_drop": "approx"}
    return dict(EFFECTS)


def random_matrix(spec: AnalogTileSpec, rng: np.random.Generator, *, scale: float = 40.0
                  ) -> np.ndarray:
    """Signed weights spanning every tile of the unit: K in the last row tile, N in the last
    column tile, signed extremes in the first channel."""
    k = spec.inputs - int(rng.integers(0, spec.rows // 2 + 1))
    n = spec.outputs - int(rng.integers(0, spec.channels_per_tile))
    hi = (1 << (spec.weight_bits - 1)) - 1
    w = np.clip(np.rint(rng.standard_normal((k, n)) * scale), -hi - 1, hi).astype(np.int64)
    w[::3, 0] = -hi - 1
    w[1::3, 0] = hi
    return w


@dataclass
class TileCase:
    """Golden side of one run: ``w`` (K, N) on the unit's tiles, inputs ``x`` (n, K).

    Attributes
    ----------
    registers : list of (address, data)
        Register writes that set the unit up as golden programmed it.
    gains, ranges, trims : list of int
        The ADC gain trim of every column tile, range exponent of every slice and offset trim
        of every SAR ADC (none for flash) that the shell must see at every read.
    drives : int64 (reads, inputs)
        Word-line drive of every input row, read by read in issue order.
    values : int64 (reads, col_tiles * cols)
        What each column converts to, read by read (SAR: the code; flash: the thermometer).
    expected : int64 (n, outputs)
        Every channel's result.
    """

    cfg: Config
    w: np.ndarray
    x: np.ndarray
    key: int = 0
    levels: np.ndarray | None = None  # the cells' programmed levels, if not w's mapping
    first: int = 0  # the position of x's first vector in its sequence (its read noise)
    matrices: dict | None = field(default=None, repr=False)
    """A store of the crossbars built for earlier cases (a decoder's runs of one sequence
    share them): building one solves its IR drop, seconds a crossbar with the exact solve."""

    def _matrix(self, levels: np.ndarray | None) -> CimMatrix:
        """The unit's matrix as golden programs it (``levels`` None) or holding ``levels``."""
        if self.matrices is None:
            return CimMatrix(self.w, self.cfg, key=self.key, levels=levels)
        index = (self.key, self.cfg, self.w.shape, self.w.tobytes(),
                 None if levels is None else levels.tobytes())
        if index not in self.matrices:
            self.matrices[index] = CimMatrix(self.w, self.cfg, key=self.key, levels=levels)
        return self.matrices[index]

    def __post_init__(self):
        spec = self.spec = AnalogTileSpec.from_config(self.cfg)
        k, n = self.w.shape
        if not (spec.inputs - spec.rows < k <= spec.inputs
                and spec.outputs - spec.channels_per_tile < n <= spec.outputs):
            raise ValueError(
                f"w must span the unit's {spec.row_tiles} x {spec.col_tiles} tiles: rows in "
                f"({spec.inputs - spec.rows}, {spec.inputs}], columns in "
                f"({spec.outputs - spec.channels_per_tile}, {spec.outputs}], not {self.w.shape}")
        # the crossbar as programmed (its reads), golden's matrix (registers and results)
        reads_side = self._matrix(self.levels)
        results_side = self._matrix(None)
        self.expected = results_side.matmul(self.x, first=self.first, all_channels=True)
        self.registers = self._registers(results_side)
        # what the ADC front ends must see: the gain trims, range exponents and offset trims
        # golden used (no offset trims for flash ADCs)
        self.gains = [int(g) for g in results_side.adc_gain_q]
        self.ranges = [int(e) for e in results_side.slice_exp]
        self.trims = ([int(t) for t in results_side.adc_trim_q] if spec.adc_kind == "sar"
                      else [])
        conv = reads_side.convert(self.x, first=self.first)  # (n, row tile, group, digit, col)
        reads = conv.codes.shape[0] * spec.reads_per_vector
        if spec.adc_kind == "sar":
            self.values = conv.codes.reshape(reads, -1)
        else:
            self.values = self._thermometers(reads_side, conv).reshape(reads, -1)
        self.drives = self._drives()

    @property
    def timing(self) -> AnalogTileTiming:
        return AnalogTileTiming(self.spec)

    @property
    def inputs(self) -> np.ndarray:
        """Input vectors as the unit takes them: zero beyond the matrix's rows."""
        x = np.zeros((len(self.x), self.spec.inputs), dtype=np.int64)
        x[:, : self.x.shape[1]] = self.x
        return x

    def _registers(self, cim: CimMatrix) -> list[tuple[int, int]]:
        one = 1 << SCALE_FRAC_BITS
        drift = cim.drift_comp_q if cim.drift_comp_q is not None else [one] * cim.col_tiles
        writes = []
        for c in range(self.spec.col_tiles):
            writes.append((REGISTERS["gain"] + c, int(cim.adc_gain_q[c])))
            writes.append((REGISTERS["drift"] + c, int(drift[c])))
        for k, e in enumerate(cim.slice_exp):
            writes.append((REGISTERS["range"] + k, int(e) & DATA_MASK))
        if self.spec.adc_kind == "sar":
            for a, trim in enumerate(cim.adc_trim_q):
                if trim:
                    writes.append((REGISTERS["offset"] + a, int(trim) & DATA_MASK))
        return writes

    def _thermometers(self, cim: CimMatrix, conv) -> np.ndarray:
        """Flash ADCs: each column's comparator outputs as a word (bit i: comparator i).
        Without offsets the thresholds are monotonic and the word is the code's thermometer;
        with offsets each comparator decides on its own, as golden's count of thresholds at
        or below the read does."""
        top = self.spec.code_max
        codes = conv.codes
        if not self.cfg.adc.offset_sigma_lsb:
            return (np.int64(1) << codes) - 1
        cols = codes.shape[-1]
        adc = cim._adc_of_column(cols)
        thresholds = np.arange(1, top + 1) - 0.5 + cim.effective_offsets  # (adcs, top)
        above = conv.analog.astype(np.float64)[..., None] >= thresholds[adc]
        return (above.astype(np.int64) << np.arange(top)).sum(axis=-1)

    def _drives(self) -> np.ndarray:
        """(reads, inputs): digit d of the rows of the read's group, 0 elsewhere."""
        spec = self.spec
        digits = input_digits_of(self.inputs, spec.act_bits, spec.dac_bits)  # (n, D, inputs)
        n = len(self.x)
        groups = spec.row_tiles * spec.groups
        out = np.zeros((n, groups, spec.digits, spec.inputs), dtype=np.int64)
        for g in range(groups):
            rows = slice(g * spec.rows_per_read, (g + 1) * spec.rows_per_read)
            out[:, g, :, rows] = digits[:, :, rows]
        return out.reshape(-1, spec.inputs)


def read_errors(case: TileCase, read: int, drives: list[int], gains: list[int],
                ranges: list[int], trims: list[int]) -> list[str]:
    """What is wrong with the shell's inputs at read number ``read`` (issue order): the
    word-line drive against golden's, the gain, range and offset registers against golden's
    (``trims`` empty for flash ADCs)."""
    if read >= len(case.drives):
        return [f"read {read} beyond the expected {len(case.drives)}"]
    errors = []
    want = case.drives[read].tolist()
    if drives != want:
        errors.append(f"read {read}: word-line drive {drives}, expected {want}")
    if gains != case.gains:
        errors.append(f"read {read}: ADC gains {gains}, expected {case.gains}")
    if ranges != case.ranges:
        errors.append(f"read {read}: ADC ranges {ranges}, expected {case.ranges}")
    if trims != case.trims:
        errors.append(f"read {read}: ADC offset trims {trims}, expected {case.trims}")
    return errors


def throughput_case(cfg: Config, vectors: int, seed: int) -> TileCase:
    """The speed benchmark's stimulus: every analog effect on, ADC offsets of 0.4 LSB (trimmed
    for SAR ADCs), a random
    matrix over the unit's tiles and ``vectors`` random inputs, all from ``seed`` -- the same
    in every simulator."""
    import dataclasses

    analog = dataclasses.replace(cfg.analog, **effects_for(cfg))
    adc = dataclasses.replace(cfg.adc, offset_sigma_lsb=0.4,
                              offset_calibration=cfg.adc.kind == "sar")
    cfg = dataclasses.replace(cfg, analog=analog, adc=adc)
    rng = np.random.default_rng(seed)
    w = random_matrix(AnalogTileSpec.from_config(cfg), rng)
    lo = -(1 << (cfg.numerics.act_bits - 1))
    x = rng.integers(lo, -lo, size=(vectors, w.shape[0]))
    return TileCase(cfg, w, x, key=seed)
