"""The crossbar shell: the pins of the analog hard macro, and its behavioural model for
simulation.

The analog part of a tile unit -- the ``row_tiles x col_tiles`` crossbars, their
sample-and-hold banks, the ADCs' analog front ends (capacitive DAC and comparator of a SAR ADC,
the comparator ladder of a flash ADC) -- is one hard macro. :func:`shell_signature` lists its
pins as the digital tile (``hw/analog_tile.py``) sees them; for synthesis the macro is a black
box at the tile's ``xbar`` port (and the programmer's ``prog`` port: pins ``prog_<pin>``).

Pins (``Out``: driven by the digital tile):

``wl`` : Out, ``inputs`` x ``dac_bits``
    Word-line drive of every input row (a DAC step, 0 .. 2^dac_bits - 1); 0 outside the read.
``sample``, ``sample_bank`` : Out, 1 each
    Sample strobe: the bit lines of every column, with ``wl`` applied in this cycle, are
    sampled at the end of the cycle into sample-and-hold bank ``sample_bank`` (two banks, so
    one is converted while the other samples the next read).
``conv_bank``, ``col_sel`` : Out, 1 and range(cols_per_adc)
    The bank and the column (within each ADC's ``cols_per_adc``) the ADCs convert this cycle.
``gain`` : Out, ``col_tiles`` x 16, unsigned 4.12
    ADC gain trim (reference scaling) of each column tile.
``range_exp`` : Out, ``weight_slices`` x ``RANGE_EXP_BITS``, signed
    ADC range of each weight slice: the LSB is ``2^e`` conductance levels.
``trial`` : Out, ``col_tiles * adcs_per_tile`` x ``adc_bits`` (SAR only)
    Trial code of every SAR ADC's capacitive DAC this cycle.
``offset_trim`` : Out, ``col_tiles * adcs_per_tile`` x ``OFFSET_TRIM_BITS``, signed (SAR only)
    Comparator offset trim of every SAR ADC, in 1/16 LSB (register).
``decision`` : In, ``col_tiles * adcs_per_tile`` bits (SAR only)
    Comparator decisions, valid in the same cycle: held value >= trial code.
``thermo`` : In, ``col_tiles * adcs_per_tile`` x ``2^adc_bits - 1`` (flash only)
    Thermometer outputs of every flash ADC's comparators for the selected column.

The programming port (:func:`prog_signature`, a pin group of its own: the accelerator's weight
programmer drives it, not the digital tile):

``strobe`` : Out, 1
    Write ``levels`` into row ``row`` of crossbar ``xbar`` (row tile ``xbar // col_tiles``,
    column tile ``xbar % col_tiles``) with the macro's program-and-verify loop; only while
    that crossbar's ``busy`` is low.
``xbar``, ``row`` : Out
    Which crossbar and row.
``levels`` : Out, ``cols`` x ``bits_per_cell``
    The target level of every cell of the row (column ``j`` of the crossbar: element ``j``).
``busy`` : In, one bit per crossbar
    High while the crossbar's program-and-verify runs (from the cycle after the strobe, for
    :func:`cimforge.golden.accel_program.cycles_per_row` cycles).

:class:`CrossbarModel` is the behavioural model the benches use in place of the macro: its two
banks hold, per column, what the ADC makes of the sampled value -- the final code (SAR: the
comparator decides ``code >= trial``, which is exactly the analog comparison for every trial a
binary search makes) or the thermometer word (flash) -- loaded from its ``a_value`` port in a
sample cycle. The analog adapter of the bench computes ``a_value`` with the golden crossbar
model (:mod:`cimforge.golden.cim`), read by read. In a large design the analog values do not
fit the top's ports (Amaranth caps a top's inputs at 65,536 bits; a MiniLM layer's crossbars
have 184k bits of held codes): there ``a_value`` comes from an :data:`ANALOG_SOURCE` instance
inside the model, whose register ``held`` the bench writes through VPI. On the programming
port the model keeps each crossbar's ``busy`` for ``prog_cycles`` cycles after a strobe; what
the strobes carry is read by the bench (:class:`cimforge.golden.accel_program.LevelCapture`),
which builds the crossbars' conductances from it with golden's programming effects.
"""

