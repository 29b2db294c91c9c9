"""Simulation top of the analog tile unit: the digital tile with the crossbar model in place
of the hard macro, the model's analog side and the shell's inputs brought out to ports for
the bench's analog adapter, and a result collector that reads every channel of a result and
offers it whole on a stream."""

from __future__ import annotations

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from cimforge.golden.analog_tile import AnalogTileSpec
from cimforge.hw.analog_tile import AnalogTile, csr_signature, input_layout
from cimforge.hw.crossbar_shell import CrossbarModel, shell_signature
from cimforge.hw.numerics import PackedArray

__all__ = ["AnalogTileSim", "result_layout"]

# shell inputs the analog adapter reads (offset_trim: SAR ADCs only)
PROBED = ("wl", "sample", "gain", "range_exp", "offset_trim")


def result_layout(spec: AnalogTileSpec) -> PackedArray:
    """A whole result on the collector's stream: ``outputs`` signed ``acc_bits`` values
    (channel ``c * channels_per_tile + h`` is channel ``h`` of column tile ``c``)."""
    return PackedArray(signed(spec.acc_bits), spec.outputs)


class AnalogTileSim(wiring.Component):
    """:class:`cimforge.hw.analog_tile.AnalogTile` wired to
    :class:`cimforge.hw.crossbar_shell.CrossbarModel`.

    Members
    -------
    i_stream, csr
        As :class:`~cimforge.hw.analog_tile.AnalogTile`.
    o_stream : Out(stream.Signature(result_layout(spec)))
        Whole results: the collector reads a valid result's channels one per cycle (once its
        stream buffer is empty), releases it and offers it here
        (:meth:`cimforge.golden.analog_tile.AnalogTileTiming.collected`).
    a_value : In
        The crossbar model's analog side (see :class:`~cimforge.hw.crossbar_shell.CrossbarModel`).
    probe_wl, probe_sample, probe_gain, probe_range_exp, probe_offset_trim (SAR) : Out
        Copies of the shell inputs of those names, for the adapter.
    """

    def __init__(self, spec: AnalogTileSpec):
        self._spec = spec
        self._tile = AnalogTile(spec)
        self._model = CrossbarModel(spec)
        shell = shell_signature(spec).members
        super().__init__({
            "i_stream": In(stream.Signature(input_layout(spec))),
            "o_stream": Out(stream.Signature(result_layout(spec))),
            "csr": In(csr_signature()),
            "a_value": In(self._model.signature.members["a_value"].shape),
            **{f"probe_{name}": Out(shell[name].shape) for name in PROBED if name in shell},
        })

    @property
    def spec(self) -> AnalogTileSpec:
        return self._spec

    @property
    def timing(self):
        return self._tile.timing

    def elaborate(self, platform):
        m = Module()
        m.submodules.tile = tile = self._tile
        m.submodules.model = model = self._model
        wiring.connect(m, tile.xbar, model.xbar)
        wiring.connect(m, wiring.flipped(self.i_stream), tile.i_stream)
        # the collector: channel i read in the i-th cycle, shifted in from the top as it
        # arrives, RESULT_DEPTH cycles later (the result port never stalled)
        spec, r, o = self._spec, tile.result, self.o_stream
        n, w = spec.outputs, spec.acc_bits
        depth = self._tile.timing.RESULT_DEPTH
        reading = Signal()
        index = Signal(range(n + 1))
        # reads in flight: in_flight[k] the read of k + 1 cycles ago; the last is on r.data
        in_flight = [Signal(name=f"in_flight{k}") for k in range(depth)]
        lasts = [Signal(name=f"last{k}") for k in range(depth)]
        arrived, last = in_flight[-1], lasts[-1]
        held = Signal(n * w)
        start = r.valid & ~reading & ~Cat(*in_flight).any() & ~o.valid
        m.d.comb += [r.en.eq(start | reading), r.addr.eq(index),
                     r.release.eq(arrived & last), o.payload.eq(held)]
        m.d.sync += [in_flight[0].eq(r.en), lasts[0].eq(r.en & (index == n - 1))]
        m.d.sync += [in_flight[k].eq(in_flight[k - 1]) for k in range(1, depth)]
        m.d.sync += [lasts[k].eq(lasts[k - 1]) for k in range(1, depth)]
        with m.If(r.en):
            m.d.sync += [index.eq(index + 1), reading.eq(index != n - 1)]
        with m.If(r.release):
            m.d.sync += index.eq(0)
        with m.If(arrived):
            m.d.sync += held.eq(Cat(held[w:], r.data) if n > 1 else r.data)
        with m.If(r.release):
            m.d.sync += o.valid.eq(1)
        with m.Elif(o.ready):
            m.d.sync += o.valid.eq(0)
        wiring.connect(m, wiring.flipped(self.csr), tile.csr)
        m.d.comb += model.a_value.eq(self.a_value)
        for name in PROBED:
            if name in tile.xbar.signature.members:
                m.d.comb += getattr(self, f"probe_{name}").eq(getattr(tile.xbar, name))
        return m

