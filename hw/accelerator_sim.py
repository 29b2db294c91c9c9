"""Simulation top of the accelerator: the core with the behavioural crossbar model
(:class:`cimforge.hw.crossbar_shell.CrossbarModel`) on every tile unit's shell, each model's
analog side and the shell inputs its adapter reads brought out to ports."""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimforge.config import Config
from cimforge.hw.accelerator import AcceleratorCore
from cimforge.hw.accelerator_axi import Accelerator
from cimforge.hw.analog_tile_sim import PROBED
from cimforge.hw.crossbar_shell import CrossbarModel, shell_signature
from cimforge.hw.encoder_layer import unit_spec

__all__ = ["AcceleratorSim"]


class AcceleratorSim(wiring.Component):
    """The accelerator -- :class:`~cimforge.hw.accelerator_axi.Accelerator` with its AXI ports,
    or with ``axi=False`` the bare :class:`~cimforge.hw.accelerator.AcceleratorCore` -- with a
    crossbar model per tile unit ``u``: ports ``a_value<u>`` (the model's analog side) and
    ``probe<u>_<pin>`` (copies of the shell inputs the analog adapter reads), besides the
    top's own ports."""

    def __init__(self, cfg: Config, *, axi: bool = False, digest: int = 0):
        self._core = core = Accelerator(cfg, digest) if axi else AcceleratorCore(cfg)
        self.mapping, self.regmap = core.mapping, core.regmap
        members = {name: member for name, member in core.signature.members.items()
                   if not name.startswith("xbar")}
        self._models = {}
        for u in core.mapping.units:
            spec = unit_spec(cfg, u)
            model = self._models[u.index] = CrossbarModel(spec)
            members[f"a_value{u.index}"] = In(model.signature.members["a_value"].shape)
            shell = shell_signature(spec).members
            for pin in PROBED:
                if pin in shell:
                    members[f"probe{u.index}_{pin}"] = Out(shell[pin].shape)
        super().__init__(members)

    @property
    def core(self) -> Accelerator | AcceleratorCore:
        return self._core

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        for name in self.signature.members:
            if name.startswith(("a_value", "probe")):
                continue
            member = getattr(core, name)
            if isinstance(member, wiring.PureInterface) or hasattr(member, "signature"):
                flow = self.signature.members[name].flow
                if flow == In:
                    wiring.connect(m, wiring.flipped(getattr(self, name)), member)
                else:
                    wiring.connect(m, member, wiring.flipped(getattr(self, name)))
            elif self.signature.members[name].flow == In:
                m.d.comb += member.eq(getattr(self, name))
            else:
                m.d.comb += getattr(self, name).eq(member)
        for index, model in self._models.items():
            m.submodules[f"xbar_model{index}"] = model
            xbar = getattr(core, f"xbar{index}")
            wiring.connect(m, xbar, model.xbar)
            m.d.comb += model.a_value.eq(getattr(self, f"a_value{index}"))
            for pin in PROBED:
                if hasattr(self, f"probe{index}_{pin}"):
                    m.d.comb += getattr(self, f"probe{index}_{pin}").eq(getattr(xbar, pin))
        return m
