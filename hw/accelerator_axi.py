"""The accelerator top: the core (``hw/accelerator.py``) behind AXI4-Lite and AXI4-Stream
ports (docs/hw-accelerator.md, "Host interface").

AXI4-Lite (32-bit data, byte addresses, ``4 x`` the register map's word addresses): one
transaction at a time. A write needs its address and data (both held until taken); it is
answered OKAY, or SLVERR when nothing writable is at the address -- a read-only control
register counts as nothing (ERROR bit ``bad_address`` is set) -- or when it targets a
parameter or tile region while a sequence is in progress (the write is dropped, ERROR bit
``busy_write`` set). Reads answer the control region's registers; anything else reads 0 with
SLVERR (the parameter regions are write-only). Byte strobes are ignored: every write writes
the whole word. An accepted parameter or tile-register write reaches its block's registers two
cycles after (registered here, then in its region's port); ``s_axis`` takes no beat in those
two cycles.

AXI4-Stream: ``s_axis`` (token codes in) and ``m_axis`` (hidden states out), ``tdata`` of
``accelerator.stream_bits``, ``tlast`` on a sequence's last beat; no TKEEP, TSTRB, TID, TDEST
or TUSER (every byte is data; a token's last beat is padded with zero codes).

Weight programming: a write of 1 to ``PROGRAM`` (refused like a parameter write while a
sequence is in progress, or while programming) makes the next ``s_axis`` packet the weight
image, which the :class:`~cimforge.hw.weight_programmer.WeightProgrammer` writes into the
crossbars through their ``prog<u>`` ports. While it does, and until every crossbar's last
program-and-verify is over, ``STATUS`` bit 2 is set and ``s_axis`` takes no token.
``PROG_CYCLES`` counts from the image's first beat to the last busy cycle.
"""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimforge.config import Config
from cimforge.golden.accel_program import ProgramFormat
from cimforge.golden.accel_regmap import CONTROL, ERROR_BITS, ID
from cimforge.hw.accelerator import ERRORS, AcceleratorCore
from cimforge.hw.crossbar_shell import prog_signature, shell_signature
from cimforge.hw.transformer_layer import unit_spec
from cimforge.hw.weight_programmer import WeightProgrammer

__all__ = ["Accelerator"]