from __future__ import annotations

from amaranth import Cat, Instance, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimforge.golden.analog_tile import AnalogTileSpec
from cimforge.golden.cim import OFFSET_TRIM_BITS, RANGE_EXP_BITS, SCALE_BITS
from cimforge.hw.numerics import PackedArray

__all__ = ["ANALOG_SOURCE", "analog_source_verilog", "shell_signature", "prog_signature",
           "analog_value_bits", "blackbox_verilog", "CrossbarModel"]

ANALOG_SOURCE = "cimforge_analog_source"


def analog_source_verilog() -> str:
    """The Verilog of :data:`ANALOG_SOURCE` (simulation only): a register no logic drives,
    written by the bench through VPI, on the output ``value`` (public for Verilator, which
    builds the accelerator without making every signal public)."""
    return ("// Simulation only: the analog side of a crossbar model, written by the bench "
            "through VPI.\n"
            f"module {ANALOG_SOURCE} #(parameter WIDTH = 1) (output [WIDTH-1:0] value);\n"
            "  reg [WIDTH-1:0] held /*verilator public_flat_rw*/ = 0;\n"
            "  assign value = held;\n"
            "endmodule\n")


def analog_value_bits(spec: AnalogTileSpec) -> int:
    """Width of one column's held value in :class:`CrossbarModel`: a code (SAR) or a
    thermometer word (flash)."""
    return spec.adc_bits if spec.adc_kind == "sar" else spec.code_max


def shell_signature(spec: AnalogTileSpec) -> wiring.Signature:
    """The macro's pins from the digital tile's side (see the module docstring)."""
    adcs = spec.col_tiles * spec.adcs_per_tile
    members = {
        "wl": Out(PackedArray(unsigned(spec.dac_bits), spec.inputs)),
        "sample": Out(1),
        "sample_bank": Out(1),
        "conv_bank": Out(1),
        "col_sel": Out(max(1, (spec.cols_per_adc - 1).bit_length())),
        "gain": Out(PackedArray(unsigned(SCALE_BITS), spec.col_tiles)),
        "range_exp": Out(PackedArray(signed(RANGE_EXP_BITS), spec.weight_slices)),
    }
    if spec.adc_kind == "sar":
        members["trial"] = Out(PackedArray(unsigned(spec.adc_bits), adcs))
        members["offset_trim"] = Out(PackedArray(signed(OFFSET_TRIM_BITS), adcs))
        members["decision"] = In(adcs)
    else:
        members["thermo"] = In(PackedArray(unsigned(spec.code_max), adcs))
    return wiring.Signature(members)


def prog_signature(spec: AnalogTileSpec) -> wiring.Signature:
    """The macro's programming pins, from the programmer's side (see the module docstring)."""
    crossbars = spec.row_tiles * spec.col_tiles
    return wiring.Signature({
        "strobe": Out(1),
        "xbar": Out(range(max(2, crossbars))),
        "row": Out(range(max(2, spec.rows))),
        "levels": Out(PackedArray(unsigned(spec.bits_per_cell), spec.cols)),
        "busy": In(crossbars),
    })


def blackbox_verilog(spec: AnalogTileSpec, name: str = "crossbar_shell") -> str:
    """The macro as a Verilog black box: a module with the shell's pins (from the macro's
    side: what the tile drives is an input) and no body, for synthesis and integration. Its
    port ``<pin>`` connects to the tile's ``xbar__<pin>``."""
    ports = []
    pins = [(pin, member) for pin, member in shell_signature(spec).members.items()]
    pins += [(f"prog_{pin}", member) for pin, member in prog_signature(spec).members.items()]
    for pin, member in pins:
        bits = Shape.cast(member.shape).width
        direction = "input" if member.flow == Out else "output"
        ports.append(f"  {direction} {f'[{bits - 1}:0] ' if bits > 1 else ''}{pin}")
    return (f"// The analog hard macro of cimforge's analog tile unit: a black box.\n"
            f"(* blackbox *)\nmodule {name} (\n  input clk,\n" + ",\n".join(ports)
            + "\n);\nendmodule\n")


