"""cocotb bench of the LayerNorm unit (``hw/layernorm.py``, :class:`LayerNorm`): rows with
corners (constant rows, extremes, an outlier channel) under four flow patterns, and a long
full-rate stream (the throughput), bit- and cycle-exact against
:mod:`cimforge.golden.layernorm`. gamma and beta are programmed through the unit's ports
first."""

from __future__ import annotations

import cocotb
import numpy as np

from cimforge.golden.layernorm import LayerNormSpec, layer_norm_rows
from cimforge.verif.nonlinear_case import ln_case
from cimforge.verif.streams import STREAM_PATTERNS
from cimforge.verif.unit_bench import UnitBench


async def _run(dut, name: str, pattern: str, n_rows: int, throughput: bool = False,
               rows=None) -> None:
    tb = UnitBench(dut, name, pattern, "layernorm", LayerNormSpec)
    spec = tb.spec
    await tb.start()
    case_rows, params = ln_case(spec, tb.rng, n_rows)
    rows = case_rows if rows is None else rows(spec, tb.rng)
    tb.set_inputs(shift=params.shift)
    await tb.program([{"param_addr": i, "param_gamma": int(params.gamma[i]),
                       "param_beta": int(params.beta[i])} for i in range(spec.d)], "param_we")
    want = layer_norm_rows(spec, rows, params.gamma, params.beta, params.shift)
    expected = [{"y": int(v), "last": int(i % spec.d == spec.d - 1)}
                for i, v in enumerate(want.reshape(-1))]
    latency = 2 * spec.d + spec.sqrt_steps + 20
    await tb.run([{"data": int(v)} for v in rows.reshape(-1)], expected,
                 spec.timing.schedule, latency, throughput=throughput)


@cocotb.test()
@cocotb.parametrize(pattern=list(STREAM_PATTERNS))
async def rows(dut, pattern: str):
    """10 rows, every fifth of a corner kind."""
    await _run(dut, "rows", pattern, 10)


@cocotb.test()
async def stream(dut):
    """30 rows back to back at full rate: the unit's throughput."""
    await _run(dut, "stream", "full_rate", 30, throughput=True)


def _small_variance(spec, rng):
    """Constant rows with one value off by 1 or 2: the smallest non-zero variances, the
    largest normalised values (``sqrt(d)``: saturating an int8 output)."""
    hi = 1 << (spec.in_bits - 1)
    rows = np.repeat(rng.integers(-hi + 2, hi - 2, (8, 1)), spec.d, axis=1)
    for k, row in enumerate(rows):
        row[int(rng.integers(spec.d))] += 1 + k % 2
    return rows


@cocotb.test()
async def small_variance(dut):
    """Rows whose variance is the smallest above zero."""
    await _run(dut, "small_variance", "full_rate", 1, rows=_small_variance)
