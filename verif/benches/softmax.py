"""cocotb bench of the streaming softmax (``hw/softmax.py``, :class:`Softmax`): rows of
every length up to the maximum with corners (all equal, one dominant, extremes, masked
lanes, causal prefixes), under four flow patterns, and back-to-back rows of the maximum
length at full rate (the throughput), bit- and cycle-exact against
:mod:`cimforge.golden.softmax`."""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from cimforge.golden.nonlinear import Multiplier, softmax, softmax_multiplier
from cimforge.golden.softmax import SoftmaxSpec
from cimforge.verif.nonlinear_case import expected_softmax_beats, softmax_beats, softmax_case
from cimforge.verif.payload import PayloadCodec
from cimforge.verif.streams import STREAM_PATTERNS
from cimforge.verif.unit_bench import UnitBench


class SoftmaxTB(UnitBench):
    """The unit bench plus a monitor of the exp values (``probe_exp``): every beat's exp
    values must equal golden's (:class:`cimforge.golden.nonlinear.SoftmaxTrace`), in order."""

    def __init__(self, dut, name: str, pattern: str):
        super().__init__(dut, name, pattern, "softmax", SoftmaxSpec)
        self.exp_codec = PayloadCodec.for_port(self.block, "probe_exp")
        self.exps: list[list[int]] = []

    async def start(self) -> None:
        await super().start()
        cocotb.start_soon(self._watch())

    async def _watch(self) -> None:
        valid = self.dut.probe_exp_valid
        while True:
            await ReadOnly()
            if not int(valid.value):
                await RisingEdge(valid)  # sleep until a beat's exp values are written
                continue
            self.exps.append(self.exp_codec.unpack(int(self.dut.probe_exp.value))["data"])
            await RisingEdge(self.dut.clk)

    async def rows(self, scores, keeps, mult: int, shift: int, throughput: bool = False):
        spec = self.spec
        self.set_inputs(mult=mult, shift=shift)
        beats = softmax_beats(spec, scores, keeps)
        lasts = [b["last"] == 1 for b in beats]
        want = []
        for s, k in zip(scores, keeps, strict=True):
            e = softmax(np.asarray(s)[None, :], Multiplier(mult, shift), spec.nonlinear,
                        np.asarray(k)[None, :], trace=True).exp[0]
            e = np.concatenate([e, np.zeros(-len(e) % spec.lanes, dtype=np.int64)])
            want += e.reshape(-1, spec.lanes).tolist()
        await self.run(beats, expected_softmax_beats(spec, mult, shift, scores, keeps),
                       lambda offered, ready: spec.timing.schedule(lasts, offered, ready),
                       spec.timing.first_result_latency(spec.beats_max),
                       throughput=throughput, before_check=lambda: self._check_exps(want))

    def _check_exps(self, want: list[list[int]]) -> None:
        self.board.compare("exp beats written", len(want), len(self.exps))
        for j, (w, g) in enumerate(zip(want, self.exps)):
            self.board.compare(f"exp beat {j}", w, g)


async def _rows(tb: SoftmaxTB, scores, keeps, throughput: bool = False) -> None:
    m = softmax_multiplier(float(tb.rng.uniform(0.002, 0.05)), tb.spec.nonlinear)
    await tb.rows(scores, keeps, m.mult, m.shift, throughput)


async def _bench(dut, name: str, pattern: str) -> SoftmaxTB:
    tb = SoftmaxTB(dut, name, pattern)
    await tb.start()
    return tb


@cocotb.test()
@cocotb.parametrize(pattern=list(STREAM_PATTERNS))
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


@cocotb.test()
async def exp_exhaustive(dut):
    """Every base-2 exponent the unit can meet, 0 down to past ``-exp_bits`` (so every
    ``2^fraction`` table entry or polynomial value and every shift): the scale set to one
    exponent step per score step, each row the maximum 0 and ``max_len - 1`` exponents."""
    tb = await _bench(dut, "exp_exhaustive", "full_rate")
    spec = tb.spec
    nl = spec.nonlinear
    exps = np.arange(0, -nl.exp_floor + 3)
    per_row = max(spec.max_len - 1, 1)
    scores = [np.concatenate([[0], -exps[i:i + per_row]]) for i in range(0, len(exps), per_row)]
    keeps = [np.ones(len(s), bool) for s in scores]
    # one exponent step per score step: t = s - max
    await tb.rows(scores, keeps, 1 << (spec.mult_bits - 1), spec.mult_bits - 1)
