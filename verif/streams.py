"""cocotb parts for ``amaranth.lib.stream`` ports: a cycle counter, a source (driver) and a
sink (monitor with back-pressure).

Timing convention, shared with the golden cycle models: cycle ``n`` is the clock period that
ends with rising edge ``n + 1`` (edge 1 is the first after the counter starts). Every part
writes its outputs just after a rising edge and samples the design in the ``ReadOnly`` phase of
the same period, so a transfer recorded "in cycle n" completes at the edge that ends cycle n.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from cocotb.triggers import ReadOnly, RisingEdge

__all__ = ["CycleCounter", "StreamSource", "StreamSink", "Transfer"]


class CycleCounter:
    """Counts rising edges of ``clk``; read :attr:`now` in the ReadOnly phase."""

    def __init__(self, clk):
        self._clk = clk
        self.now = 0

    async def run(self) -> None:
        while True:
            await RisingEdge(self._clk)
            self.now += 1


@dataclass(frozen=True)
class Transfer:
    payload: int
    offered: int  # first cycle the item was valid
    taken: int  # cycle of the valid & ready handshake


class StreamSource:
    """Drives ``<prefix>__valid``/``__payload`` from a queue of packed payloads.

    ``idle`` is the probability of a cycle with ``valid`` low between items (never while an
    item is being offered: valid stays up until it is taken, as the stream rules require).
    """

    def __init__(self, dut, prefix: str, clk, counter: CycleCounter, *,
                 idle: float = 0.0, rng: random.Random | None = None):
        self._valid = getattr(dut, f"{prefix}__valid")
        self._ready = getattr(dut, f"{prefix}__ready")
        self._payload = getattr(dut, f"{prefix}__payload")
        self._clk = clk
        self._counter = counter
        self._idle = idle
        self._rng = rng or random.Random(0)
        self.queue: deque[int] = deque()
        self.sent: list[Transfer] = []
        self._valid.value = 0
        self._payload.value = 0

    def send(self, payloads) -> None:
        self.queue.extend(payloads)

    @property
    def idle_now(self) -> bool:
        return not self.queue

    async def run(self) -> None:
        offering = False
        offered_at = None
        while True:
            await RisingEdge(self._clk)
            if not offering and self.queue and not (self._idle and self._rng.random() < self._idle):
                offering = True
                offered_at = None
                self._payload.value = self.queue[0]
                self._valid.value = 1
            elif not offering:
                self._valid.value = 0
            await ReadOnly()
            if offering:
                now = self._counter.now
                if offered_at is None:
                    offered_at = now
                if int(self._ready.value):
                    self.sent.append(Transfer(self.queue.popleft(), offered_at, now))
                    offering = False


class StreamSink:
    """Takes items from ``<prefix>__valid``/``__payload``, holding ``ready`` low with
    probability ``stall`` each cycle."""

    def __init__(self, dut, prefix: str, clk, counter: CycleCounter, *,
                 stall: float = 0.0, rng: random.Random | None = None):
        self._valid = getattr(dut, f"{prefix}__valid")
        self._ready = getattr(dut, f"{prefix}__ready")
        self._payload = getattr(dut, f"{prefix}__payload")
        self._clk = clk
        self._counter = counter
        self._stall = stall
        self._rng = rng or random.Random(0)
        self.received: list[Transfer] = []
        self.protocol_errors: list[str] = []
        self.trace: dict[int, tuple[int, int]] = {}  # cycle -> (valid, ready)
        self._ready.value = 0

    async def run(self) -> None:
        offered_at = None
        held = None
        while True:
            await RisingEdge(self._clk)
            ready = not (self._stall and self._rng.random() < self._stall)
            self._ready.value = int(ready)
            await ReadOnly()
            now = self._counter.now
            self.trace[now] = (int(self._valid.value), int(ready))
            if not int(self._valid.value):
                if offered_at is not None:
                    self.protocol_errors.append(f"cycle {now}: valid dropped before transfer")
                offered_at = None
                continue
            payload = int(self._payload.value)
            if offered_at is None:
                offered_at, held = now, payload
            elif payload != held:
                self.protocol_errors.append(f"cycle {now}: payload changed while not taken")
            if ready:
                self.received.append(Transfer(payload, offered_at, now))
                offered_at = None
