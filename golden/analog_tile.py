"""The analog tile unit: parameters, register map, conversion order and cycle model of
``hw/analog_tile.py``.

The unit holds ``row_tiles x col_tiles`` crossbars of ``rows x cols`` cells. One input vector
of ``row_tiles * rows`` signed ``act_bits`` values becomes, per read, the word-line drive of
one row group (``rows_per_read`` rows of one row tile) with one input digit; reads go row
tile by row tile, group by group, digit by digit (the order of
:class:`cimforge.golden.cim.CimMatrix`). All column tiles read at once, each through its own ADCs.

Conversions. Each column tile has ``cols / cols_per_adc`` ADCs; ADC ``a`` converts columns
``a * cols_per_adc + j`` for ``j = 0 .. cols_per_adc - 1``, one *step* ``j`` after another,
each step ``adc_bits`` cycles (SAR, one comparator decision per cycle) or one cycle (flash).
A read therefore occupies the ADCs for ``L = cols_per_adc * conversion_cycles`` cycles: the
unit's peak rate is one read per ``L`` cycles.

Shift-add order (the numerics, bit-exact): a *beat* is one conversion step of one read; the
beat's terms of an output channel (the columns of that channel converted in that step, each
``(-1)^(G- XOR sign digit) code << (digit_shift(d) + k bpc + e_k - e_min)``) are summed
exactly, then added to the channel's accumulator, which saturates (or wraps) to ``acc_bits``
after every beat (``CimMatrix._step_of_column``, ``CimMatrix._shift_add_in_order``).

Registers (16-bit data, written through the ``csr`` port; see :data:`REGISTER_MAP`): the ADC
gain trim of each column tile (unsigned 4.12, reset 1.0), the drift-compensation factor of
each column tile (unsigned 4.12, reset 1.0: the identity), the ADC range exponent of each
weight slice (signed, ``|e| <= ADC_EXP_LIMIT``, reset 0) and the comparator offset trim of
each SAR ADC (signed, 1/16 LSB, reset 0). Write them while the unit is idle.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from cimforge.config import WIDE_BITS, Config, input_digits, max_shift
from cimforge.golden.cim import ADC_EXP_LIMIT
from cimforge.golden.numerics import CodeAccRanges, as_dict, positive_int

__all__ = [
    "AnalogTileSpec", "AnalogTileTiming", "Schedule", "REGISTERS", "REGISTER_MAP",
    "CSR_ADDR_BITS", "CSR_DATA_BITS", "register_address",
]

# The gain and drift registers hold the golden model's fixed-point factors and the range
# registers its exponents, in the formats golden/cim.py defines (SCALE_BITS, SCALE_FRAC_BITS,
# RANGE_EXP_BITS, OFFSET_TRIM_BITS): read them from there.

# Register map: name -> (address of entry 0, entries). Entry i is at base + i.
REGISTER_MAP = {
    "gain": (0x000, 0x100),  # per column tile: ADC gain trim, u4.12
    "drift": (0x100, 0x100),  # per column tile: drift-compensation factor, u4.12
    "range": (0x200, 0x100),  # per weight slice: ADC range exponent, signed RANGE_EXP_BITS
    "offset": (0x400, 0x400),  # per SAR ADC: comparator offset trim, signed 1/16 LSB
}
REGISTERS = {name: base for name, (base, _) in REGISTER_MAP.items()}
CSR_ADDR_BITS = max(base + n for base, n in REGISTER_MAP.values()).bit_length() - 1
CSR_DATA_BITS = 16


def register_address(name: str, index: int) -> int:
    """Address of entry ``index`` of register array ``name``."""
    if name not in REGISTER_MAP:
        raise ValueError(f"register must be one of {', '.join(REGISTER_MAP)}, not {name!r}")
    base, entries = REGISTER_MAP[name]
    if not 0 <= index < entries:
        raise ValueError(f"{name} index must lie in [0, {entries - 1}], not {index}")
    return base + index


def _divides(name: str, value: int, of_name: str, of_value: int) -> None:
    if of_value % value:
        raise ValueError(f"{name} must divide {of_name} ({of_value}), not {value}")


@dataclass(frozen=True)
class AnalogTileSpec(CodeAccRanges):
    """Parameters of one analog tile unit (all from the config: :meth:`from_config`).

    Invalid combinations are refused with a ``ValueError`` naming the parameter, its value and
    what is allowed -- the generator's check before any hardware is built.
    """

    row_tiles: int
    col_tiles: int
    rows: int
    cols: int
    rows_per_read: int
    act_bits: int
    dac_bits: int
    weight_bits: int
    bits_per_cell: int
    adc_kind: str
    adc_bits: int
    cols_per_adc: int
    acc_bits: int
    saturate: bool = True
    rounding: str = "half_even"

    def __post_init__(self):
        for f in fields(self):
            if f.name not in ("adc_kind", "saturate", "rounding"):
                positive_int(f.name, getattr(self, f.name))
        if self.adc_kind not in ("sar", "flash"):
            raise ValueError(f"adc_kind must be one of sar, flash, not {self.adc_kind!r}")
        if self.rounding not in ("half_even", "half_up", "floor"):
            raise ValueError(
                f"rounding must be one of half_even, half_up, floor, not {self.rounding!r}")
        if self.adc_bits > 16:
            raise ValueError(f"adc_bits must be at most 16, not {self.adc_bits}")
        if self.adc_kind == "flash" and self.adc_bits > 8:
            raise ValueError(f"adc_bits must be at most 8 for a flash ADC, not {self.adc_bits}")
        _divides("cols_per_adc", self.cols_per_adc, "cols", self.cols)
        _divides("bits_per_cell", self.bits_per_cell, "weight_bits", self.weight_bits)
        if self.cols % self.cols_per_channel:
            raise ValueError(f"cols must be a multiple of {self.cols_per_channel} (2 polarities x "
                             f"{self.weight_slices} slices), not {self.cols}")
        cpa, cpc = self.cols_per_adc, self.cols_per_channel
        if cpa % cpc and cpc % cpa:
            raise ValueError(f"cols_per_adc must divide or be a multiple of the {cpc} columns of "
                             f"a channel (2 polarities x {self.weight_slices} slices), not {cpa}")
        _divides("rows_per_read", self.rows_per_read, "rows", self.rows)
        adcs = self.col_tiles * self.adcs_per_tile
        if self.adc_kind == "sar" and adcs > REGISTER_MAP["offset"][1]:
            raise ValueError(f"at most {REGISTER_MAP['offset'][1]} SAR ADCs (one offset register "
                             f"each), not {adcs}: use more columns per ADC")
        # golden sums a beat's terms in int64
        if self.term_bits + self.cols_per_channel.bit_length() > WIDE_BITS:
            raise ValueError(f"a shift-add term of {self.term_bits} bits is too wide to be "
                             "summed exactly in 64 bits: use fewer input, weight or ADC bits, "
                             "or more bits per cell")

    @classmethod
    def from_config(cls, cfg: Config) -> AnalogTileSpec:
        t, a, n = cfg.tile, cfg.adc, cfg.numerics
        return cls(
            row_tiles=t.row_tiles, col_tiles=t.col_tiles, rows=t.rows, cols=t.cols,
            rows_per_read=t.rows_per_read, act_bits=n.act_bits, dac_bits=t.dac_bits,
            weight_bits=n.weight_bits, bits_per_cell=t.bits_per_cell, adc_kind=a.kind,
            adc_bits=a.bits, cols_per_adc=a.cols_per_adc, acc_bits=n.acc_bits,
            saturate=n.saturate, rounding=n.rounding,
        )

    def as_dict(self) -> dict:
        return as_dict(self)

    # -- derived ---------------------------------------------------------------------------

    @property
    def weight_slices(self) -> int:
        return self.weight_bits // self.bits_per_cell

    @property
    def cols_per_channel(self) -> int:
        return 2 * self.weight_slices

    @property
    def channels_per_tile(self) -> int:
        return self.cols // self.cols_per_channel

    @property
    def adcs_per_tile(self) -> int:
        return self.cols // self.cols_per_adc

    @property
    def inputs(self) -> int:
        """Input vector length: every row of every row tile."""
        return self.row_tiles * self.rows

    @property
    def outputs(self) -> int:
        """Output channels: every channel of every column tile."""
        return self.col_tiles * self.channels_per_tile

    @property
    def digits(self) -> int:
        return input_digits(self.act_bits, self.dac_bits)

    @property
    def groups(self) -> int:
        """Row groups per row tile."""
        return self.rows // self.rows_per_read

    @property
    def reads_per_vector(self) -> int:
        return self.row_tiles * self.groups * self.digits

    @property
    def conversion_cycles(self) -> int:
        """Cycles per conversion: one comparator decision per bit (SAR), or one (flash)."""
        return self.adc_bits if self.adc_kind == "sar" else 1

    @property
    def read_cycles(self) -> int:
        """Cycles the ADCs spend on one read: the unit's peak rate is one read per this."""
        return self.cols_per_adc * self.conversion_cycles

    @property
    def accumulator_lanes(self) -> int:
        """Accumulator lanes: one per ADC when an ADC converts whole channels in turn
        (``cols_per_adc >= cols_per_channel``), else one per channel (its columns spread over
        ``cols_per_channel / cols_per_adc`` ADCs converting in step)."""
        if self.cols_per_adc >= self.cols_per_channel:
            return self.col_tiles * self.adcs_per_tile
        return self.outputs

    @property
    def lanes_per_cycle(self) -> int:
        """Lanes the shift-add datapath serves at once: a conversion step's codes stay in their
        register for ``conversion_cycles`` cycles, so its lanes are taken in that many groups
        at most -- ``ceil(lanes / conversion_cycles)`` a cycle."""
        return -(-self.accumulator_lanes // self.conversion_cycles)

    @property
    def lane_groups(self) -> int:
        """Cycles the shift-add takes over one conversion step: its lanes in groups of
        :attr:`lanes_per_cycle`, one group a cycle."""
        return -(-self.accumulator_lanes // self.lanes_per_cycle)

    @property
    def max_term_shift(self) -> int:
        """The largest shift of a code: sign digit, top slice, range exponents as far apart as
        the range registers allow (+-ADC_EXP_LIMIT, clamped on write)."""
        return (max_shift(self.act_bits, self.weight_slices, self.bits_per_cell)
                + 2 * ADC_EXP_LIMIT)

    @property
    def term_bits(self) -> int:
        """Magnitude bits of one shifted code (may exceed ``acc_bits``: the accumulator adds
        at full width, then saturates or wraps)."""
        return self.adc_bits + self.max_term_shift



@dataclass(frozen=True)
class Schedule:
    """What the cycle model predicts for a run (cycles as in :mod:`cimforge.verif.streams`).

    ``accepted[v]``: cycle vector ``v`` is taken from the input stream; ``first_read[v]``:
    cycle the unit issues its first read (its sample strobe follows one cycle later);
    ``offered[v]``: first cycle its result is valid; ``taken[v]``: the cycle it is released
    -- or, from :meth:`AnalogTileTiming.collected`, taken from the collector's stream.
    """

    accepted: list[int]
    first_read: list[int]
    offered: list[int]
    taken: list[int]


@dataclass(frozen=True)
class AnalogTileTiming:
    """Cycle model of the analog tile unit.

    Read issue: in the cycle a read is *issued* the word-line drive and the sample strobe are
    registered; the crossbar samples in the next cycle, into one of two
    sample-and-hold banks, and the ADCs convert it in the ``L = read_cycles`` cycles after
    that. A vector's reads issue every ``L`` cycles; the next vector's first read can issue
    ``L`` cycles after the last one of the previous vector (the other bank is sampled while the
    ADCs finish), so with a full input stream the ADCs never idle.

    Conditions, exactly as the RTL implements them:

    * input: a two-entry buffer; ``i_stream.ready`` while it holds fewer than two vectors. A
      vector leaves the buffer in the cycle its last read issues.
    * vector ``v``'s first read issues no earlier than the cycle after it was accepted, ``L``
      cycles after vector ``v - 1``'s last read, and the cycle after vector ``v - 2``'s result
      was released (two accumulator banks: one being read, one accumulating).
    * result: valid :attr:`result_latency` cycles after the vector's last read issued (the
      ``L`` conversion cycles included), and never before the cycle after the previous result
      was released.
    """

    spec: AnalogTileSpec

    # cycles after a read issues besides its L conversion cycles and the lane groups: sample
    # (1), code register (1), signed codes and shifts (1), beat sum (1), beat clamped to an
    # addend (1), accumulator write (1) -- the last lane group's, lane_groups - 1 cycles
    # after the first's
    TAIL_STAGES = 6
    # the result port's pipeline: a channel read is on its data port this many cycles later
    # (the channel registered; its word's address, slot and column tile registered;
    # accumulator read; channel and drift factor; partial products; their rounded sum)
    RESULT_DEPTH = 6

    @property
    def read_cycles(self) -> int:
        return self.spec.read_cycles

    @property
    def tail(self) -> int:
        """The cycles of :attr:`result_latency` besides the last read's ``L`` conversion
        cycles: :attr:`TAIL_STAGES` and the shift-add's lane groups after the first."""
        return self.TAIL_STAGES + self.spec.lane_groups - 1

    @property
    def result_latency(self) -> int:
        """Cycles from the issue of a vector's last read to its result being valid."""
        return self.read_cycles + self.tail

    def schedule(self, offered_inputs: Sequence[int | None],
                 release: Callable[[int, int], int] | None = None) -> Schedule:
        """Predict a run: vector ``v`` offered on the input stream from cycle
        ``offered_inputs[v]`` (held until taken; ``None``: the cycle after vector ``v - 1`` was
        accepted, cycle 0 for the first), result ``v`` released in cycle ``release(v, c)``
        when it is first valid in cycle ``c`` (default: ``c``; never before ``c``).

        An offer must come after the previous vector's acceptance (a stream source offers one
        item at a time). Returns every acceptance, first-read, result and release cycle.
        """
        run = self.run(release)
        for o in offered_inputs:
            run.step(o)
        return run.result()

    def run(self, release: Callable[[int, int], int] | None = None) -> TileRun:
        """A run fed one vector at a time (:meth:`TileRun.step`), for a source whose next
        offer depends on when the previous vector was taken: :meth:`schedule`'s rules."""
        return TileRun(self, release or (lambda v, c: c))

    def collected(self, offered_inputs: Sequence[int | None],
                  sink_ready: Callable[[int], bool] | None = None) -> Schedule:
        """The unit with the result collector of its simulation top
        (:class:`cimforge.hw.analog_tile_sim.AnalogTileSim`): from the first cycle a result is
        valid and the collector's stream buffer is empty, it reads channel ``i`` in the
        ``i``-th cycle, releases the result in the cycle the last channel arrives
        (:attr:`RESULT_DEPTH` cycles after its read) and offers the whole result on its
        stream from the next; the sink takes it in the first cycle
        ``c`` with ``sink_ready(c)`` (always, by default). ``offered`` and ``taken`` are the
        collector's stream."""
        ready = sink_ready or (lambda c: True)
        n = self.spec.outputs
        out_offered: list[int] = []
        out_taken: list[int] = []

        def release(v: int, valid: int) -> int:
            start = valid if v == 0 else max(valid, out_taken[v - 1] + 1)
            released = start + n - 1 + self.RESULT_DEPTH
            o = released + 1
            t = o
            while not ready(t):
                t += 1
            out_offered.append(o)
            out_taken.append(t)
            return released

        sched = self.schedule(offered_inputs, release)
        return Schedule(sched.accepted, sched.first_read, out_offered, out_taken)

    def stream_cycles(self, vectors: int) -> int:
        """Cycles from the first vector accepted to the last result offered by the
        collector, with the input always valid and the output always ready."""
        sched = self.collected([None] * vectors)
        return sched.offered[-1] - sched.accepted[0]


class TileRun:
    """One run of the unit's cycle model, vector by vector: :meth:`step` takes vector ``v``'s
    offer and returns its acceptance cycle; :meth:`result` is the run so far
    (:meth:`AnalogTileTiming.schedule` is a run stepped over every offer)."""

    def __init__(self, timing: AnalogTileTiming, release: Callable[[int, int], int]):
        self._L = timing.read_cycles
        self._P = timing.spec.reads_per_vector
        self._result_latency = timing.result_latency
        self._release = release
        self.accepted: list[int] = []
        self._first: list[int] = []
        self._offered: list[int] = []
        self._released: list[int] = []
        self._last_read: list[int] = []

    def step(self, o: int | None) -> int:
        acc, L, v = self.accepted, self._L, len(self.accepted)
        last_read, released = self._last_read, self._released
        if o is None:
            o = acc[v - 1] + 1 if v else 0
        elif v and o <= acc[v - 1]:
            raise ValueError(f"vector {v} offered in cycle {o}, not after vector {v - 1} "
                             f"was accepted (cycle {acc[v - 1]})")
        a = o if v < 2 else max(o, last_read[v - 2] + 1)
        s = a + 1
        if v >= 1:
            s = max(s, last_read[v - 1] + L)
        if v >= 2:
            s = max(s, released[v - 2] + 1)
        end = s + (self._P - 1) * L
        f = end + self._result_latency
        if v >= 1:
            f = max(f, released[v - 1] + 1)
        r = self._release(v, f)
        if r < f:
            raise ValueError(f"result {v} released in cycle {r}, before it was valid ({f})")
        acc.append(a)
        self._first.append(s)
        last_read.append(end)
        self._offered.append(f)
        released.append(r)
        return a

    def result(self) -> Schedule:
        return Schedule(list(self.accepted), list(self._first), list(self._offered),
                        list(self._released))
