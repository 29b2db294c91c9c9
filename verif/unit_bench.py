"""The bench every non-linear unit shares: stream its items through, check every result
bit-exact against golden and every beat's acceptance, offer and take against the unit's
cycle model (:mod:`cimforge.golden.stream_timing`), and record the full-rate throughput."""

from __future__ import annotations

from collections.abc import Callable

from cocotb.triggers import RisingEdge

from cimforge.golden.stream_timing import Schedule
from cimforge.verif.records import write_record
from cimforge.verif.stream_bench import StreamBench
from cimforge.verif.streams import trace_digest

__all__ = ["UnitBench"]


class UnitBench(StreamBench):
    """Clock, reset, source and sink around one non-linear unit; ``spec`` is built from the
    manifest's parameters with ``spec_cls``."""

    def __init__(self, dut, name: str, pattern: str, default_block: str, spec_cls):
        super().__init__(dut, name, pattern, default_block)
        self.spec = spec_cls(**self.block["parameters"])

    def set_inputs(self, **values: int) -> None:
        """Drive configuration inputs (held for the whole test)."""
        for name, value in values.items():
            getattr(self.dut, name).value = int(value)

    async def program(self, writes: list[dict[str, int]], strobe: str) -> None:
        """One write per cycle (``strobe`` high with the given signals), before any item."""
        for w in writes:
            self.set_inputs(**{strobe: 1, **w})
            await RisingEdge(self.dut.clk)
        getattr(self.dut, strobe).value = 0

    async def run(self, payloads: list[dict], expected: list[dict],
                  schedule: Callable[[list[int], Callable[[int], bool]], Schedule],
                  latency: int, *, throughput: bool = True,
                  before_check: Callable[[], None] | None = None) -> None:
        """Send ``payloads`` (field values of ``i_stream``), wait for ``len(expected)``
        results (or a timeout), then check values, cycles and that nothing else came out.
        ``schedule(offered, sink_ready)`` is the cycle model of this run. ``throughput``:
        at full rate, record results per cycle as the unit's throughput (for runs that
        exercise the steady state, not short or odd-length rows)."""
        self.throughput = throughput
        self.source.send(self.in_codec.pack(**p) for p in payloads)
        await self.drain(len(expected), self.budget(len(payloads), 2, 10 * latency + 50),
                         latency + 4)
        if before_check is not None:  # a bench's own checks (e.g. of probes)
            before_check()
        self.check(expected, schedule)

    def check(self, expected: list[dict], schedule) -> None:
        b = self.board
        sent, received = self.source.sent, self.sink.received
        self.check_results(expected)
        try:
            model = schedule([t.offered for t in sent], self.sink_ready)
            b.compare("accepted cycles", model.accepted, [t.taken for t in sent])
            b.compare("result offered cycles", model.offered[: len(received)],
                      [t.offered for t in received])
            b.compare("result taken cycles", model.taken[: len(received)],
                      [t.taken for t in received])
        except (ValueError, RuntimeError) as e:
            b.error(f"the run contradicts the cycle model: {e}")
            model = None
        measured = predicted = throughput = None
        if sent and received:
            measured = received[-1].offered - sent[0].taken
            if self.pattern == "full_rate" and model is not None:
                predicted = model.offered[-1] - model.accepted[0]
                if len(received) > 1 and self.throughput:  # results per cycle once the first is out
                    throughput = (len(received) - 1) / (received[-1].offered
                                                         - received[0].offered)
        write_record(test=b.name, pattern=self.pattern, seed=self.seed, items=len(sent),
                     results=len(received), cycles=measured, predicted_cycles=predicted,
                     utilisation=throughput, errors=len(b.errors),
                     trace_sha256=trace_digest(sent, received))
        self.assert_clean()
