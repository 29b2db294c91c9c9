"""The cost model against published chips (``cimforge estimate --validate``; docs/ppa.md,
"Validation").

Each case is one chip's matrix-vector multiplication (MVM) written with the chip's own
parameters -- node, supply, array, input pulses, ADC resolution and rate, cell conductance,
read voltage and pulse -- and costed with the same component models the estimate uses
(:class:`cimforge.golden.cost.Tech`). Nothing is fitted to the published figure: a parameter
the paper does not give is the cost model's default, or a simulator's stated model of the
chip, and docs/ppa.md says which. One parameter comes from a sister measurement: the power of
IBM's integrating ADCs over their window, from HERMES-Core (a single core of the same design,
its own chip and paper), so the IBM rows check that figure's transfer to the 64-core chip
and the 4-phase mode's scaling with time, not the level independently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cimforge.config import CostConfig
from cimforge.golden.cost import Tech

__all__ = ["MvmCase", "CASES", "validate"]

# NAND2 equivalents of a 32-bit adder (the Yosys flow of golden/cost.py): the digital work of
# one conversion's shift-and-add
ADD32_GATES = 374.0


@dataclass(frozen=True)
class MvmCase:
    """One MVM of one array (or a chip's core): ``pulses`` reads, each driving ``rows`` rows
    of ``cols`` cells (``input_factor``: the mean of the squared input level, or of the
    pulse width for a pulse-width-modulated input); ``conversions`` ADC conversions of
    ``adc_bits`` at ``adc_rate_hz``; ``digital_gates`` NAND2 equivalents of digital work per
    conversion; ``ops`` operations (a MAC is two)."""

    chip: str
    figure: str
    published: float
    unit: str  # "TOPS/W", "pJ" (an MVM) or "pJ/MAC"
    cost: CostConfig
    rows: int
    cols: int
    pulses: int
    input_factor: float
    g_min_us: float
    g_max_us: float
    conversions: int
    adc_bits: int
    adc_rate_hz: float
    digital_gates: float
    ops: int

    def components(self) -> dict[str, float]:
        tech = Tech(self.cost)
        c = self.cost
        g = (self.g_min_us + c.g_mean_fraction * (self.g_max_us - self.g_min_us)) * 1e-6
        cells = self.pulses * self.rows * self.cols
        return {
            "array": cells * self.input_factor * c.v_read ** 2 * g * c.t_read_ns * 1e-9,
            "row drive": self.pulses * self.rows * tech.row_drive_j(self.cols, 1),
            "ADC": self.conversions * tech.adc_j(self.adc_bits, self.adc_rate_hz),
            "digital": self.conversions * tech.digital_j(self.digital_gates, 1),
        }

    def model(self) -> float:
        """The model's figure in the case's ``unit``: TOPS/W, pJ an MVM, or pJ a MAC."""
        e = sum(self.components().values())
        if self.unit == "TOPS/W":
            return self.ops / e / 1e12
        return e / (self.ops / 2) * 1e12 if self.unit == "pJ/MAC" else e * 1e12


# HERMES-Core (Khaddam-Aljameh et al., JSSC 2022, Sec. V-C): the same core design as one of
# the 64-core chip's, measured alone -- 1.008 TOPS at 10.5 TOPS/W, 0.8 V, 1 GHz: 96 mW for
# one 256 x 256 MVM every 130 ns
HERMES_CORE_W = 1.008 / 10.5
HERMES_VDD = 0.8
HERMES_MVM_S = 130e-9


def _ibm_core(vdd: float, phases: int, adc_static_w: float) -> MvmCase:
    # a core of Le Gallo et al.'s chip (Nature Electronics 2023; Table I, Methods): 14 nm;
    # 256 x 256 unit cells of four PCM devices, 256 CCO ADCs, 8-bit pulse-width-modulated
    # inputs (1 ns an LSB, 128 ns of integration) and 8-bit outputs; an MVM in 130 ns of
    # integration a phase (4 phases: the four sign combinations one after another, each
    # device conducting in one). G_max 10.35 uS a device: IBM's aihwkit model of this chip;
    # the MVM read voltage is not given (0.1-0.4 V): the default 0.2 V.
    cost = CostConfig(node_nm=14.0, vdd=vdd, t_read_ns=128.0, adc_static_w=adc_static_w)
    return MvmCase("IBM 64-core PCM (14 nm)", f"TOPS/W, 8-bit MVM, {phases}-phase", 0.0,
                   "TOPS/W", cost, rows=256, cols=256 * 4, pulses=1, input_factor=0.5,
                   g_min_us=0.1035, g_max_us=10.35, conversions=256, adc_bits=8,
                   adc_rate_hz=1 / (HERMES_MVM_S * phases), digital_gates=0.0,
                   ops=2 * 256 * 256)


def hermes_adc_static_w(vdd: float) -> float:
    """An IBM core's ADC power over its integration window, from HERMES-Core's measured power
    less the model's own energy of the same MVM (its events) and shared by its 256 ADCs (with
    their read-voltage regulators), scaled to ``vdd`` as a bias current's power (``V I``)."""
    events = sum(_ibm_core(HERMES_VDD, 1, 0.0).components().values())
    per_adc = (HERMES_CORE_W * HERMES_MVM_S - events) / HERMES_MVM_S / 256
    assert per_adc > 0, "HERMES-Core's power is below the model's event energy"
    return per_adc * vdd / HERMES_VDD


