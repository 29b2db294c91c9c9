"""Endurance arithmetic of generation (survey Sections III-D, Table II): the writes a decoder
makes into each of the accelerator's memories per generated token, and how long a memory
would last if it were built of each device preset instead of SRAM (docs/hw-accelerator.md,
"Endurance").

Per generated token (a decode step, a run of one token):

* **K and V cache** (the digital-CIM macros): every layer writes the token's K and V, one row
  of ``d_head`` codes into each of its ``2 n_heads`` macros, at the token's position. A row is
  rewritten once per sequence, so the most-written cells (row 0) take one write per sequence
  of ``seq_len`` tokens: ``tokens_per_s / seq_len`` writes a second.
* **activation scratchpad** (the token buffers): a decode step is a run of one token, which
  every buffer writes at its row 0: one write a step for each of those cells.
* **crossbars**: none. The weights are stationary; only programming writes them.

The token rate is the decode step's at ``accelerator.clock_mhz``, from the cycle model, with
half of ``seq_len`` cached.
"""

from __future__ import annotations

from dataclasses import dataclass

from cimforge.config import KNOWN_DEVICES, Config
from cimforge.golden.accel_timing import AcceleratorTiming

__all__ = ["Endurance", "buffer_bits", "endurance", "duration"]

SECONDS_PER_YEAR = 365.25 * 24 * 3600


@dataclass(frozen=True)
class Endurance:
    """What generation writes, per token, and how long each memory would last."""

    config: str
    step_cycles: int
    tokens_per_s: float
    seq_len: int
    kv_bits: int  # written into the K and V macros per token
    kv_rows: int  # macro rows written per token
    buffer_bits: int  # written into the activation buffers per token
    crossbar_bits: int  # written into the crossbars per token (0: weight-stationary)
    lifetime_s: dict[str, dict[str, float]]  # device -> memory -> seconds

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def buffer_bits(cfg: Config) -> int:
    """Bits one token writes into the token buffers (``hw/accelerator.py``,
    ``hw/transformer_layer.py``): per layer q (act_bits), the context, x1, the FFN's
    activations and, a decoder's, the two LayerNorms' outputs (residual_bits); the top's
    layer inputs and its output buffer."""
    m = cfg.model
    a8, xb = cfg.numerics.act_bits, cfg.nonlinear.residual_bits
    decoder = m.kind == "decoder"
    layer = m.d_model * a8 + (2 + 2 * decoder) * m.d_model * xb + m.d_ff * xb
    return m.n_layers * layer + (m.n_layers + 2) * m.d_model * xb


def endurance(cfg: Config) -> Endurance:
    """The writes of one generated token on ``cfg`` (a decoder) and every device preset's
    lifetime for the K and V cache and the activation buffers."""
    if cfg.model.kind != "decoder":
        raise ValueError(f"generation is a decoder's: model.kind must be 'decoder', not "
                         f"{cfg.model.kind!r}")
    m = cfg.model
    tm = AcceleratorTiming(cfg)
    cached = min(m.seq_len // 2, cfg.dcim.rows - 1)
    step = tm.schedule(1, base=cached).latency
    rate = cfg.accelerator.clock_mhz * 1e6 / step
    kv_rows = 2 * m.n_layers * m.n_heads
    kv_bits = kv_rows * m.d_head * cfg.numerics.act_bits
    per_cell = {"K and V cache": rate / m.seq_len, "activation buffers": rate}
    lifetime = {name: {mem: dev.endurance / w for mem, w in per_cell.items()}
                for name, dev in KNOWN_DEVICES.items()}
    return Endurance(cfg.name, step, rate, m.seq_len, kv_bits, kv_rows, buffer_bits(cfg), 0,
                     lifetime)


def duration(seconds: float) -> str:
    """``seconds`` in the largest unit that keeps it at or above 1 (s, min, h, days,
    years)."""
    for unit, size in (("years", SECONDS_PER_YEAR), ("days", 86400.0), ("h", 3600.0),
                       ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:,.3g} {unit}"
    return f"{seconds:.3g} s"
