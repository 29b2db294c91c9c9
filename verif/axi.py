"""The smallest AXI drivers the accelerator's bench needs, on cocotb 2.1.

Why not cocotbext-axi (0.1.28, its latest release; checked under cocotb 2.1 here, with Icarus
and Verilator): its AXI4-Lite and AXI4-Stream models do work, but (1) its stream objects crash
on a handshake signal that is X (cocotb 2 raises where cocotb 1 read False), which Icarus
gives before reset unless they are made after it; (2) they record no cycle numbers, and this
bench checks every beat at the cycle the golden model predicts, so it would need our stream
drivers anyway; (3) its dword helpers drop SLVERR (a failed read returns the error data), and
the bench checks error responses; (4) it relies on cocotb 1.x idioms (``Task.kill``, data on
``Event``) that cocotb 2 deprecates. docs/hw-accelerator.md says the same.

* :class:`AxiLiteMaster`: one transaction at a time; address and data offered together,
  each held until taken; ``bready``/``rready`` high.
* :class:`AxisSource` / :class:`AxisSink`: the event-driven stream drivers of
  :mod:`cimforge.verif.streams` on ``<prefix>_tvalid/_tready`` with ``tdata`` and ``tlast``
  as one packed payload (``tdata`` low, ``tlast`` above it).
"""

from __future__ import annotations

from cocotb.triggers import ReadOnly, RisingEdge

from cimforge.verif.streams import StreamSink, StreamSource

__all__ = ["AxiLiteMaster", "AxisSink", "AxisSource", "OKAY", "SLVERR"]

OKAY, SLVERR = 0, 2


class AxiLiteMaster:
    """Drives ``<prefix>_aw* w* b* ar* r*`` of ``dut`` (clock ``dut.clk``)."""

    def __init__(self, dut, prefix: str = "s_axil"):
        self.dut = dut
        self._s = lambda name: getattr(dut, f"{prefix}_{name}")
        for name in ("awvalid", "wvalid", "arvalid", "awaddr", "wdata", "araddr"):
            self._s(name).value = 0
        self._s("wstrb").value = 0xF
        self._s("bready").value = 1
        self._s("rready").value = 1

    async def _handshake(self, valids: list[str]) -> None:
        """Hold the ``valids`` up until each is taken (its ``ready`` high at an edge)."""
        waiting = set(valids)
        for v in waiting:
            self._s(v).value = 1
        while waiting:
            await ReadOnly()
            taken = {v for v in waiting if int(self._s(v.replace("valid", "ready")).value)}
            await RisingEdge(self.dut.clk)
            for v in taken:
                self._s(v).value = 0
            waiting -= taken

    async def _response(self, valid: str) -> None:
        while True:
            await ReadOnly()
            if int(self._s(valid).value):
                return
            await RisingEdge(self.dut.clk)

    async def write(self, addr: int, data: int) -> int:
        """Write 32-bit ``data`` to byte address ``addr``; returns the response (OKAY 0,
        SLVERR 2)."""
        self._s("awaddr").value = addr
        self._s("wdata").value = data & 0xFFFFFFFF
        await self._handshake(["awvalid", "wvalid"])
        await self._response("bvalid")
        resp = int(self._s("bresp").value)
        await RisingEdge(self.dut.clk)
        return resp

    async def read(self, addr: int) -> tuple[int, int]:
        """Read byte address ``addr``: (data, response)."""
        self._s("araddr").value = addr
        await self._handshake(["arvalid"])
        await self._response("rvalid")
        data, resp = int(self._s("rdata").value), int(self._s("rresp").value)
        await RisingEdge(self.dut.clk)
        return data, resp


class _Packed:
    """``tdata`` and ``tlast`` read and written as one value (``tlast`` above ``tdata``)."""

    class _Value:
        def __init__(self, data, last, width):
            self.data, self.last, self.width = data, last, width

        @property
        def is_resolvable(self) -> bool:
            return self.data.is_resolvable and self.last.is_resolvable

        def __int__(self) -> int:
            return int(self.data) | int(self.last) << self.width

        def __str__(self) -> str:
            return f"tdata={self.data} tlast={self.last}"

    def __init__(self, dut, prefix: str):
        self._data = getattr(dut, f"{prefix}_tdata")
        self._last = getattr(dut, f"{prefix}_tlast")
        self.width = len(self._data)

    @property
    def value(self):
        return self._Value(self._data.value, self._last.value, self.width)

    @value.setter
    def value(self, v: int) -> None:
        self._data.value = v & ((1 << self.width) - 1)
        self._last.value = (v >> self.width) & 1


class _Axis:
    """What turns a stream driver into an AXI4-Stream one: the handles."""

    def _handles(self, dut, prefix: str):
        return (getattr(dut, f"{prefix}_tvalid"), getattr(dut, f"{prefix}_tready"),
                _Packed(dut, prefix))


class AxisSource(_Axis, StreamSource):
    """Beats ``(tdata | tlast << width)`` from a queue, as :class:`StreamSource`."""


class AxisSink(_Axis, StreamSink):
    """Takes beats, as :class:`StreamSink`; payloads are ``tdata | tlast << width``."""
