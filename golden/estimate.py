"""``cimforge estimate``: latency, energy, area, programming cost and wear of a model on an
accelerator config, from the cycle model the RTL is checked against
(:mod:`cimforge.golden.accel_timing`) and the cost model (:mod:`cimforge.golden.cost`).

An *inference* is an encoder's run over ``seq`` tokens, or a decoder's generation of one token
with ``seq`` tokens of context (the token's decode step after ``seq - 1`` cached). Event
counts per inference, each a sum over the mapping's units (``docs/ppa.md`` derives them):

* a tile unit's vector: ``reads_per_vector`` reads; a read drives ``rows_per_read`` rows of
  each of its ``col_tiles`` crossbars and converts every column of them; its digital part is
  busy for ``read_cycles`` a read;
* attention: ``2 x keys x d_head`` MACs a (token, head) in the digital-CIM macros;
* the CMOS units, a value a cycle: requantisers ``8 d + d_ff`` values a token and layer,
  per-token scaling ``3 d + d_ff``, GELU ``d_ff``, softmax two passes over ``heads x keys``,
  LayerNorm two passes over each of its rows;
* the token buffers: every bit a token writes is written once and read once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cimforge.config import KNOWN_DEVICES, KNOWN_MODELS, Config
from cimforge.golden.cost import DIGITAL_GATES, REFERENCE_TILE_COLS, REFERENCE_TILE_LANES, Tech
from cimforge.golden.endurance import buffer_bits

__all__ = ["GPU_BASELINE", "Estimate", "estimate", "model_config"]

# NVIDIA H200, fp16 PyTorch eager, random weights of the right shapes, board energy from NVML's
# energy counter over 3 s windows: the figures issue 14 gives (measured by its author, not
# here). (model, tokens, batch) -> (seconds, joules) per batch; a decoder's per token
GPU_BASELINE: dict[tuple[str, int, int], tuple[float, float]] = {
    ("bert-base", 128, 1): (2.1e-3, 0.31),
    ("bert-base", 128, 32): (2.2e-3, 1.37),
    ("bert-large", 128, 32): (5.4e-3, 3.8),
    ("gpt2", 128, 1): (1.9e-3, 0.26),
    ("gpt2", 1024, 1): (3.3e-3, 0.44),
    ("minilm", 128, 1): (1.1e-3, 0.14),
}
GPU_NAME = "NVIDIA H200, fp16 PyTorch eager (issue 14's measurement)"


def model_config(cfg: Config, model: str | None, seq: int) -> Config:
    """``cfg``'s hardware running ``model`` (a :data:`~cimforge.config.KNOWN_MODELS` name;
    None: the config's own) on ``seq`` tokens: the K and V macros as tall as the sequence
    needs and as wide as a head."""
    if model is None:
        m = cfg.model
    elif model in KNOWN_MODELS:
        m = KNOWN_MODELS[model]
    else:
        raise ValueError(f"model must be one of {', '.join(KNOWN_MODELS)}, not {model!r}")
    if not 1 <= seq <= m.max_seq:
        raise ValueError(f"seq must be in [1, {m.max_seq}] for {m.name}, not {seq}")
    return cfg.with_sections(
        model=dataclasses.asdict(m) | {"seq_len": seq},
        dcim={"rows": max(seq, cfg.dcim.rows), "cols": m.d_model // m.n_heads},
        accelerator={"rtl": False, "crossbars": 0, "dcim_macros": 0})


@dataclass
class Estimate:
    """What ``cimforge estimate`` reports (every energy in J and area in m^2; per inference
    as defined in the module docstring)."""

    model: str
    config: str
    kind: str
    seq: int
    clock_mhz: float
    node_nm: float
    cycles: int
    macs: int
    energy_j: dict[str, float]
    area_m2: dict[str, float]
    counts: dict[str, float]
    programming: dict[str, float]
    writes_bits: dict[str, float]
    lifetime_s: dict[str, float]
    gpu: dict[str, Any] | None = None

    @property
    def latency_s(self) -> float:
        return self.cycles / (self.clock_mhz * 1e6)

    @property
    def total_j(self) -> float:
        return sum(self.energy_j.values())

    @property
    def tops_per_w(self) -> float:
        return 2 * self.macs / self.total_j / 1e12

    @property
    def tops(self) -> float:
        return 2 * self.macs / self.latency_s / 1e12

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(latency_s=self.latency_s, total_j=self.total_j, tops=self.tops,
                 tops_per_w=self.tops_per_w, area_total_m2=sum(self.area_m2.values()))
        return d


def _tile_events(cfg: Config, mapping, vectors: int) -> dict[str, float]:
    """Reads, driven rows, cells and conversions of every tile unit, each doing ``vectors``
    vectors, and the gate-weighted busy cycles of their digital parts."""
    from cimforge.hw.transformer_layer import unit_spec

    ev = dict.fromkeys(("reads", "rows", "cells", "conversions", "tile_gate_cycles"), 0.0)
    lane_gates = DIGITAL_GATES["analog_tile"] / REFERENCE_TILE_LANES
    for u in mapping.units:
        s = unit_spec(cfg, u)
        reads = vectors * s.reads_per_vector
        conversions = reads * s.col_tiles * s.cols
        ev["reads"] += reads
        ev["rows"] += reads * s.col_tiles * s.rows_per_read
        ev["cells"] += reads * s.col_tiles * s.rows_per_read * s.cols
        ev["conversions"] += conversions
        # a conversion is one operation of its ADC lane's logic (the code's shift and
        # accumulate, its share of the control); the SAR's one register bit a cycle is
        # small against it
        ev["tile_gate_cycles"] += conversions * lane_gates
    return ev




def estimate(cfg: Config, model: str | None = None, seq: int | None = None) -> Estimate:
    """The estimate of ``model`` (a known model's name; default: the config's own) over
    ``seq`` tokens (default: ``model.seq_len``) on ``cfg``'s hardware."""
    from cimforge.golden.accel_program import ProgramFormat, ProgramSchedule
    from cimforge.golden.accel_timing import AcceleratorTiming
    from cimforge.golden.mapping import map_model

    seq = seq or cfg.model.seq_len
    cfg = model_config(cfg, model, seq)
    name = cfg.model.name
    m, tech = cfg.model, Tech(cfg.cost)
    decoder = m.kind == "decoder"
    mapping = map_model(cfg)
    timing = AcceleratorTiming(cfg, mapping)
    if decoder:  # one generated token with seq tokens of context
        tokens, keys = 1, [seq]
        cycles = timing.schedule(1, base=seq - 1).latency
    else:
        tokens, keys = seq, [seq] * seq
        cycles = timing.schedule(seq).latency
    d, f, heads, dh, layers = m.d_model, m.d_ff, m.n_heads, m.d_head, m.n_layers
    a_bits = cfg.numerics.act_bits

    # -- events ----------------------------------------------------------------------------
    ev = _tile_events(cfg, mapping, tokens)
    attn_macs = layers * heads * sum(2 * k * dh for k in keys)
    linear_macs = tokens * layers * (4 * d * d + 2 * d * f)
    ln_rows = tokens * (2 * layers + 1)
    ev.update(
        dcim_ops=2 * attn_macs,
        requant=tokens * layers * (8 * d + f),
        token_quant=tokens * layers * (3 * d + f),
        activation=tokens * layers * f,
        softmax=2 * layers * heads * sum(keys),
        layernorm=2 * ln_rows * d,
        sram_bits=2 * tokens * buffer_bits(cfg),
    )

    # -- energy ----------------------------------------------------------------------------
    dev, t = cfg.device, cfg.tile
    from cimforge.golden.analog_tile import AnalogTileSpec

    adc_rate = (cfg.accelerator.clock_mhz * 1e6
                / AnalogTileSpec.from_config(cfg).conversion_cycles)
    energy = {
        "ADCs": ev["conversions"] * tech.adc_j(cfg.adc.bits, adc_rate),
        "crossbar reads": ev["cells"] * tech.cell_read_j(dev.g_min_us, dev.g_max_us,
                                                        t.dac_bits),
        "DACs and word lines": ev["rows"] * tech.row_drive_j(t.cols, t.dac_bits),
        "tile digital (accumulate, control)": tech.digital_j(1.0, ev["tile_gate_cycles"]),
        "digital CIM (attention)": ev["dcim_ops"] * tech.dcim_op_j(a_bits, a_bits),
        "CMOS units (softmax, LayerNorm, GELU, requantisers, scaling)": sum(
            tech.digital_j(DIGITAL_GATES[u], ev[u])
            for u in ("requant", "token_quant", "activation", "softmax", "layernorm")),
        "SRAM token buffers": ev["sram_bits"] * tech.e_sram_bit_j(),
    }

    # -- area ------------------------------------------------------------------------------
    from cimforge.hw.transformer_layer import unit_spec

    f2 = tech.f_m ** 2
    adcs = sum(unit_spec(cfg, u).col_tiles * t.cols // cfg.adc.cols_per_adc
               for u in mapping.units)
    digital_gates = (
        sum(DIGITAL_GATES["analog_tile"] * unit_spec(cfg, u).col_tiles * t.cols
            / REFERENCE_TILE_COLS for u in mapping.units)
        # a layer's units (hw/transformer_layer.py): four drainers' requantisers and the
        # residual ones of o and ff2, the attention engine's; four feeders' per-token
        # scaling; two LayerNorms (an encoder's after o and ff2, a decoder's before);
        # and the top's one (embedding or final)
        + layers * (7 * DIGITAL_GATES["requant"] + 4 * DIGITAL_GATES["token_quant"]
                    + DIGITAL_GATES["softmax"] + DIGITAL_GATES["activation"]
                    + 2 * DIGITAL_GATES["layernorm"]) + DIGITAL_GATES["layernorm"])
    kv_bits = 2 * layers * heads * cfg.dcim.rows * dh * a_bits
    buffer_total = cfg.dcim.rows * buffer_bits(cfg)
    area = {
        "crossbar arrays": mapping.cells * dev.cell_area_f2 * f2,
        "ADCs": adcs * tech.adc_area_m2(cfg.adc.bits),
        "DACs and word-line drivers": mapping.crossbars * t.rows * t.dac_bits
        * tech.driver_area_m2(),
        "digital logic": digital_gates * tech.nand2_area_m2(),
        "digital CIM (K and V)": kv_bits * tech.sram_cell_f2 * f2,
        "SRAM token buffers": buffer_total * tech.sram_cell_f2 * f2,
    }

    # -- programming, writes and wear ------------------------------------------------------
    clock = cfg.accelerator.clock_mhz * 1e6
    prog_cycles = ProgramSchedule.full_rate_cycles(ProgramFormat(mapping))
    programming = {"cells": mapping.cells, "time_s": prog_cycles / clock,
                   "energy_j": mapping.cells * dev.write_verify_iterations * dev.write_energy_j,
                   "reprogrammings_to_wear_out": dev.endurance / dev.write_verify_iterations}
    rate = clock / cycles  # inferences a second, back to back
    kv_written = tokens * 2 * layers * heads * dh * a_bits
    writes = {"crossbars": 0.0, "K and V macros": kv_written,
              "token buffers": tokens * buffer_bits(cfg)}
    # the most-written cell: an encoder rewrites every row once an inference; a decoder
    # writes a K/V row once a sequence of seq tokens, the buffers' row 0 every token
    per_cell_rate = {"K and V macros": rate / seq if decoder else rate,
                     "token buffers": rate}
    sram = KNOWN_DEVICES["sram"].endurance
    lifetime = {mem: sram / r for mem, r in per_cell_rate.items()}

    est = Estimate(
        model=name, config=cfg.name, kind=m.kind, seq=seq, clock_mhz=cfg.accelerator.clock_mhz,
        node_nm=cfg.cost.node_nm, cycles=cycles, macs=linear_macs + attn_macs,
        energy_j=energy, area_m2=area, counts={**ev, "adcs": adcs, "crossbars":
                                               mapping.crossbars},
        programming=programming, writes_bits=writes, lifetime_s=lifetime)
    rows = [{"batch": b, "latency_s": sec, "energy_j": joules / b,
             "speedup": sec / est.latency_s, "efficiency": joules / b / est.total_j}
            for (mod, n, b), (sec, joules) in GPU_BASELINE.items() if (mod, n) == (name, seq)]
    if rows:  # speed-up: the GPU's latency over ours; efficiency: its energy over ours
        est.gpu = {"name": GPU_NAME, "baselines": rows}
    return est
