"""Simulation top of the accelerator: the core with the behavioural crossbar model
(:class:`cimforge.hw.crossbar_shell.CrossbarModel`) on every tile unit's shell, each model's
analog side and the shell inputs its adapter reads brought out to ports."""

from __future__ import annotations

from amaranth import ClockDomain, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimforge.config import Config
from cimforge.golden.accel_program import cycles_per_row
from cimforge.hw.accelerator import AcceleratorCore
from cimforge.hw.accelerator_axi import Accelerator
from cimforge.hw.analog_tile_sim import PROBED
from cimforge.hw.crossbar_shell import CrossbarModel, prog_signature, shell_signature
from cimforge.hw.transformer_layer import unit_spec

__all__ = ["AcceleratorSim"]


class AcceleratorSim(wiring.Component):
    """The accelerator -- :class:`~cimforge.hw.accelerator_axi.Accelerator` with its AXI ports,
    or with ``axi=False`` the bare :class:`~cimforge.hw.accelerator.AcceleratorCore` -- with a
    crossbar model per tile unit ``u``: ports ``a_value<u>`` (the model's analog side) and
    ``probe<u>_<pin>`` (copies of the shell inputs the analog adapter reads) and, with
    ``axi``, ``probe<u>_prog_<pin>`` (what the programming port carries; the model keeps each
    crossbar busy for :func:`~cimforge.golden.accel_program.cycles_per_row` cycles after a
    write), besides the top's own ports. With ``vpi_analog`` there are no ``a_value`` ports:
    each model's analog side is its :data:`~cimforge.hw.crossbar_shell.ANALOG_SOURCE`
    (``xbar_model<u>.analog.held``), written by the bench through VPI -- the generated
    Verilog's way, since a MiniLM layer's analog values exceed what a top's ports may carry.

    With ``registered_reset`` the top has explicit ``clk`` and ``rst`` ports and the design's
    reset is ``rst`` registered once (it takes effect, and releases, one cycle later). For
    Verilator, which re-evaluates at every eval the logic that depends combinationally on a
    top input: the reset reaches every register's next-state logic, so it enters through a
    register and that logic stays out of the per-eval region."""

    def __init__(self, cfg: Config, *, axi: bool = False, digest: int = 0,
                 vpi_analog: bool = False, registered_reset: bool = False):
        self._core = core = Accelerator(cfg, digest) if axi else AcceleratorCore(cfg)
        self.mapping, self.regmap = core.mapping, core.regmap
        members = {name: member for name, member in core.signature.members.items()
                   if not name.startswith(("xbar", "prog"))}
        self._registered_reset = registered_reset
        if registered_reset:
            members.update(clk=In(1), rst=In(1))
        self._models = {}
        prog_cycles = cycles_per_row(cfg) if axi else None
        for u in core.mapping.units:
            spec = unit_spec(cfg, u)
            model = self._models[u.index] = CrossbarModel(spec, prog_cycles, vpi_analog)
            if not vpi_analog:
                members[f"a_value{u.index}"] = In(model.signature.members["a_value"].shape)
            shell = shell_signature(spec).members
            for pin in PROBED:
                if pin in shell:
                    members[f"probe{u.index}_{pin}"] = Out(shell[pin].shape)
            if axi:  # what the programming port carries, for the bench's level capture
                for pin, member in prog_signature(spec).members.items():
                    if member.flow == Out:
                        members[f"probe{u.index}_prog_{pin}"] = Out(member.shape)
        super().__init__(members)

    @property
    def core(self) -> Accelerator | AcceleratorCore:
        return self._core

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        if self._registered_reset:
            m.domains.sync = sync = ClockDomain()
            m.domains.reset_stage = stage = ClockDomain(reset_less=True, local=True)
            # init 0: the first edge with rst high changes it, which wakes every `always @*`
            # in Icarus (it runs none at time 0 whose inputs never change)
            held = Signal(init=0)
            m.d.comb += [sync.clk.eq(self.clk), stage.clk.eq(self.clk), sync.rst.eq(held)]
            m.d.reset_stage += held.eq(self.rst)
        for name in self.signature.members:
            if name.startswith(("a_value", "probe", "prog")) or name in ("clk", "rst"):
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
            if hasattr(self, f"a_value{index}"):
                m.d.comb += model.a_value.eq(getattr(self, f"a_value{index}"))
            for pin in PROBED:
                if hasattr(self, f"probe{index}_{pin}"):
                    m.d.comb += getattr(self, f"probe{index}_{pin}").eq(getattr(xbar, pin))
            if hasattr(core, f"prog{index}"):
                prog = getattr(core, f"prog{index}")
                wiring.connect(m, prog, model.prog)
                for pin, member in prog.signature.members.items():
                    if member.flow == Out:
                        m.d.comb += getattr(self, f"probe{index}_prog_{pin}").eq(
                            getattr(prog, pin))
        return m
