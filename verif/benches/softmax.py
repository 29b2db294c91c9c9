"""cocotb bench of the streaming softmax (``hw/nonlinear.py``, :class:`Softmax`): rows of
every length up to the maximum with corners (all equal, one dominant, extremes, masked
lanes, causal prefixes), under four flow patterns, and back-to-back rows of the maximum
length at full rate (the throughput), bit- and cycle-exact against
:mod:`golden.nonlinear_units`."""

from __future__ import annotations

import cocotb
import numpy as np

from golden.nonlinear import softmax_multiplier
from golden.nonlinear_units import SoftmaxSpec
from verif.nonlinear_case import expected_softmax_beats, softmax_beats, softmax_case
from verif.unit_bench import PATTERNS, UnitBench


async def _rows(tb: UnitBench, scores, keeps, throughput: bool = False) -> None:
    spec = tb.spec
    m = softmax_multiplier(float(tb.rng.uniform(0.002, 0.05)), spec.nonlinear)
    tb.set_inputs(mult=m.mult, shift=m.shift)
    beats = softmax_beats(spec, scores, keeps)
    lasts = [b["last"] == 1 for b in beats]
    await tb.run(beats, expected_softmax_beats(spec, m.mult, m.shift, scores, keeps),
                 lambda offered, ready: spec.timing.schedule(lasts, offered, ready),
                 spec.timing.first_result_latency(spec.beats_max), throughput=throughput)


async def _bench(dut, name: str, pattern: str) -> UnitBench:
    tb = UnitBench(dut, name, pattern, "softmax", SoftmaxSpec)
    await tb.start()
    return tb


@cocotb.test()
@cocotb.parametrize(pattern=list(PATTERNS))
async def rows(dut, pattern: str):
    """60 rows of random lengths, every sixth of a corner kind."""
    tb = await _bench(dut, "rows", pattern)
    scores, keeps = softmax_case(tb.spec, tb.rng, 60)
    await _rows(tb, scores, keeps)


@cocotb.test()
async def max_length_stream(dut):
    """40 rows of the maximum length back to back: the unit's full-rate throughput."""
    tb = await _bench(dut, "max_length_stream", "full_rate")
    n = tb.spec.max_len
    scores = [tb.rng.normal(0, 500, n).round().astype(np.int64) for _ in range(40)]
    await _rows(tb, scores, [np.ones(n, bool)] * 40, throughput=True)


@cocotb.test()
async def length_one(dut):
    """Rows of one score (probability 1, or 0 when masked)."""
    tb = await _bench(dut, "length_one", "full_rate")
    hi = 1 << (tb.spec.score_bits - 1)
    scores = [np.array([v]) for v in tb.rng.integers(-hi, hi, 20)]
    keeps = [np.array([k % 4 != 3]) for k in range(20)]
    await _rows(tb, scores, keeps)
