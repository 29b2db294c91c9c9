"""cocotb bench of the shift-add reduction unit (``hw/shift_add.py``).

Run through :func:`cimforge.verif.runner.run_bench` (pytest: ``tests/cocotb/test_shift_add.py``;
``cimforge flow``). The design and its parameters come from the generated manifest named by
``CIMFORGE_MANIFEST``; the expected results and cycles from :mod:`cimforge.golden.shift_add`.

Every test drives beats through a :class:`~cimforge.verif.streams.StreamSource`, takes results with
a :class:`~cimforge.verif.streams.StreamSink`, then checks on a scoreboard: every result bit-exact,
every result offered in the cycle :class:`~cimforge.golden.shift_add.ShiftAddTiming` predicts, no
protocol violation, nothing left over. Seeds derive from ``cocotb.RANDOM_SEED`` and are in every
failure message.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles

from cimforge.golden.shift_add import (
    Beats,
    ShiftAddSpec,
    ShiftAddTiming,
    dot_product_beats,
    shift_add,
)
from cimforge.verif.records import write_record
from cimforge.verif.stream_bench import StreamBench
from cimforge.verif.streams import STREAM_PATTERNS


class ShiftAddTB(StreamBench):
    """Clock, reset, source, sink and golden model around one ``shift_add`` instance."""

    def __init__(self, dut, name: str, pattern: str = "full_rate"):
        super().__init__(dut, name, pattern, "shift_add")
        self.rows_per_read = self.config["tile"]["rows_per_read"]
        self.spec = ShiftAddSpec(**self.block["parameters"])
        self.timing = ShiftAddTiming()

    def send(self, beats: Beats) -> None:
        beats.check(self.spec)
        self.source.send(
            self.in_codec.pack(
                codes=beats.codes[i].tolist(),
                digit=int(beats.digit[i]),
                slice=int(beats.slice[i]),
                negative=int(beats.negative[i]),
                last=int(beats.last[i]),
            )
            for i in range(len(beats))
        )

    async def run(self, beats: Beats) -> None:
        """Send ``beats``, wait for every result (or a timeout), then check everything."""
        expected = shift_add(self.spec, beats)
        self.send(beats)
        # generous bound: every beat and result may wait on idle/stall cycles
        await self.drain(len(expected), self.budget(len(beats) + 4 * len(expected), 1), 4)
        self.check(beats, expected)

    def check(self, beats: Beats, expected: np.ndarray) -> None:
        b = self.board
        b.compare("results received", len(expected), len(self.sink.received))
        b.compare("beats accepted", len(beats), len(self.source.sent))
        for msg in self.sink.protocol_errors:
            b.error(f"o_stream protocol: {msg}")
        last_accepts = [t.taken for t, last in zip(self.source.sent, beats.last) if last]
        prev_taken = None
        for j, (want, got) in enumerate(zip(expected, self.sink.received)):
            value = self.out_codec.unpack(got.payload)["data"]
            b.compare(f"result {j}", want.tolist(), value)
            if j >= len(last_accepts):
                b.error(f"result {j} offered in cycle {got.offered} before its last beat was "
                        "accepted")
            else:
                b.compare(
                    f"result {j} offered in cycle",
                    self.timing.output_cycle(last_accepts[j], prev_taken),
                    got.offered,
                )
            prev_taken = got.taken
        # every beat must be taken in the first cycle the model lets the unit accept it
        trace = self.sink.trace
        for i, t in enumerate(self.source.sent):
            cycle = t.offered
            while cycle < t.taken and not self.timing.accepts(*trace.get(cycle, (0, 1))):
                cycle += 1
            b.compare(f"beat {i} (offered in cycle {t.offered}) taken in cycle", cycle, t.taken)
        measured = predicted = None
        if self.source.sent and self.sink.received:
            measured = self.sink.received[-1].offered - self.source.sent[0].taken
            if self.pattern == "full_rate":
                # independent of anything measured: the model's figure for this many beats
                predicted = self.timing.stream_cycles(len(beats))
                b.compare("cycles from first beat to last result", predicted, measured)
        write_record(
            test=self.board.name,
            pattern=self.pattern,
            seed=self.seed,
            beats=len(beats),
            results=len(expected),
            cycles=measured,
            predicted_cycles=predicted,
            errors=len(b.errors),
        )
        self.assert_clean()


def random_beats(spec: ShiftAddSpec, rng: np.random.Generator, vectors: int,
                 max_len: int) -> Beats:
    """Random codes and tags; vector lengths uniform in [1, max_len]."""
    lengths = rng.integers(1, max_len + 1, size=vectors)
    n = int(lengths.sum())
    last = np.zeros(n, dtype=np.int64)
    last[np.cumsum(lengths) - 1] = 1
    return Beats(
        codes=rng.integers(0, spec.code_max + 1, size=(n, spec.lanes)),
        digit=rng.integers(0, spec.input_digits, size=n),
        slice=rng.integers(0, spec.weight_slices, size=n),
        negative=rng.integers(0, 2, size=n),
        last=last,
    )


def constant_beats(spec: ShiftAddSpec, code: int, digit: int, slice_: int, negative: int,
                   length: int) -> Beats:
    """One vector of ``length`` identical beats."""
    last = np.zeros(length, dtype=np.int64)
    last[-1] = 1
    full = np.full(length, 1, dtype=np.int64)
    return Beats(
        codes=np.full((length, spec.lanes), code, dtype=np.int64),
        digit=full * digit,
        slice=full * slice_,
        negative=full * negative,
        last=last,
    )


def concat(*parts: Beats) -> Beats:
    return Beats(*(np.concatenate([getattr(p, f) for p in parts])
                   for f in ("codes", "digit", "slice", "negative", "last")))


@cocotb.test()
@cocotb.parametrize(pattern=list(STREAM_PATTERNS))
async def random_vectors(dut, pattern: str):
    """Random codes and tags, random vector lengths, under each flow-control pattern."""
    tb = ShiftAddTB(dut, "random_vectors", pattern)
    await tb.start()
    one_dot = tb.spec.input_digits * tb.spec.weight_slices * 2
    await tb.run(random_beats(tb.spec, tb.rng, vectors=40, max_len=2 * one_dot))


@cocotb.test()
@cocotb.parametrize(pattern=["full_rate", "idle_backpressure"])
async def dot_products(dut, pattern: str):
    """Reads of an ideal crossbar for int8 x @ W, with signed extremes: results equal x @ W."""
    tb = ShiftAddTB(dut, "dot_products", pattern)
    await tb.start()
    spec, rng = tb.spec, tb.rng
    # An ideal read must stay within the ADC's range: read fewer rows at once if needed.
    rows = min(tb.rows_per_read, spec.code_max // ((1 << spec.bits_per_cell) - 1))
    k = 2 * rows + 3  # three row groups, the last one partial
    lo_x, hi_x = -(1 << (spec.input_digits - 1)), (1 << (spec.input_digits - 1)) - 1
    w_bits = spec.weight_slices * spec.bits_per_cell
    lo_w, hi_w = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
    x = rng.integers(lo_x, hi_x + 1, size=(12, k))
    x[0], x[1], x[2], x[3] = lo_x, hi_x, 0, -1  # signed extremes, zero, all ones
    w = rng.integers(lo_w, hi_w + 1, size=(k, spec.lanes))
    for lane, value in enumerate((lo_w, hi_w, 0, -1)):
        w[:, lane % spec.lanes] = value
    beats = dot_product_beats(spec, x, w, rows)
    tb.board.compare("golden shift_add of ideal reads equals x @ W",
                     (x @ w).tolist(), shift_add(spec, beats).tolist())
    await tb.run(beats)


@cocotb.test()
async def corners(dut):
    """All-zero, all-max, negative-max and single-beat vectors."""
    tb = ShiftAddTB(dut, "corners")
    await tb.start()
    s = tb.spec
    top_d, top_s = s.input_digits - 1, s.weight_slices - 1
    n = s.input_digits * s.weight_slices * 2
    await tb.run(concat(
        constant_beats(s, 0, top_d, top_s, 1, n),            # all zeros
        constant_beats(s, s.code_max, top_d, top_s, 0, n),   # all ones, largest weight
        constant_beats(s, s.code_max, top_d, top_s, 1, n),   # negative extreme
        constant_beats(s, s.code_max, 0, 0, 0, 1),           # single beat, smallest weight
        constant_beats(s, 1, 0, 0, 1, 1),                    # -1
        random_beats(s, tb.rng, vectors=20, max_len=1),      # back-to-back single beats
    ))


@cocotb.test()
async def saturation(dut):
    """Accumulate past both ends of the accumulator range and back again."""
    tb = ShiftAddTB(dut, "saturation")
    await tb.start()
    s = tb.spec
    top_d, top_s = s.input_digits - 1, s.weight_slices - 1
    step = s.code_max << s.max_shift
    to_limit = s.acc_max // step + 3  # a few beats beyond the limit
    up = constant_beats(s, s.code_max, top_d, top_s, 0, to_limit)
    down = constant_beats(s, s.code_max, top_d, top_s, 1, to_limit)
    back = constant_beats(s, s.code_max, top_d, top_s, 1, 2)
    forth = constant_beats(s, s.code_max, top_d, top_s, 0, 2)

    def one_vector(*parts: Beats) -> Beats:
        v = concat(*parts)
        v.last[:] = 0
        v.last[-1] = 1
        return v

    # saturate, then two steps back: clamping after every beat makes these differ from
    # clamping the exact sum (which would still be beyond the limit)
    await tb.run(concat(up, down, one_vector(up, back), one_vector(down, forth)))


@cocotb.test()
async def reset_mid_vector(dut):
    """A reset in the middle of a vector clears the accumulators: what follows is exact."""
    tb = ShiftAddTB(dut, "reset_mid_vector")
    await tb.start()
    partial = random_beats(tb.spec, tb.rng, vectors=30, max_len=1)
    partial.last[:] = 0  # thirty beats of an unfinished vector
    tb.send(partial)
    await ClockCycles(dut.clk, 8)  # some beats reach the accumulators, some still queued
    assert tb.source.queue, "the reset must find beats in flight"
    await tb.reset()  # the drivers drop what was in flight and start their records afresh
    await tb.run(random_beats(tb.spec, tb.rng, vectors=5, max_len=8))