def _ibm(phases: int, published: float) -> MvmCase:
    # the 64-core chip at 0.85 V: its TOPS/W counts the arrays, ADCs and PWM drivers only
    # (measured supply currents, static and dynamic); the ADCs' power over the integration
    # from HERMES-Core (a separate chip and measurement), not from this chip's figures
    vdd = 0.85
    return dataclasses.replace(_ibm_core(vdd, phases, hermes_adc_static_w(vdd)),
                               published=published)


def _neurram(in_bits: int, published: float) -> MvmCase:
    # Wan et al., Nature 2022: 130 nm; a core is 256 x 256 RRAM cells, a signed weight a
    # differential pair on adjacent rows (256 x 128 MACs); output bits = input bits + 2;
    # signed inputs as in_bits - 1 magnitude pulses (1 for 1 bit); V_read 0.5 V; word lines
    # switched 0.9 <-> 2.2 V. CiMLoop's model of the chip: 1 to 4 uS cells, 10 ns read
    # pulses, 0.3 us an ADC step.
    out_bits = in_bits + 2
    cost = CostConfig(node_nm=130.0, vdd=1.8, v_read=0.5, v_wordline=1.3, t_read_ns=10.0)
    return MvmCase("NeuRRAM (130 nm)", f"TOPS/W, {in_bits}-bit in, {out_bits}-bit out",
                   published, "TOPS/W", cost, rows=256, cols=256, pulses=max(1, in_bits - 1),
                   input_factor=0.5, g_min_us=1.0, g_max_us=4.0, conversions=256,
                   adc_bits=out_bits, adc_rate_hz=1 / (out_bits * 0.3e-6),
                   digital_gates=0.0, ops=2 * 256 * 128)


def _isaac_adc() -> MvmCase:
    # Shafiee et al., ISCA 2016, Table I: 8 ADCs of 8 bits at 1.28 GS/s in 16 mW, 32 nm
    # (the ADC of Kull et al., ISSCC 2013, at 1 V): 1.67 pJ a conversion
    cost = CostConfig(node_nm=32.0, vdd=1.0)
    return MvmCase("ISAAC (32 nm)", "pJ per 8-bit conversion at 1.28 GS/s", 16e-3 / 8 / 1.2e9
                   * 1e12, "pJ", cost, rows=0, cols=0, pulses=0, input_factor=0.0,
                   g_min_us=0.0, g_max_us=0.0, conversions=1, adc_bits=8, adc_rate_hz=1.28e9,
                   digital_gates=0.0, ops=0)


def _isaac_ima() -> MvmCase:
    # ISAAC's in-situ multiply-accumulate unit (IMA), Table I: ADCs 16 mW, DACs 4 mW,
    # sample-and-hold 10 uW, crossbars 2.4 mW, shift-and-add 0.8 mW = 23.21 mW for eight
    # 128 x 128 crossbars of 2-bit cells, 16-bit weights (8 cells) and 16-bit inputs one bit
    # a 100 ns read: 8 x 128 x 16 MACs every 1.6 us. One crossbar's MVM: 16 reads of 128 rows,
    # 128 conversions each. Cells: the cost model's ReRAM preset (the paper takes its
    # crossbar's power from another design and gives no conductance).
    cost = CostConfig(node_nm=32.0, vdd=1.0)
    macs = 128 * 16
    published = 23.21e-3 * 1.6e-6 / 8 / macs * 1e12  # pJ per 16-bit MAC
    return MvmCase("ISAAC (32 nm)", "pJ per 16-bit MAC, IMA (ADC, DAC, array, S+A)",
                   published, "pJ/MAC", cost, rows=128, cols=128, pulses=16, input_factor=0.5,
                   g_min_us=10.0, g_max_us=100.0, conversions=16 * 128, adc_bits=8,
                   adc_rate_hz=1.28e9, digital_gates=ADD32_GATES, ops=2 * macs)


CASES: tuple[MvmCase, ...] = (
    _ibm(1, 9.76), _ibm(4, 2.48),
    _isaac_adc(), _isaac_ima(),
    # NeuRRAM: the TOPS/W of Wan et al.'s Extended Data Fig. 12e as CiMLoop digitised it
    _neurram(1, 43.08), _neurram(4, 15.95), _neurram(8, 6.44),
)


def validate(cases: tuple[MvmCase, ...] = CASES) -> list[dict]:
    """Each case's published figure, the model's, and the model's energy by component."""
    rows = []
    for case in cases:
        model = case.model()
        rows.append({"chip": case.chip, "figure": case.figure, "unit": case.unit,
                     "published": case.published, "model": model,
                     "ratio": model / case.published,
                     "components_j": case.components()})
    return rows