class Accelerator(wiring.Component):
    """The accelerator of ``cfg`` with its host ports (see the module docstring).

    Members
    -------
    s_axil_* : the AXI4-Lite slave (``awaddr awvalid awready wdata wstrb wvalid wready bresp
        bvalid bready araddr arvalid arready rdata rresp rvalid rready``)
    s_axis_tdata, s_axis_tlast, s_axis_tvalid, s_axis_tready : token codes in
    m_axis_tdata, m_axis_tlast, m_axis_tvalid, m_axis_tready : hidden states out
    xbar<u> : Out(shell_signature(...))
        The crossbar shell of every tile unit (the analog macros).
    prog<u> : Out(prog_signature(...))
        The programming port of every tile unit's macro.
    """

    def __init__(self, cfg: Config, digest: int = 0):
        self._core = core = AcceleratorCore(cfg)
        self.cfg, self.mapping, self.regmap = cfg, core.mapping, core.regmap
        self.digest = digest
        self.addr_bits = self.regmap.addr_bits + 2
        sb = cfg.accelerator.stream_bits
        members = {
            "s_axil_awaddr": In(self.addr_bits), "s_axil_awvalid": In(1),
            "s_axil_awready": Out(1), "s_axil_wdata": In(32), "s_axil_wstrb": In(4),
            "s_axil_wvalid": In(1), "s_axil_wready": Out(1), "s_axil_bresp": Out(2),
            "s_axil_bvalid": Out(1), "s_axil_bready": In(1),
            "s_axil_araddr": In(self.addr_bits), "s_axil_arvalid": In(1),
            "s_axil_arready": Out(1), "s_axil_rdata": Out(32), "s_axil_rresp": Out(2),
            "s_axil_rvalid": Out(1), "s_axil_rready": In(1),
            "s_axis_tdata": In(sb), "s_axis_tlast": In(1), "s_axis_tvalid": In(1),
            "s_axis_tready": Out(1),
            "m_axis_tdata": Out(sb), "m_axis_tlast": Out(1), "m_axis_tvalid": Out(1),
            "m_axis_tready": In(1),
        }
        for u in self.mapping.units:
            members[f"xbar{u.index}"] = Out(shell_signature(unit_spec(cfg, u)))
        for u in self.mapping.units:
            members[f"prog{u.index}"] = Out(prog_signature(unit_spec(cfg, u)))
        self._programmer = WeightProgrammer(ProgramFormat(self.mapping))
        super().__init__(members)

    @property
    def core(self) -> AcceleratorCore:
        return self._core

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self._core
        for u in self.mapping.units:
            wiring.connect(m, getattr(core, f"xbar{u.index}"),
                           wiring.flipped(getattr(self, f"xbar{u.index}")))

        # -- weight programming -------------------------------------------------------------------
        m.submodules.programmer = prog = self._programmer
        xbars_busy = Const(0)
        for u in self.mapping.units:
            port = getattr(self, f"prog{u.index}")
            wiring.connect(m, getattr(prog, f"prog{u.index}"), wiring.flipped(port))
            xbars_busy |= port.busy.any()
        programming = Signal()
        param_we = Signal()  # a parameter write on its way to the core (below)
        param_landing = Signal()  # ... and in its region's check (transformer_layer.region_port)
        m.d.comb += programming.eq(prog.active | xbars_busy)
        prog_cycles = Signal(32)
        prog_counting = Signal()
        with m.If(prog.i_stream.valid & prog.i_stream.ready & ~prog_counting):
            m.d.sync += [prog_cycles.eq(1), prog_counting.eq(1)]
        with m.Elif(prog_counting & programming):
            m.d.sync += prog_cycles.eq(prog_cycles + 1)
        with m.Elif(~programming):
            m.d.sync += prog_counting.eq(0)

        # -- streams: the image to the programmer, tokens to the core ---------------------------
        m.d.comb += [prog.i_stream.valid.eq(self.s_axis_tvalid & prog.active),
                     prog.i_stream.payload.data.eq(self.s_axis_tdata),
                     prog.i_stream.payload.last.eq(self.s_axis_tlast),
                     core.i_stream.valid.eq(self.s_axis_tvalid & ~programming & ~param_we
                                            & ~param_landing),
                     core.i_stream.payload.data.eq(self.s_axis_tdata),
                     core.i_stream.payload.last.eq(self.s_axis_tlast),
                     self.s_axis_tready.eq(Mux(prog.active, prog.i_stream.ready,
                                               core.i_stream.ready & ~programming
                                               & ~param_we & ~param_landing)),
                     self.m_axis_tvalid.eq(core.o_stream.valid),
                     self.m_axis_tdata.eq(core.o_stream.payload.data),
                     self.m_axis_tlast.eq(core.o_stream.payload.last),
                     core.o_stream.ready.eq(self.m_axis_tready)]

        # -- performance counter: first beat in to last beat out --------------------------------
        cycles = Signal(32)
        counting = Signal()
        first_in = core.i_stream.valid & core.i_stream.ready & ~core.busy & ~counting
        last_out = self.m_axis_tvalid & self.m_axis_tready & self.m_axis_tlast
        with m.If(first_in):
            m.d.sync += [cycles.eq(1), counting.eq(1)]
        with m.Elif(counting):
            m.d.sync += cycles.eq(cycles + 1)
            with m.If(last_out):
                m.d.sync += counting.eq(0)

        # -- AXI4-Lite writes ---------------------------------------------------------------------
        regmap = self.regmap
        control = regmap.region("control")
        error = Signal(len(ERROR_BITS))
        bvalid, bresp = Signal(), Signal(2)
        m.d.comb += [self.s_axil_bvalid.eq(bvalid), self.s_axil_bresp.eq(bresp)]
        write = self.s_axil_awvalid & self.s_axil_wvalid & ~bvalid
        m.d.comb += [self.s_axil_awready.eq(write), self.s_axil_wready.eq(write)]
        word = self.s_axil_awaddr[2:]
        mapped = Const(0)
        for r in regmap.regions:
            if r.kind != "control":
                mapped |= (word >= r.base) & (word < r.end) if r.base else word < r.end
        in_control = (word >= control.base) & (word < control.end)
        error_word = control.base + CONTROL["error"][0]
        busy = core.busy
        accepted = write & mapped & ~busy
        # an accepted parameter write is registered here, then its region's check, then its
        # region's port beside its block (transformer_layer.region_port), and reaches the
        # block's registers three cycles after (no register's write decode hangs on the
        # address check or on the fan-out to every region). s_axis takes no beat while it is
        # on the shared port or in its region's check: a beat taken after that is written
        # into the input buffer no sooner than the cycle the write lands, and no block reads
        # a parameter before a whole row is in
        m.d.sync += [core.param.addr.eq(word), core.param.data.eq(self.s_axil_wdata),
                     param_we.eq(accepted), param_landing.eq(param_we)]
        m.d.comb += core.param.we.eq(param_we)
        events = Signal(len(ERROR_BITS))
        m.d.comb += [events[ERROR_BITS["kv_overflow"]].eq(core.errors[ERRORS["kv_overflow"]]),
                     events[ERROR_BITS["tlast"]].eq(core.errors[ERRORS["tlast"]]
                                                    | prog.tlast_error)]
        clear = Signal(len(ERROR_BITS))
        program_word = control.base + CONTROL["program"][0]
        kv_clear_word = control.base + CONTROL["kv_clear"][0]
        with m.If(write):
            m.d.sync += [bvalid.eq(1), bresp.eq(0)]
            with m.If(in_control):
                with m.If(word == error_word):
                    m.d.comb += clear.eq(self.s_axil_wdata)
                with m.Elif(word == program_word):
                    with m.If(busy | programming):
                        m.d.sync += bresp.eq(0b10)
                        m.d.comb += events[ERROR_BITS["busy_write"]].eq(1)
                    with m.Else():
                        m.d.comb += prog.start.eq(self.s_axil_wdata[0])
                with m.Elif(word == kv_clear_word):
                    with m.If(busy):
                        m.d.sync += bresp.eq(0b10)
                        m.d.comb += events[ERROR_BITS["busy_write"]].eq(1)
                    with m.Else():
                        m.d.comb += core.kv_clear.eq(self.s_axil_wdata[0])
                with m.Else():  # a read-only register, or no register at all
                    m.d.sync += bresp.eq(0b10)
                    m.d.comb += events[ERROR_BITS["bad_address"]].eq(1)
            with m.Elif(mapped & busy):
                m.d.sync += bresp.eq(0b10)
                m.d.comb += events[ERROR_BITS["busy_write"]].eq(1)
            with m.Elif(~mapped):
                m.d.sync += bresp.eq(0b10)
                m.d.comb += events[ERROR_BITS["bad_address"]].eq(1)
        with m.If(bvalid & self.s_axil_bready):
            m.d.sync += bvalid.eq(0)
        m.d.sync += error.eq((error & ~clear) | events)

        # -- AXI4-Lite reads -----------------------------------------------------------------------
        rvalid, rdata, rresp = Signal(), Signal(32), Signal(2)
        m.d.comb += [self.s_axil_rvalid.eq(rvalid), self.s_axil_rdata.eq(rdata),
                     self.s_axil_rresp.eq(rresp), self.s_axil_arready.eq(~rvalid)]
        rword = self.s_axil_araddr[2:]
        kv_full = core.kv_len == self._core.specs.tokens
        values = {"id": ID, "config": self.digest & 0xFFFFFFFF,
                  "status": (core.busy | (error.any() << 1) | (programming << 2)
                             | (kv_full << 3)),
                  "error": error, "tokens": core.tokens, "cycles": cycles, "program": 0,
                  "prog_cycles": prog_cycles, "kv_tokens": core.kv_len, "kv_clear": 0}
        with m.If(self.s_axil_arvalid & ~rvalid):
            m.d.sync += [rvalid.eq(1), rdata.eq(0), rresp.eq(0b10)]
            for name, (offset, _, _) in CONTROL.items():
                with m.If(rword == control.base + offset):
                    m.d.sync += [rdata.eq(values[name]), rresp.eq(0)]
        with m.If(rvalid & self.s_axil_rready):
            m.d.sync += rvalid.eq(0)
        return m
