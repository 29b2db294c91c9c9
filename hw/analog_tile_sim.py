"""Simulation top of the analog tile unit: the digital tile with the crossbar model in place
of the hard macro, the model's analog side and the shell's inputs brought out to ports for
the bench's analog adapter."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from cimforge.golden.analog_tile import AnalogTileSpec
from cimforge.hw.analog_tile import AnalogTile, csr_signature, input_layout, result_layout
from cimforge.hw.crossbar_shell import CrossbarModel, shell_signature

__all__ = ["AnalogTileSim"]

# shell inputs the analog adapter reads (offset_trim: SAR ADCs only)
PROBED = ("wl", "sample", "gain", "range_exp", "offset_trim")


class AnalogTileSim(wiring.Component):
    """:class:`cimforge.hw.analog_tile.AnalogTile` wired to
    :class:`cimforge.hw.crossbar_shell.CrossbarModel`.

    Members
    -------
    i_stream, o_stream, csr
        As :class:`~cimforge.hw.analog_tile.AnalogTile`.
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
        wiring.connect(m, tile.o_stream, wiring.flipped(self.o_stream))
        wiring.connect(m, wiring.flipped(self.csr), tile.csr)
        m.d.comb += model.a_value.eq(self.a_value)
        for name in PROBED:
            if name in tile.xbar.signature.members:
                m.d.comb += getattr(self, f"probe_{name}").eq(getattr(tile.xbar, name))
        return m

