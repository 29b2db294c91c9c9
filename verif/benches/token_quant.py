"""cocotb bench of the per-token scaling unit (``hw/token_quant.py``, :class:`TokenQuantizer`):
rows of every magnitude (all-zero, the most negative value, rounding ties) under four flow
patterns, every exponent boundary, and a long full-rate stream (the throughput), bit- and
cycle-exact against :mod:`cimforge.golden.token_quant`."""

from __future__ import annotations

import cocotb
import numpy as np

from cimforge.golden.token_quant import TokenQuantSpec, token_quant_rows
from cimforge.verif.nonlinear_case import token_rows
from cimforge.verif.streams import STREAM_PATTERNS
from cimforge.verif.unit_bench import UnitBench


async def _run(dut, name: str, pattern: str, make, throughput: bool = False) -> None:
    tb = UnitBench(dut, name, pattern, "token_quant", TokenQuantSpec)
    spec = tb.spec
    await tb.start()
    rows = make(spec, tb.rng)
    q, e = token_quant_rows(spec, rows)
    expected = [{"q": int(v), "exp": int(e[i // spec.d, 0]), "last": int(i % spec.d == spec.d - 1)}
                for i, v in enumerate(q.reshape(-1))]
    await tb.run([{"data": int(v)} for v in rows.reshape(-1)], expected, spec.timing.schedule,
                 spec.timing.first_result_latency(), throughput=throughput)


@cocotb.test()
@cocotb.parametrize(pattern=list(STREAM_PATTERNS))
async def rows(dut, pattern: str):
    """15 rows, every fifth of a corner kind."""
    await _run(dut, "rows", pattern, lambda spec, rng: token_rows(spec, rng, 15))


def _boundaries(spec, rng):
    """For every bit length of the row's peak: a row peaking at 2^k - 1 and one at -2^k."""
    rows = []
    for k in range(spec.in_bits):
        for peak in ((1 << k) - 1, -(1 << k)):
            r = rng.integers(-abs(peak), abs(peak) + 1, spec.d) if peak else np.zeros(spec.d)
            r[int(rng.integers(spec.d))] = peak
            rows.append(np.asarray(r, dtype=np.int64))
    return np.stack(rows)


@cocotb.test()
async def exponent_boundaries(dut):
    """Rows whose peak sits on each side of every exponent step."""
    await _run(dut, "exponent_boundaries", "full_rate", _boundaries)


@cocotb.test()
async def stream(dut):
    """30 rows back to back at full rate: the unit's throughput."""
    await _run(dut, "stream", "full_rate", lambda spec, rng: token_rows(spec, rng, 30),
               throughput=True)
