"""cocotb drivers for ``amaranth.lib.stream`` ports, used by every bench: a cycle clock, a
source (driver) and a sink (monitor with back-pressure), one table of flow patterns.

Timing convention, shared with the golden cycle models: cycle ``n`` is the clock period that
ends with rising edge ``n + 1`` after :meth:`CycleClock.start` (edge 1 is the first after
it). Every part writes its outputs just after a rising edge and samples the design in the
``ReadOnly`` phase of the same period, so a transfer recorded "in cycle n" completes at the
edge that ends cycle n.

The drivers are event-driven: the source sleeps while its queue is empty or the design is
not ready, the sink while nothing is offered, so the simulator, not Python, sets the pace of
a long run. Both are reset-aware: while ``rst`` is high they stop (``valid`` and ``ready``
low), drop what was in flight (the source its queue, the sink a result it had not taken)
and start their records afresh; they resume when ``rst`` falls.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from dataclasses import dataclass

import cocotb
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

__all__ = ["FLOW_PATTERNS", "PERIOD_PS", "STREAM_PATTERNS", "CycleClock", "StreamSink",
           "StreamSource", "Transfer", "trace_digest"]

PERIOD_PS = 10_000  # the benches' clock period

# name: (source idle probability per cycle between items, sink stall probability per cycle
# in which a result is offered)
FLOW_PATTERNS = {
    "full_rate": (0.0, 0.0),
    "idle": (0.4, 0.0),
    "backpressure": (0.0, 0.7),
    "idle_backpressure": (0.3, 0.9),
    "stalled_sink": (0.0, 0.995),  # results wait longer than a slow unit takes per item
}
# the patterns a bench runs unless it says otherwise
STREAM_PATTERNS = ("full_rate", "idle", "backpressure", "idle_backpressure")


class CycleClock:
    """Cycle numbers from simulation time, counted from :meth:`start` (call it in a timestep
    with a rising edge): read :attr:`now` in the ``ReadOnly`` phase."""

    def __init__(self, period_ps: int = PERIOD_PS):
        self.period_ps = period_ps
        self._t0 = 0

    def start(self) -> None:
        self._t0 = get_sim_time(unit="ps")

    @property
    def now(self) -> int:
        return int(get_sim_time(unit="ps") - self._t0) // self.period_ps


@dataclass(frozen=True)
class Transfer:
    payload: int | None  # None: the payload had unknown bits
    offered: int  # first cycle the item was valid
    taken: int  # cycle of the valid & ready handshake


def trace_digest(*streams: list[Transfer]) -> str:
    """SHA-256 of streams' transfers, every payload and cycle: two runs with equal digests
    saw the same values in the same cycles (Verilator against Icarus: docs/verification.md,
    "Determinism")."""
    h = hashlib.sha256()
    for i, transfers in enumerate(streams):
        for t in transfers:
            h.update(f"{i} {t.payload} {t.offered} {t.taken}\n".encode())
    return h.hexdigest()


class _StreamDriver:
    """One side of the stream ``<prefix>__valid/__ready/__payload`` of ``dut``, clocked by
    ``dut.clk``, drawing from ``rng``. Runs :meth:`_run` as a task while ``rst`` is low; a
    rising ``rst`` cancels it and calls :meth:`_on_reset`, a falling one starts it again."""

    def __init__(self, dut, prefix: str, clock: CycleClock, rng: random.Random | None, rst):
        self._clk = dut.clk
        self._valid, self._ready, self._payload = self._handles(dut, prefix)
        self._clock = clock
        self._rng = rng or random.Random(0)
        self._rst = rst
        self._task = None
        self.resets = 0

    def _handles(self, dut, prefix: str):
        """The ``valid``, ``ready`` and ``payload`` handles (an AXI driver names them its
        own way: :mod:`cimforge.verif.axi`)."""
        return (getattr(dut, f"{prefix}__valid"), getattr(dut, f"{prefix}__ready"),
                getattr(dut, f"{prefix}__payload"))

    def start(self) -> None:
        """Start driving (once, after the design's clock runs)."""
        if self._rst is None:
            self._task = cocotb.start_soon(self._run())
        else:
            cocotb.start_soon(self._watch())

    async def _watch(self) -> None:
        while True:
            if int(self._rst.value):
                await FallingEdge(self._rst)
            self._task = cocotb.start_soon(self._run())
            await RisingEdge(self._rst)
            self._task.cancel()
            self.resets += 1
            self._on_reset()

    async def _run(self) -> None:
        raise NotImplementedError

    def _on_reset(self) -> None:
        raise NotImplementedError


class StreamSource(_StreamDriver):
    """Drives ``<prefix>__valid``/``__payload`` from a queue of packed payloads.

    ``idle`` is the probability of each cycle with ``valid`` low between items (never while
    an item is offered: ``valid`` stays up until it is taken, as the stream rules require).
    :attr:`sent` records every transfer.
    """

    def __init__(self, dut, prefix: str, clock: CycleClock, *, idle: float = 0.0,
                 rng: random.Random | None = None, rst=None):
        super().__init__(dut, prefix, clock, rng, rst)
        self._idle = idle
        self._more = Event()
        self.queue: deque[int] = deque()
        self.sent: list[Transfer] = []
        self._valid.value = 0
        self._payload.value = 0

    def send(self, payloads) -> None:
        self.queue.extend(payloads)
        self._more.set()

    def _on_reset(self) -> None:
        self._valid.value = 0
        self.queue.clear()
        self.sent.clear()

    async def _run(self) -> None:
        clk = self._clk
        while True:
            if not self.queue:
                self._valid.value = 0
                self._more.clear()
                await self._more.wait()
                await RisingEdge(clk)
            gap = 0
            while self._idle and self._rng.random() < self._idle:
                gap += 1
            if gap:
                self._valid.value = 0
                await ClockCycles(clk, gap)
            payload = self.queue[0]
            self._payload.value = payload
            self._valid.value = 1
            offered = None
            while True:
                await ReadOnly()
                if offered is None:
                    offered = self._clock.now
                if int(self._ready.value):
                    break
                await RisingEdge(self._ready)  # sleep until the design can take it
            self.queue.popleft()
            self.sent.append(Transfer(payload, offered, self._clock.now))
            await RisingEdge(clk)


class StreamSink(_StreamDriver):
    """Takes items from ``<prefix>__valid``/``__payload``, holding ``ready`` low with
    probability ``stall`` in each cycle an item is offered. :attr:`received` records every
    transfer, :attr:`trace` ``(valid, ready)`` of every cycle an item was offered and
    :attr:`protocol_errors` what broke the stream rules (``valid`` dropped or the payload
    changed before the transfer, unknown bits)."""

    def __init__(self, dut, prefix: str, clock: CycleClock, *, stall: float = 0.0,
                 rng: random.Random | None = None, rst=None):
        super().__init__(dut, prefix, clock, rng, rst)
        self._stall = stall
        self.received: list[Transfer] = []
        self.protocol_errors: list[str] = []
        self.trace: dict[int, tuple[int, int]] = {}
        self._want = 0
        self._enough = Event()
        self._ready.value = 0

    def ready_in(self, cycle: int) -> bool:
        """``ready`` in ``cycle`` as recorded. A cycle nothing was offered in reads as ready
        (the sink, asleep, left ``ready`` as it last drew it): the cycle models consult the
        sink's ``ready`` only in cycles a result is offered, as a stream unit may."""
        return bool(self.trace.get(cycle, (0, 1))[1])

    async def wait_for(self, n: int, timeout_cycles: int) -> bool:
        """Wait until ``n`` items have been received or ``timeout_cycles`` have passed (one
        simulator callback, not one per cycle); returns whether they were."""
        if len(self.received) < n:
            self._want = n
            self._enough.clear()
            await First(self._enough.wait(),
                        Timer(timeout_cycles * self._clock.period_ps, unit="ps"))
        return len(self.received) >= n

    def _on_reset(self) -> None:
        self._ready.value = 0
        self.received.clear()
        self.protocol_errors.clear()
        self.trace.clear()

    async def _run(self) -> None:
        offered_at = held = None
        while True:
            ready = not (self._stall and self._rng.random() < self._stall)
            self._ready.value = int(ready)
            await ReadOnly()
            now = self._clock.now
            valid = self._valid.value
            if not (valid.is_resolvable and int(valid)):
                if offered_at is not None:
                    self.protocol_errors.append(f"cycle {now}: valid dropped before transfer")
                offered_at = None
                await RisingEdge(self._valid)  # sleep until something is offered
                continue
            self.trace[now] = (1, int(ready))
            raw = self._payload.value
            payload = int(raw) if raw.is_resolvable else None
            if payload is None:
                self.protocol_errors.append(f"cycle {now}: payload with unknown bits: {raw}")
            if offered_at is None:
                offered_at, held = now, payload
            elif payload != held:
                self.protocol_errors.append(f"cycle {now}: payload changed while not taken")
            if ready:
                self.received.append(Transfer(payload, offered_at, now))
                offered_at = None
                if len(self.received) >= self._want:
                    self._enough.set()
            await RisingEdge(self._clk)
