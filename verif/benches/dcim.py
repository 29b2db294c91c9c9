"""cocotb bench of the SRAM digital-CIM macro (``hw/dcim.py``).

Run through :func:`cimforge.verif.runner.run_bench` (pytest: ``tests/cocotb/test_dcim.py``;
``cimforge flow``). Commands go in through a :class:`~cimforge.verif.streams.StreamSource`, results
come out through a :class:`~cimforge.verif.streams.StreamSink`; the scoreboard checks every result
(values, ``weighted``, ``tokens``) bit-exact against :class:`cimforge.golden.dcim.DcimModel`, every
command accepted and every result offered in the cycle :class:`cimforge.golden.dcim.DcimTiming`
predicts, and nothing left over. Seeds derive from ``cocotb.RANDOM_SEED``.
"""

from __future__ import annotations

import cocotb

from cimforge.golden.dcim import DcimCommand, DcimSpec, DcimTiming
from cimforge.verif.dcim_case import attention_commands, expected_results, random_commands
from cimforge.verif.records import write_record
from cimforge.verif.stream_bench import StreamBench
from cimforge.verif.streams import STREAM_PATTERNS


class DcimTB(StreamBench):
    """Clock, reset, source, sink and golden model around one ``dcim`` instance."""

    def __init__(self, dut, name: str, pattern: str = "full_rate"):
        super().__init__(dut, name, pattern, "dcim")
        self.spec = DcimSpec(**self.block["parameters"])
        self.timing = DcimTiming(self.spec)

    async def run(self, commands: list[DcimCommand]) -> None:
        """Send ``commands``, wait for every result (or a timeout), then check everything."""
        expected = expected_results(self.spec, commands)
        self.source.send(self.in_codec.pack(op=c.op, addr=c.addr, data=c.wire_data(self.spec.bits))
                         for c in commands)
        await self.drain(len(expected), self.budget(len(commands), self.spec.bits),
                         self.timing.latency + 4)
        self.check(commands, expected)

    def check(self, commands: list[DcimCommand], expected: list[dict]) -> None:
        b = self.board
        sent, received = self.source.sent, self.sink.received
        b.compare("commands accepted", len(commands), len(sent))
        self.check_results(expected)
        try:
            model = self.timing.schedule(
                commands[: len(sent)], [t.offered for t in sent], self.sink_ready)
            b.compare("accepted cycles", model.accepted, [t.taken for t in sent])
            b.compare("result offered cycles", model.offered[: len(received)],
                      [t.offered for t in received])
        except ValueError as e:
            b.error(f"acceptance contradicts the model: {e}")
        measured = predicted = None
        if sent and received:
            measured = received[-1].offered - sent[0].taken
            if self.pattern == "full_rate":
                model = self.timing.schedule(commands, [None] * len(commands))
                predicted = model.offered[-1] - model.accepted[0]
                b.compare("cycles from first command to last result", predicted, measured)
        write_record(test=b.name, pattern=self.pattern, seed=self.seed, commands=len(commands),
                     results=len(expected), cycles=measured, predicted_cycles=predicted,
                     errors=len(b.errors))
        self.assert_clean()


@cocotb.test()
@cocotb.parametrize(pattern=list(STREAM_PATTERNS))
async def attention(dut, pattern: str):
    """Keys appended token by token with a query after each (q . K^T over a growing, then
    wrapping, KV cache), values written by address and weighted sums (a . V)."""
    tb = DcimTB(dut, "attention", pattern)
    await tb.start()
    await tb.run(attention_commands(tb.spec, tb.rng, tokens=tb.spec.rows + 2))


@cocotb.test()
@cocotb.parametrize(pattern=["full_rate", "idle_backpressure"])
async def random_mix(dut, pattern: str):
    """Writes, appends and both computes in random order."""
    tb = DcimTB(dut, "random_mix", pattern)
    await tb.start()
    await tb.run(random_commands(tb.spec, tb.rng, 80))