class CrossbarModel(wiring.Component):
    """Behavioural model of the crossbar shell for simulation (never synthesised).

    Parameters
    ----------
    spec : AnalogTileSpec

    Members
    -------
    xbar : In(shell_signature(spec))
        The macro's pins, driven by the digital tile.
    a_value : In(PackedArray(unsigned(analog_value_bits), col_tiles * cols))
        What each column of the read being sampled converts to: column ``c * cols + j`` is
        column ``j`` of column tile ``c``. Loaded into bank ``xbar.sample_bank`` at the end of
        a cycle with ``xbar.sample`` high.
    prog : In(prog_signature(spec))
        The programming pins (with ``prog_cycles``; without, the model has no such port).

    With ``vpi_source``, ``a_value`` is no port: an :data:`ANALOG_SOURCE` instance named
    ``analog`` drives it (its register ``held``, column ``c`` at bits ``[c w +: w]``).
    """

    def __init__(self, spec: AnalogTileSpec, prog_cycles: int | None = None,
                 vpi_source: bool = False):
        self._spec = spec
        self._prog_cycles = prog_cycles
        self._vpi_source = vpi_source
        columns = spec.col_tiles * spec.cols
        members = {"xbar": In(shell_signature(spec))}
        if not vpi_source:
            members["a_value"] = In(PackedArray(unsigned(analog_value_bits(spec)),
                                                     columns))
        if prog_cycles is not None:
            members["prog"] = In(prog_signature(spec))
        super().__init__(members)

    @property
    def spec(self) -> AnalogTileSpec:
        return self._spec

    def elaborate(self, platform):
        m = Module()
        spec = self._spec
        x = self.xbar
        width = analog_value_bits(spec)
        columns = spec.col_tiles * spec.cols
        # each bank one wide register (column c at bits [c width +: width]): the Verilog
        # stays a few lines whatever the column count
        if self._vpi_source:
            flat = Signal(width * columns)
            m.submodules.analog = Instance(ANALOG_SOURCE, p_WIDTH=width * columns,
                                           o_value=flat)
        else:
            flat = self.a_value.as_value()
        banks = [Signal(width * columns, name=f"bank{b}") for b in range(2)]
        with m.If(x.sample):
            for b in range(2):
                with m.If(x.sample_bank == b):
                    m.d.sync += banks[b].eq(flat)
        run = width * spec.cols_per_adc  # the columns of one ADC
        outs = []
        for tile in range(spec.col_tiles):
            for a in range(spec.adcs_per_tile):
                adc = tile * spec.adcs_per_tile + a
                first = (tile * spec.cols + a * spec.cols_per_adc) * width
                held = Signal(width, name=f"held{adc}")
                choices = [banks[b][first : first + run].word_select(x.col_sel, width)
                           for b in range(2)]
                m.d.comb += held.eq(Mux(x.conv_bank, choices[1], choices[0]))
                outs.append(held >= x.trial[adc] if spec.adc_kind == "sar" else held)
        # one assignment of the whole vector: driven piece by piece, it is a multiply-driven
        # net to Icarus, resolved bit by bit on every change
        out = x.decision if spec.adc_kind == "sar" else x.thermo.as_value()
        m.d.comb += out.eq(Cat(*outs))
        if self._prog_cycles is not None:  # each crossbar busy for prog_cycles after a write
            p = self.prog
            for i in range(spec.row_tiles * spec.col_tiles):
                left = Signal(range(self._prog_cycles + 1), name=f"prog_left{i}")
                with m.If(p.strobe & (p.xbar == i)):
                    m.d.sync += left.eq(self._prog_cycles)
                with m.Elif(left != 0):
                    m.d.sync += left.eq(left - 1)
                m.d.comb += p.busy[i].eq(left != 0)
        return m
